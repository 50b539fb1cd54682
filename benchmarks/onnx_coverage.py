"""ONNX coverage: models from torchvision, Keras 3, scikit-learn and Hugging Face exported to
ONNX, converted with prunekit.onnx (and with onnx2torch for comparison), checked against
onnxruntime, pruned at 0.5 and exported back to ONNX.

Each (model, converter) pair runs in its own subprocess with a timeout. Agreement figures
are max |onnxruntime - x| / max |onnxruntime| on the same random inputs (batch 2):

- converted: the converted PyTorch module against onnxruntime on the original file;
- round trip: the unpruned converted module exported again, both files in onnxruntime;
- pruned out: the pruned module exported, that file in onnxruntime against PyTorch.

    python benchmarks/onnx_coverage.py --markdown docs/benchmarks/onnx_coverage.md
    python benchmarks/onnx_coverage.py --models resnet50,keras_cnn --tools prunekit
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, REPO, emit, error_status, run_worker, version, write_markdown  # noqa: E402
from _onnx_sources import OTHERS, OUTPUTS, TORCHVISION, build_file  # noqa: E402

TOOLS = ("prunekit", "onnx2torch", "onnx2torch17")
LEGACY_OPSET = 17  # onnx2torch17: torchvision files from the TorchScript exporter at opset 17
FLOOR = 1e-4


def _rel(expected: Any, got: Any) -> float:
    import numpy as np
    import torch

    ref = np.asarray(expected, dtype=np.float64)
    out = got.detach().double().numpy() if isinstance(got, torch.Tensor) else \
        np.asarray(got, dtype=np.float64)
    if ref.shape != out.shape:
        return float("inf")
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(ref - out).max()) / scale


def _macs(model: Any, example: tuple[Any, ...]) -> int:
    from prunekit.measure import count_flops

    return count_flops(model, example if len(example) > 1 else example[0]) // 2


def _onnx2torch(path: Path, row: dict[str, Any]) -> Any:
    """onnx2torch on the file; where it lacks a converter for the file's opset, again on the
    file converted down to opset 17 by ONNX's version converter (noted in the row)."""
    import onnx
    import torch
    from onnx import version_converter
    from onnx2torch import convert

    proto = onnx.load(str(path))
    try:
        with torch.no_grad():
            return convert(proto).eval()
    except NotImplementedError as exc:
        if row["tool"] == "onnx2torch17":
            raise
        row["onnx2torch_original"] = error_status(exc)
        older = version_converter.convert_version(proto, 17)
        row["onnx2torch_opset"] = 17
        with torch.no_grad():
            return convert(older).eval()


def worker(case: str, tool: str, ratio: float, folder: Path) -> dict[str, Any]:
    import onnx
    import torch

    import prunekit
    from prunekit.onnx.check import run_onnxruntime

    torch.set_num_threads(1)
    row: dict[str, Any] = {"model": case, "tool": tool}
    legacy = tool == "onnx2torch17"
    if legacy and case not in TORCHVISION:
        row["status"] = "n/a"
        return row
    path = folder / f"{case}{'_opset17' if legacy else ''}.onnx"
    try:
        example = build_file(case, path, LEGACY_OPSET if legacy else None)
    except Exception as exc:  # noqa: BLE001
        row.update(status=error_status(exc, "ONNX export"), build_failed=True)
        return row
    proto = onnx.load(str(path), load_external_data=False)
    outputs = OUTPUTS.get(case)
    nodes = list(proto.graph.node)
    row.update(opset=next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
               nodes=len(nodes), op_types=len({n.op_type for n in nodes}))
    names = [i.name for i in proto.graph.input
             if i.name not in {t.name for t in proto.graph.initializer}]
    feeds = dict(zip(names, example))
    reference = run_onnxruntime(path, feeds, outputs)[0]
    start = time.perf_counter()
    try:
        if tool == "prunekit":
            model = prunekit.onnx.load(path, example=example, outputs=outputs, check=False)
        else:
            model = _onnx2torch(path, row)
    except Exception as exc:  # noqa: BLE001
        row.update(status=error_status(exc, "convert"), time_s=time.perf_counter() - start)
        return row
    row["convert_s"] = time.perf_counter() - start
    with torch.no_grad():
        got = model(*example)
    got = got[0] if isinstance(got, (tuple, list)) else got
    row["converted_rel"] = _rel(reference, got)
    row["params_buffers"] = [sum(p.numel() for p in model.parameters()),
                             sum(b.numel() for b in model.buffers())]
    if tool == "prunekit":
        try:
            with tempfile.TemporaryDirectory() as tmp:
                prunekit.onnx.export(model, Path(tmp) / "again.onnx", example=example)
                again = run_onnxruntime(Path(tmp) / "again.onnx", feeds, outputs)[0]
            row["roundtrip_rel"] = _rel(reference, again)
        except Exception as exc:  # noqa: BLE001
            row["status"] = error_status(exc, "unpruned export")
            return row
    one = tuple(t[:1] for t in example)
    try:
        row["macs_before"] = _macs(model, one)
        start = time.perf_counter()
        result = prunekit.prune(model, one if len(one) > 1 else one[0], ratio=ratio)
        row["prune_s"] = time.perf_counter() - start
        row["groups"], row["skipped"] = len(result.graph.groups), len(result.skipped)
        row["macs_after"] = _macs(model, one)
    except Exception as exc:  # noqa: BLE001
        row["status"] = error_status(exc, "prune")
        return row
    if tool == "prunekit":
        try:
            with tempfile.TemporaryDirectory() as tmp:
                facts = prunekit.onnx.export(model, Path(tmp) / "pruned.onnx", example=example)
            row["pruned_out_rel"] = max(facts["onnxruntime"]["max_rel_diff"])
        except Exception as exc:  # noqa: BLE001
            row["status"] = error_status(exc, "pruned export")
            return row
    row["status"] = "ok"
    return row


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "rel":
        return f"{value:.1e}"
    if kind == "macs":
        return f"{value / 1e6:,.1f}M" if value >= 1e5 else f"{value / 1e3:,.1f}k"
    return str(value)


def table(results: dict[str, dict[str, Any]], models: list[str]) -> list[str]:
    peers = any(t in results.get(m, {}) for m in models for t in TOOLS[1:])
    head = ["model", "opset / nodes", "prunekit status", "converted", "round trip",
            "groups (skipped)", "MACs before → after", "pruned out"]
    if peers:
        head += ["onnx2torch status", "onnx2torch converted", "onnx2torch pruned",
                 f"onnx2torch, opset-{LEGACY_OPSET} file", "converted", "pruned"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in models:
        pk = results.get(name, {}).get("prunekit", {})
        ot = results.get(name, {}).get("onnx2torch", {})
        o17 = results.get(name, {}).get("onnx2torch17", {})

        def status(r: dict[str, Any]) -> str:
            s = str(r.get("status", "–")).replace("|", "/").replace("\n", " ")
            missing = re.search(r"operation_type='(\w+)', version=(\d+)", s)
            if missing:
                s = f"error: no converter for {missing.group(1)}-{missing.group(2)}"
            if s == "ok" and r.get("onnx2torch_opset"):
                s = f"ok at opset {r['onnx2torch_opset']} (not at the file's)"
            return s if len(s) <= 80 else s[:77] + "..."

        macs = (f"{_fmt(pk.get('macs_before'), 'macs')} → {_fmt(pk.get('macs_after'), 'macs')} "
                f"({pk['macs_before'] / max(pk['macs_after'], 1):.2f}×)"
                if "macs_after" in pk else "")
        def pruned_cell(r: dict[str, Any]) -> str:
            if "macs_after" in r:
                return f"{r['macs_before'] / max(r['macs_after'], 1):.2f}× MACs"
            return "no" if "converted_rel" in r else ""

        cells = [name, f"{pk.get('opset', ot.get('opset', ''))} / "
                       f"{pk.get('nodes', ot.get('nodes', ''))}",
                 status(pk), _fmt(pk.get("converted_rel"), "rel"),
                 _fmt(pk.get("roundtrip_rel"), "rel"),
                 f"{pk['groups']} ({pk['skipped']})" if "groups" in pk else "", macs,
                 _fmt(pk.get("pruned_out_rel"), "rel")]
        if peers:
            cells += [status(ot), _fmt(ot.get("converted_rel"), "rel"), pruned_cell(ot),
                      status(o17), _fmt(o17.get("converted_rel"), "rel"), pruned_cell(o17)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary(results: dict[str, dict[str, Any]], models: list[str]) -> list[str]:
    pk = [results.get(m, {}).get("prunekit", {}) for m in models]
    ok = [r for r in pk if r.get("status") == "ok"]
    floor = [r for r in ok if r.get("converted_rel", 1) <= FLOOR and
             r.get("roundtrip_rel", 1) <= FLOOR and r.get("pruned_out_rel", 1) <= FLOOR]
    reduced = [r for r in ok if r.get("macs_after", 0) < r.get("macs_before", 0)]
    lines = [f"- prunekit.onnx: {len(ok)}/{len(models)} convert, prune and re-export; "
             f"{len(floor)}/{len(models)} within {FLOOR:g} relative on every check "
             f"(converted, unpruned round trip, pruned out); {len(reduced)} with fewer MACs "
             "at ratio 0.5"]
    for tool, what in (("onnx2torch", "the same files"),
                       ("onnx2torch17", f"torchvision files at opset {LEGACY_OPSET}")):
        rows = [results.get(m, {}).get(tool, {}) for m in models]
        rows = [r for r in rows if r and r.get("status") != "n/a"]
        if not rows:
            continue
        conv = [r for r in rows if "converted_rel" in r]
        agree = [r for r in conv if r["converted_rel"] <= FLOOR]
        pruned = [r for r in rows if r.get("status") == "ok" and
                  r.get("macs_after", 0) < r.get("macs_before", 0)]
        lines.append(f"- onnx2torch {version('onnx2torch')} on {what}: {len(conv)}/{len(rows)} "
                     f"convert, {len(agree)} within {FLOOR:g}, {len(pruned)} then pruned by "
                     "prunekit with fewer MACs")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated cases (default: all)")
    ap.add_argument("--torchvision-zoo", action="store_true",
                    help="every torchvision classifier instead of the default cases")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default="out/onnx_coverage.json")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "TOOL", "FOLDER"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        case, tool, folder = args.worker
        emit(worker(case, tool, args.ratio, Path(folder)))
        return
    if args.torchvision_zoo:
        from _common import torchvision_models
        models = torchvision_models()
    else:
        models = args.models.split(",") if args.models else TORCHVISION + OTHERS
    tools = [t for t in args.tools.split(",") if t]
    out = Path(args.out)
    results: dict[str, dict[str, Any]] = {}
    if args.resume and out.exists():
        results = json.loads(out.read_text()).get("results", {})
    env = Environment(1, batch="2 (conversion and checks), 1 (pruning trace)")
    with tempfile.TemporaryDirectory() as folder:
        for i, name in enumerate(models, 1):
            for tool in tools:
                if tool in results.get(name, {}):
                    continue
                r = run_worker([str(Path(__file__).relative_to(REPO)), "--worker", name, tool,
                                folder, "--ratio", str(args.ratio)], args.timeout)
                r.setdefault("model", name)
                results.setdefault(name, {})[tool] = r
                print(f"[{i}/{len(models)}] {name:20s} {tool:10s} {r.get('status')}", flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"ratio": args.ratio, "environment": env.lines(),
                                       "results": results}, indent=1))
    body = table(results, models) + [""] + summary(results, models)
    print("\n".join(body))
    if args.markdown:
        notes = [
            f"ONNX files: torchvision classifiers (random weights, `weights=None`; 64×64 input, "
            "224×224 for Swin, MaxViT and ViT, 299×299 for Inception v3) and a Hugging Face "
            "BERT (2 layers, hidden 128, "
            "random weights) exported with `torch.onnx.export(dynamo=True)`; Keras 3 "
            f"{version('keras')} models (torch backend, `model.export(format=\"onnx\")`): the "
            "digits CNN of docs/keras.md (untrained here) and an LSTM(32) classifier; a "
            f"scikit-learn MLPClassifier (128, 64) trained on the digits, via skl2onnx "
            f"{version('skl2onnx')} (output `probabilities`). onnx {version('onnx')}, "
            f"onnxruntime {version('onnxruntime')}.",
            "",
            "Agreement columns: max |onnxruntime − x| / max |onnxruntime| on the same random "
            "inputs (batch 2). *converted*: the converted PyTorch module against onnxruntime "
            "on the original file; *round trip*: the unpruned converted module exported back "
            "(`prunekit.onnx.export`: original input/output names, dynamic axes, opset) and "
            "run in onnxruntime, against the original file; *pruned out*: the model pruned at "
            f"ratio {args.ratio} (`prunekit.prune(model, x, ratio={args.ratio})`, defaults) "
            "exported and run in onnxruntime, against the pruned PyTorch module. MACs: "
            "`prunekit.measure.count_flops` / 2 at batch 1. *groups (skipped)*: coupled "
            "groups found, and those verification left unpruned.",
            "",
            "onnx2torch columns: `onnx2torch.convert` on the same file (where it has no "
            "converter for an op at the file's opset, again on the file converted to opset 17 "
            "by `onnx.version_converter`), the same agreement check, then `prunekit.prune` on "
            "its module (no export: onnx2torch has none); the last three columns: onnx2torch "
            f"on the torchvision model exported by the TorchScript exporter at opset "
            f"{LEGACY_OPSET} (`dynamo=False`), the opsets onnx2torch covers.",
        ]
        title = (f"ONNX coverage: every torchvision classifier through ONNX, pruned at "
                 f"{args.ratio}" if args.torchvision_zoo else
                 f"ONNX coverage: convert, prune at {args.ratio}, export back")
        write_markdown(args.markdown, title, env, body, notes)


if __name__ == "__main__":
    main()

"""Masked sparsity: prunekit's masks against `torch.nn.utils.prune` on the same layers.

Both prune the conv and linear weights of a torchvision model globally by L1 magnitude to the
same sparsity. Compared: the state-dict keys while masked (can a plain model load it?), the
checkpoint size (`torch.nn.utils.prune`: `torch.save` of the state dict after
`prune.remove`, i.e. dense; prunekit: `save_compressed`, bitmask + non-zero values), and the
forward overhead of the masked model against the dense one (median CPU latency).

    python benchmarks/masks_vs_torch_prune.py --markdown docs/benchmarks/masks_vs_torch_prune.md
"""

from __future__ import annotations

import argparse
import copy
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, write_markdown  # noqa: E402


def layers(model: Any) -> list[tuple[Any, str]]:
    import torch.nn as nn

    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def loads_into_plain_model(state: dict[str, Any], fresh: Any) -> bool:
    try:
        fresh.load_state_dict(state, strict=True)
        return True
    except RuntimeError:
        return False


def run(name: str, sparsity: float, repeats: int, threads: int) -> dict[str, Any]:
    import torch
    import torch.nn.utils.prune as tprune
    import torchvision

    from prunekit.mask import MaskConfig, Unstructured, finalize, save_compressed, sparsify
    from prunekit.measure import measure_latency

    torch.manual_seed(0)
    dense = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, 224, 224)

    def ms(model: Any) -> float:
        return measure_latency(model, x, warmup=3, repeats=repeats, threads=threads).median_ms

    def saved_bytes(state: dict[str, Any]) -> int:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.tell()

    row: dict[str, Any] = {"model": name, "sparsity": sparsity, "dense_ms": ms(dense),
                           "dense_bytes": saved_bytes(dense.state_dict())}

    ref = copy.deepcopy(dense)
    tprune.global_unstructured(layers(ref), pruning_method=tprune.L1Unstructured, amount=sparsity)
    row["torch_keys_load_plain"] = loads_into_plain_model(
        ref.state_dict(), torchvision.models.get_model(name, weights=None))
    row["torch_masked_ms"] = ms(ref)
    for module, attr in layers(ref):
        tprune.remove(module, attr)
    row["torch_bytes"] = saved_bytes(ref.state_dict())

    ours = copy.deepcopy(dense)
    sparsify(ours, sparsity, MaskConfig(pattern=Unstructured(scope="global")))
    row["prunekit_keys_load_plain"] = loads_into_plain_model(
        ours.state_dict(), torchvision.models.get_model(name, weights=None))
    row["prunekit_masked_ms"] = ms(ours)
    finalize(ours)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_compressed(ours, path)
        row["prunekit_bytes"] = path.stat().st_size
    same = all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(),
                                                 ours.state_dict().values()))
    row["same_weights"] = same
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    rows = [run(m, args.sparsity, args.repeats, args.threads) for m in args.models.split(",")]
    lines = ["| model | sparsity | masked state dict loads into a plain model (torch / prunekit) "
             "| checkpoint: dense `torch.save` | torch.nn.utils.prune (after `remove`) "
             "| prunekit `save_compressed` | masked forward overhead vs dense (torch / prunekit) "
             "| same pruned weights |",
             "|---|---:|---|---:|---:|---:|---|---|"]
    for r in rows:
        mib = 2 ** 20
        lines.append(
            f"| {r['model']} | {r['sparsity']:.0%} | "
            f"{'yes' if r['torch_keys_load_plain'] else 'no'} / "
            f"{'yes' if r['prunekit_keys_load_plain'] else 'no'} | "
            f"{r['dense_bytes'] / mib:.1f} MiB | {r['torch_bytes'] / mib:.1f} MiB "
            f"({r['torch_bytes'] / r['dense_bytes']:.2f}×) | {r['prunekit_bytes'] / mib:.1f} MiB "
            f"({r['prunekit_bytes'] / r['dense_bytes']:.2f}×) | "
            f"{r['torch_masked_ms'] / r['dense_ms']:.2f}× / "
            f"{r['prunekit_masked_ms'] / r['dense_ms']:.2f}× | "
            f"{'yes' if r['same_weights'] else 'no'} |")
    print("\n".join(lines))
    if args.markdown:
        notes = ["- both prune every Conv2d/Linear weight globally by |w| (L1) to the same "
                 "sparsity; random weights (`weights=None`)",
                 "- overhead = median masked forward latency / median dense latency at batch 1 "
                 f"({args.repeats} runs after warm-up)",
                 "- a masked state dict that does not load into a plain model needs the masking "
                 "library to be read: `torch.nn.utils.prune` renames `weight` to `weight_orig` "
                 "plus a `weight_mask` buffer; prunekit's parametrization renames it to "
                 "`parametrizations.weight.original` (its mask is not saved) until `finalize`"]
        write_markdown(args.markdown, "Masked sparsity: prunekit vs torch.nn.utils.prune",
                       Environment(args.threads), lines, notes)


if __name__ == "__main__":
    main()

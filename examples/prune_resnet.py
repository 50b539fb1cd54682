"""Demo: prune a torchvision ResNet-18 to half its channels and print a before/after table.

Run from the repository root:

    bash scripts/setup.sh && .venv/bin/python examples/prune_resnet.py

The model is built with random weights (``weights=None``): no weights are downloaded, so the
table shows size and speed only, not accuracy. The plan is written to ``out/plan.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision

import prunekit
from prunekit.measure import count_flops, count_parameters, measure_latency

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ratio", type=float, default=0.5, help="pruning ratio (default 0.5)")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for latency (default: torch's)"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed forward passes")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "out", help="folder for plan.json (default out/)"
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    # Random weights: weights=None builds the architecture only, nothing is downloaded.
    model = torchvision.models.resnet18(weights=None).eval()
    example = torch.randn(1, 3, 224, 224)  # batch 1

    def measure(m: torch.nn.Module) -> tuple[int, int, float, int]:
        lat = measure_latency(m, example, warmup=5, repeats=args.repeats, threads=args.threads)
        return count_parameters(m), count_flops(m, example), lat.median_ms, lat.threads

    params0, flops0, ms0, threads = measure(model)

    result = prunekit.prune(model, example, ratio=args.ratio)  # prunes `model` in place
    pruned = result.model
    params1, flops1, ms1, _ = measure(pruned)

    with torch.no_grad():
        out_shape = tuple(pruned.eval()(example).shape)

    rows = [
        ("parameters (M)", params0 / 1e6, params1 / 1e6),
        ("GFLOPs", flops0 / 1e9, flops1 / 1e9),
        ("CPU latency median (ms)", ms0, ms1),
    ]
    print(f"ResNet-18 (random weights), ratio={args.ratio}, input 1x3x224x224, float32")
    print(f"latency: CPU, batch 1, {threads} thread(s), median of {args.repeats} runs")
    print()
    print(f"{'':<26}{'before':>10}{'after':>10}{'after/before':>14}")
    for name, before, after in rows:
        print(f"{name:<26}{before:>10.3f}{after:>10.3f}{after / before:>14.3f}")
    print(f"output shape after pruning: {out_shape}")

    args.out.mkdir(parents=True, exist_ok=True)
    plan_path = args.out / "plan.json"
    result.plan.save(str(plan_path))
    print(f"plan saved to {plan_path}")


if __name__ == "__main__":
    main()

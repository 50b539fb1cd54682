"""Where prunekit's engine time goes: ``prunekit.prune`` under cProfile, stage by stage.

For each model (the five of ``engine_speed.py``), one warm-up prune on a fresh model, then one
profiled prune on another fresh model at ratio 0.5, batch 1, fp32, CPU. Prints the wall time,
the cumulative time of each engine stage (graph build = trace + groups, scoring, plan +
meta-device verification, surgery) and the functions with the most time of their own: the
list to work from when the engine is to get faster.

    python benchmarks/engine_profile.py
    python benchmarks/engine_profile.py --models densenet161 --top 15
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment  # noqa: E402
from engine_speed import MODELS, RATIO, build  # noqa: E402

#: (file suffix, function) of the engine stages, as cProfile names them.
STAGES = {
    ("prunekit/graph/dependency.py", "build"): "graph build (trace, groups)",
    ("prunekit/importance/scoring.py", "score_groups"): "scoring",
    ("prunekit/engine.py", "plan_verified"): "plan + verification",
    ("prunekit/plan/verify.py", "verify_plan"): "  of which verification",
    ("prunekit/surgery/apply.py", "apply_plan"): "surgery (meta copy and real model)",
}


def profile_model(name: str, top: int) -> list[str]:
    import prunekit

    model, x = build(name)
    prunekit.prune(model, x, ratio=RATIO)  # warm-up: imports, caches, first-call costs
    model, x = build(name)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    prunekit.prune(model, x, ratio=RATIO)
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    lines = [f"### {name}: {wall:.3f} s under cProfile", "", "| stage | calls | seconds |",
             "|---|---:|---:|"]
    raw = stats.stats  # type: ignore[attr-defined]
    for (path, _line, func), (_cc, calls, _tt, cum, _callers) in raw.items():
        for (suffix, stage_func), title in STAGES.items():
            if path.endswith(suffix) and func == stage_func:
                lines.append(f"| {title} | {calls} | {cum:.3f} |")
    own = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    lines += ["", "| function (own time) | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
    for (path, line, func), (_cc, calls, own_s, cum, _callers) in own:
        where = f"{Path(path).name}:{line}({func})" if line else func
        lines.append(f"| `{where}` | {calls} | {own_s:.3f} | {cum:.3f} |")
    lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Environment(args.threads).lines()
    for name in args.models.split(","):
        out += ["", *profile_model(name, args.top)]
        print("\n".join(out), flush=True)
        out = []


if __name__ == "__main__":
    main()

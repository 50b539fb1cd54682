"""Where does a pruned model's time go? Per-op CPU time of the dense and pruned model.

For each model: prunekit prunes a copy at a uniform ratio; both are timed interleaved
(``prunekit.measure.compare.compare_latency``) and profiled with ``torch.profiler`` (a few
passes each, after warm-up, the two profiles taken back to back, twice, in alternating
order, the lower of the two kept per op). The table lists, per ATen op, its self CPU time
per pass and its number of calls per pass, dense and pruned: ops whose time does not shrink
(depthwise convs, elementwise activations, batch norm, SE pooling), and convolutions that
change kernel path (``mkldnn_convolution`` vs ``_slow_conv2d_forward``) as channel counts
fall, show up directly. The fixed per-pass cost (fitted from batch 1 and the largest batch)
and the ATen op count of one pass say how launch-bound each model is.

    python benchmarks/latency_profile.py --markdown docs/benchmarks/latency_profile.md
    python benchmarks/latency_profile.py --models mobilenet_v3_large --passes 2 --top 8
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, build_model, write_markdown  # noqa: E402

MODELS = ("mobilenet_v3_large", "efficientnet_b0", "resnet50")


def op_profile(model: Any, x: Any, passes: int) -> dict[str, tuple[float, float]]:
    """Per ATen op: (self CPU ms per pass, calls per pass)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(passes):
                model(x)
    return {e.key: (e.self_cpu_time_total / passes / 1e3, e.count / passes)
            for e in prof.key_averages() if e.key.startswith("aten::")}


def profiles(dense: Any, pruned: Any, x: Any, passes: int) -> dict[str, dict[str, Any]]:
    """Two back-to-back profile pairs in alternating order; the lower time per op counts."""
    out: dict[str, dict[str, Any]] = {"dense": {}, "pruned": {}}
    for order in (("dense", "pruned"), ("pruned", "dense")):
        for name in order:
            prof = op_profile(dense if name == "dense" else pruned, x, passes)
            for op, (ms, calls) in prof.items():
                old = out[name].get(op)
                out[name][op] = (ms if old is None else min(old[0], ms), calls)
    return out


def run_model(name: str, ratio: float, batches: list[int], passes: int, rounds: int,
              threads: int, top: int) -> tuple[list[str], dict[str, Any]]:
    import torch

    import prunekit
    from prunekit.measure import count_macs
    from prunekit.measure.compare import compare_latency, count_calls, fixed_cost

    dense, shape = build_model(name, "torchvision")
    dense.eval()
    x1 = torch.randn(1, *shape[1:])
    pruned = copy.deepcopy(dense)
    prunekit.prune(pruned, x1, ratio=ratio)
    macs_x = count_macs(dense, x1) / count_macs(pruned, x1)
    ops, calls = count_calls(dense, x1)
    lines = [f"### {name}, ratio {ratio:g} ({macs_x:.2f}× fewer MACs; one pass: {ops} ATen "
             f"ops, {calls} module calls)", ""]
    facts: dict[str, Any] = {"model": name, "ratio": ratio, "macs_x": macs_x, "ops": ops,
                             "module_calls": calls, "batches": {}}
    timed = {}
    for b in batches:
        x = torch.randn(b, *shape[1:])
        cmp = compare_latency({"dense": dense, "pruned": pruned}, x, warmup=2,
                              rounds=rounds if b == 1 else max(3, rounds // 2),
                              threads=threads)
        timed[b] = cmp
        speedup = cmp.speedup("dense", "pruned")
        prof = profiles(dense, pruned, x, passes)
        keys = sorted(set(prof["dense"]) | set(prof["pruned"]),
                      key=lambda k: -max(prof["dense"].get(k, (0, 0))[0],
                                         prof["pruned"].get(k, (0, 0))[0]))
        total = {s: sum(v[0] for v in prof[s].values()) for s in prof}
        lines += [f"batch {b}: dense {cmp.results['dense'].median_ms:.2f} ms, pruned "
                  f"{cmp.results['pruned'].median_ms:.2f} ms, speed-up {speedup:.2f}×, "
                  f"η {speedup / macs_x:.2f}; profiled self time per pass "
                  f"{total['dense']:.2f} → {total['pruned']:.2f} ms", "",
                  "| op | dense ms | pruned ms | shrank | dense calls | pruned calls | "
                  "share of pruned time |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        rows = []
        for k in keys[:top]:
            d, p = prof["dense"].get(k, (0.0, 0.0)), prof["pruned"].get(k, (0.0, 0.0))
            shrank = f"{d[0] / p[0]:.2f}×" if p[0] > 0 else "-"
            share = p[0] / total["pruned"] if total["pruned"] else 0.0
            lines.append(f"| `{k}` | {d[0]:.2f} | {p[0]:.2f} | {shrank} | {d[1]:g} | "
                         f"{p[1]:g} | {100 * share:.0f}% |")
            rows.append({"op": k, "dense_ms": d[0], "pruned_ms": p[0], "dense_calls": d[1],
                         "pruned_calls": p[1]})
        lines.append("")
        facts["batches"][b] = {"dense_ms": cmp.results["dense"].median_ms,
                               "pruned_ms": cmp.results["pruned"].median_ms,
                               "speedup": speedup, "ops": rows}
    if len(batches) >= 2:
        lo, hi = min(batches), max(batches)
        for side in ("dense", "pruned"):
            fit = fixed_cost(timed[lo].results[side], timed[hi].results[side])
            facts[f"fixed_{side}"] = fit.to_dict()
            lines.append(f"- {side}: fixed per-pass cost {fit.fixed_ms:.2f} ms "
                         f"({100 * fit.share(timed[lo].results[side].median_ms):.0f}% of "
                         f"batch {lo}), {fit.per_sample_ms:.2f} ms per sample "
                         f"(fit through batches {lo} and {hi})")
        lines.append("")
    print("\n".join(lines), flush=True)
    return lines, facts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--passes", type=int, default=5, help="profiled passes per profile")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=10, help="ops listed per table")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    env = Environment(args.threads, batch=args.batches)
    print("\n".join(env.lines()), flush=True)
    body: list[str] = []
    facts = []
    for name in args.models.split(","):
        lines, fact = run_model(name, args.ratio, batches, args.passes, args.rounds,
                                args.threads, args.top)
        body += lines
        facts.append(fact)
    if args.json:
        Path(args.json).write_text(json.dumps(facts, indent=1))
    if args.markdown:
        notes = ["- random weights (`weights=None`), eval, no grad, fp32; prunekit defaults "
                 f"(`prunekit.prune(model, x, ratio={args.ratio:g})`)",
                 f"- timing: {args.rounds} interleaved rounds at batch 1 (half at larger "
                 "batches), speed-up = median per-round ratio; profile: `torch.profiler`, "
                 f"{args.passes} passes per profile, self CPU time per pass, lower of two "
                 "alternating profile pairs"]
        write_markdown(args.markdown, "Where the time goes: per-op profile, dense vs pruned "
                       "(CPU)", env, body, notes)


if __name__ == "__main__":
    main()

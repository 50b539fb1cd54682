"""Latency-aware allocation: does a measured latency table reach a latency target better
than a MACs target does?

On a torchvision model (random weights, batch 1, fp32, CPU threads as given) the script
measures a :class:`prunekit.recover.LatencyTable` (each group pruned alone on a copy at a grid
of kept counts, the changed layers timed on their real inputs), then allocates per-group
ratios three ways with the same greedy walk and the same sensitivity *prior*
(``uniform_sensitivity``: every group loses ratio² of the metric; no accuracy is measured):

- ``MACs``: ``allocate(macs_reduction=T)``;
- ``latency``: ``allocate(latency_reduction=T, latency_table=table)``;
- ``latency + fast sizes``: the same, with kept counts rounded up to fast sizes.

Each is pruned on a copy and every model is timed afresh (``measure_latency``, median of
repeats, in several interleaved rounds; the fastest round counts, since a busy spell on a
shared machine only adds time; the same rule as the table's sweeps).

    python benchmarks/latency_aware.py --markdown docs/benchmarks/latency_aware.md
    python benchmarks/latency_aware.py --points 8 --rounds 2 --repeats 10   # quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Environment, build_model  # noqa: E402


def fresh_latency(models: dict[str, Any], x: Any, rounds: int, repeats: int,
                  threads: int) -> dict[str, list[float]]:
    """Per model, the median of repeats in each round; the order rotates between rounds."""
    from prunekit.measure import measure_latency

    names = list(models)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            out[n].append(measure_latency(models[n], x, warmup=max(3, repeats // 5),
                                          repeats=repeats, threads=threads).median_ms)
    return out


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    import torch

    import prunekit
    from prunekit.measure import count_macs
    from prunekit.recover import (
        LatencyTable,
        allocate,
        median_timer,
        uniform_sensitivity,
    )

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    dense, shape = build_model(args.model, "torchvision")
    torch.manual_seed(0)
    x = torch.randn(*shape)
    if args.table and Path(args.table).exists():
        table = LatencyTable.load(args.table)
        print(f"loaded {args.table} ({table.describe()})", flush=True)
    else:
        table = LatencyTable.measure(
            dense, x, points=args.points, multiple=args.multiple,
            rounds=args.table_rounds, timer=median_timer(args.table_warmup, args.table_repeats),
            on_group=lambda k, r: print(f"  round {r}: {k} timed", flush=True))
        if args.table:
            table.save(args.table)
    sens = uniform_sensitivity(table.groups)
    t = args.target
    allocs = {
        f"MACs {t:g}×": allocate(dense, x, sens, macs_reduction=t, latency_table=table),
        f"latency {t:g}×": allocate(dense, x, sens, latency_reduction=t, latency_table=table),
        f"latency {t:g}× + fast sizes": allocate(dense, x, sens, latency_reduction=t,
                                                 latency_table=table, round_fast=True),
    }
    models: dict[str, Any] = {"dense": dense}
    for name, alloc in allocs.items():
        models[name] = copy.deepcopy(dense)
        prunekit.prune(models[name], x, config=alloc.config)
    dense_macs = count_macs(dense, x)
    times = fresh_latency(models, x, args.rounds, args.repeats, args.threads)
    dense_ms = min(times["dense"])
    rows = []
    for name, model in models.items():
        ms = min(times[name])
        predicted = table.dense_ms if name == "dense" else allocs[name].predicted_ms
        rows.append({"allocation": name, "macs_x": dense_macs / count_macs(model, x),
                     "predicted_ms": predicted, "predicted_x": table.dense_ms / predicted,
                     "ms": ms, "ms_min": min(times[name]), "ms_max": max(times[name]),
                     "measured_x": dense_ms / ms,
                     "ratios": {} if name == "dense" else allocs[name].ratios})
        print(json.dumps(rows[-1]), flush=True)
    kept = group_table(table, allocs)
    facts = {"table_s": table.seconds, "table_dense_ms": table.dense_ms, "device": table.describe(),
             "groups": len(table.groups), "skipped": table.skipped,
             "calls": len(table.base_ms), "load": (load_start, os.getloadavg()[0])}
    return rows, kept, facts


def group_table(table: Any, allocs: dict[str, Any]) -> list[str]:
    """Kept units per group under each allocation, with the table's fast sizes."""
    names = list(allocs)
    lines = ["| group | units | " + " | ".join(f"kept, {n}" for n in names) + " | fast sizes |",
             "|---|---:|" + "---:|" * len(names) + "---|"]
    for key, g in table.groups.items():
        cells = [str(table.kept(key, allocs[n].ratios.get(key, 0.0))) for n in names]
        fast = table.fast_sizes(key)
        shown = ", ".join(map(str, fast)) if len(fast) <= 10 else \
            ", ".join(map(str, fast[:4])) + f", … ({len(fast)})"
        lines.append(f"| {key} | {g.units} | " + " | ".join(cells) + f" | {shown} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--target", type=float, default=2.0, help="times faster / fewer MACs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points", type=int, default=12, help="kept counts measured per group")
    ap.add_argument("--multiple", type=int, default=8, help="kept counts are multiples of this")
    ap.add_argument("--table-warmup", type=int, default=3)
    ap.add_argument("--table-repeats", type=int, default=10)
    ap.add_argument("--table-rounds", type=int, default=5, help="sweeps; the fastest counts")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per model and round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--table", default=None, help="latency table JSON: loaded if it exists, "
                    "else measured and saved there")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    rows, kept, facts = run(args)

    lines = [("| allocation | MACs reduction | predicted ms | predicted speed-up | measured ms "
              "(round range) | measured speed-up |"), "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['allocation']} | {r['macs_x']:.2f}× | {r['predicted_ms']:.2f} | "
                     f"{r['predicted_x']:.2f}× | {r['ms']:.2f} ({r['ms_min']:.2f}–"
                     f"{r['ms_max']:.2f}) | {r['measured_x']:.2f}× |")
    print("\n".join(lines + [""] + kept))
    if args.markdown:
        from prunekit.files import atomic_write_text

        notes = [
            f"- model: torchvision `{args.model}`, random weights, input 1x3x224x224; "
            f"latency table measured on {facts['device']}: {facts['groups']} groups, "
            f"{facts['calls']} timed layer calls, up to {args.points} kept counts per group "
            f"(multiples of {args.multiple}), each layer call timed as the median of "
            f"{args.table_repeats} runs after {args.table_warmup} warm-up, in "
            f"{args.table_rounds} sweeps (the fastest sweep counts); "
            f"{facts['table_s']:.0f} s"
            + (f"; groups left out: {facts['skipped']}" if facts["skipped"] else ""),
            ("- allocation: the same greedy walk (`prunekit.allocate.ratios`) for every row, "
             "with a sensitivity *prior*, not a measurement: `uniform_sensitivity` (every "
             "group loses ratio² of a metric of 1.0; no accuracy is measured here), so each "
             f"row only minimises its cost. MACs row: `macs_reduction={args.target:g}`; "
             f"latency rows: `latency_reduction={args.target:g}` with the table as cost, the "
             "last one with kept counts rounded up to the table's fast sizes "
             "(`round_fast=True`)"),
            ("- predicted: the table's model latency (dense latency minus the summed layer "
             "savings, credited in proportion: scaled by dense latency / summed dense layer "
             "times; a layer touched by two groups scales by the product of their time "
             "ratios); "
             "measured: every model timed afresh after pruning (`measure_latency`, median of "
             f"{args.repeats} runs after warm-up, in {args.rounds} interleaved rounds; the "
             "fastest round counts, as for the table's sweeps, since busy spells only add "
             "time; the range is over rounds); speed-ups are against the dense model timed "
             "in the same rounds"),
            ("- the machine is shared with other jobs: timings are noisy (see the round "
             "ranges); compare rows of one run, not across runs. Predicted ms come from the "
             "table's sweeps and measured ms from later rounds, so on a busy machine the two "
             "absolute levels differ with the load of the moment: compare the speed-ups; "
             f"1-minute load average {facts['load'][0]:.1f} at the start and "
             f"{facts['load'][1]:.1f} at the end, on {os.cpu_count()} cores"),
        ]
        title = f"Latency-aware allocation ({args.model}, CPU)"
        text = [f"# {title}", "", *Environment(args.threads).lines(),
                f"- generated: {time.strftime('%Y-%m-%d %H:%M %Z')}", "", *notes, "",
                *lines, "", "Kept units per group (the planner's count for each ratio):", "",
                *kept, ""]
        atomic_write_text(args.markdown, "\n".join(text))


if __name__ == "__main__":
    main()

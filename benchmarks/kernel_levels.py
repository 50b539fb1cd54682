"""Do the trained figures hold on every CPU? The demo and the training-free reconstruction
sweep, re-run with PyTorch's CPU kernels forced to each instruction level.

    OMP_NUM_THREADS=1 python benchmarks/kernel_levels.py --markdown docs/benchmarks/kernel_levels.md

Machines differ (some CPUs have AVX-512, some only AVX2) and oneDNN / ATen pick different
kernels on each, so the same seed trains along a slightly different path. The figures on the
other pages come from one machine; this page re-runs two of them in fresh processes under
``ATEN_CPU_CAPABILITY=default`` (portable code), ``avx2`` and the machine's own level:

- ``prunekit demo --no-cache`` (trains the dense digits CNN, removes half the channels of every
  conv, reconstructs, fine-tunes with distillation): dense and final validation accuracy;
- ``benchmarks/reconstruct_digits.py`` (four splits, accuracy right after pruning without
  training): the mean drop of the reconstructed model per ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, command_line, cpu_model, save_outputs, version

LEVELS = ("default", "avx2", "native")


def _env(level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if level != "native":
        env["ATEN_CPU_CAPABILITY"] = level
    return env


def _kernels(level: str) -> str:
    done = subprocess.run([sys.executable, "-c", "import torch; "
                           "print(torch.backends.cpu.get_cpu_capability())"],
                          env=_env(level), capture_output=True, text=True, check=True)
    return done.stdout.strip()


def run_demo(level: str, work: Path) -> dict[str, Any]:
    out = work / f"demo-{level}"
    subprocess.run([sys.executable, "-m", "prunekit", "demo", "--no-cache", "--quiet",
                    "--out", str(out)], env=_env(level), check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text())
    return {"dense": report["before"]["metric"], "final": report["after"]["metric"],
            "ratio": report["settings"]["demo"]["ratio"]}


def run_reconstruct(level: str, work: Path) -> dict[str, float]:
    path = work / f"reconstruct-{level}.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "reconstruct_digits.py"),
                    "--json", str(path)], env=_env(level), check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    rows = json.loads(path.read_text())["rows"]
    drops: dict[str, float] = {}
    for ratio in sorted({r["ratio"] for r in rows}):
        rs = [r for r in rows if r["ratio"] == ratio]
        drops[f"{ratio:.2f}"] = 100 * sum(r["dense"] - r["reconstructed"] for r in rs) / len(rs)
    return drops


def render(result: dict[str, Any]) -> str:
    pct = "{:.2%}".format
    levels = result["levels"]
    lines = [
        "# Trained figures at every CPU kernel level", "",
        f"- machine: {cpu_model()}, {result['threads']} thread(s) (OMP_NUM_THREADS="
        f"{result['omp'] or 'unset'})",
        f"- torch {version('torch')}, prunekit {version('prunekit')}",
        f"- command: `{command_line()}`; total runtime {result['seconds']:.0f} s",
        "- each column runs in fresh processes with `ATEN_CPU_CAPABILITY` set as named "
        "(native: unset); the header row says which kernels torch reported", "",
        "| | " + " | ".join(f"{lv} ({levels[lv]['kernels']})" for lv in levels) + " |",
        "|---|" + "---:|" * len(levels),
    ]
    demo = {lv: levels[lv]["demo"] for lv in levels}
    ratio = next(iter(demo.values()))["ratio"]
    lines.append("| demo: dense accuracy | " + " | ".join(pct(d["dense"]) for d in demo.values())
                 + " |")
    lines.append(f"| demo: {ratio:g} of the channels removed, after recovery | "
                 + " | ".join(pct(d["final"]) for d in demo.values()) + " |")
    lines.append("| demo: change (points) | " + " | ".join(
        f"{100 * (d['final'] - d['dense']):+.2f}" for d in demo.values()) + " |")
    for key in next(iter(levels.values()))["reconstruct"]:
        lines.append(f"| reconstructed without training, ratio {key}: mean drop (points) | "
                     + " | ".join(f"{levels[lv]['reconstruct'][key]:+.2f}" for lv in levels)
                     + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--json", default="out/kernel_levels.json")
    parser.add_argument("--markdown", default="")
    args = parser.parse_args()
    start = time.perf_counter()
    levels: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in [lv for lv in args.levels.split(",") if lv]:
            work = Path(tmp)
            levels[level] = {"kernels": _kernels(level), "demo": run_demo(level, work),
                             "reconstruct": run_reconstruct(level, work)}
            print(level, json.dumps(levels[level]), flush=True)
    import torch

    result = {"levels": levels, "threads": torch.get_num_threads(),
              "omp": os.environ.get("OMP_NUM_THREADS"), "seconds": time.perf_counter() - start}
    save_outputs(result, args.json, args.markdown, lambda: render(result))
    print(f"total {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()

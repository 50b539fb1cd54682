"""``prunekit env``: versions, devices and threads, for bug reports."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import Printer, emit_json, json_option, out_option, quiet_option

__all__ = ["env"]


@click.command("env")
@out_option(None, "Also write env.json into this folder.")
@json_option
@quiet_option
def env(out: Path | None, as_json: bool, quiet: bool) -> None:
    """Print Python, torch, torchvision and prunekit versions, devices and threads."""
    from ..environment import environment_info
    from ..files import atomic_write_text

    info = environment_info()
    if out is not None:
        atomic_write_text(out / "env.json", json.dumps(info, indent=1) + "\n")
    if as_json:
        emit_json(info)
        return
    printer = Printer(quiet=quiet)
    lines = [f"{name:<13} {version or 'not installed'}"
             for name, version in info["versions"].items()]
    for device in info["devices"]:
        details = ", ".join(f"{k} {v}" for k, v in device.items() if k != "type")
        lines.append(f"{'device':<13} {device['type']}: {details}")
    threads = info["threads"]
    lines.append(f"{'threads':<13} torch {threads['torch_intra_op']} intra-op, "
                 f"{threads['torch_inter_op']} inter-op; OMP_NUM_THREADS="
                 f"{threads['OMP_NUM_THREADS'] or 'unset'}; {threads['cpu_count']} CPUs")
    printer.result("\n".join(lines))

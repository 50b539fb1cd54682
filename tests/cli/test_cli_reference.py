"""docs/cli.md is generated from the click command tree by scripts/cli_reference.py and must
match the code: regenerate and compare."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference",
                                                  ROOT / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    script = _script()
    generated = script.generate()
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == generated, ("docs/cli.md is out of date: run "
                                    "python scripts/cli_reference.py")


def test_cli_reference_covers_every_command_and_option() -> None:
    from prunekit.cli.main import cli

    text = _script().generate()
    ctx = cli.make_context("prunekit", [], resilient_parsing=True)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and f"## `prunekit {name}`" in text
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert f"`{opt}`" in text, (name, opt)
    assert "| `--ratio` | FLOAT | `0.5` |" in text  # defaults are shown

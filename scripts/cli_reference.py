"""Write docs/cli.md, the command-line reference, from the click command tree.

Usage: ``python scripts/cli_reference.py`` (writes docs/cli.md) or ``--check`` (exit 1 when
docs/cli.md differs from what the code would generate). Everything comes from the commands
themselves: usage, help text, arguments and every option with its default.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"

HEADER = """# Command-line reference

Generated from the code by `scripts/cli_reference.py`; do not edit by hand (a test fails
when this file is out of date: run `python scripts/cli_reference.py` to regenerate it).
Exit codes: 0 success, 2 usage error, 1 failure; errors are one line on stderr.
"""


def _cell(text: Any) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param: click.Parameter, ctx: click.Context) -> str:
    value = param.get_default(ctx, call=False)
    if isinstance(param, click.Option) and param.is_flag and not param.count:
        return "on" if value is True else "off"
    if param.multiple and not isinstance(value, (list, tuple)):
        return "-"  # nothing given: click's "unset" marker
    if value is None or callable(value) or (param.multiple and not value):
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def _option_rows(command: click.Command, ctx: click.Context) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
        kind = "flag" if param.is_flag else _cell(param.make_metavar(ctx))
        if param.multiple:
            kind += " (repeatable)"
        rows.append(f"| {names} | {kind} | {_default(param, ctx)} | {_cell(param.help or '')} |")
    return rows


def _section(command: click.Command, path: str, parent: click.Context | None) -> list[str]:
    # make_context applies the group's context_settings (e.g. -h for help), as a real call
    ctx = command.make_context(path.split()[-1], [], parent=parent, resilient_parsing=True)
    pieces = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"## `{path}`", "", "```text", f"{path} {pieces}".rstrip(), "```", "",
             inspect.cleandoc(command.help or "").replace("\b\n", ""), ""]
    arguments = [p for p in command.get_params(ctx) if isinstance(p, click.Argument)]
    if arguments:
        lines += ["Arguments: " + ", ".join(f"`{a.human_readable_name}`" for a in arguments),
                  ""]
    rows = _option_rows(command, ctx)
    if rows:
        lines += ["| option | value | default | meaning |", "| --- | --- | --- | --- |",
                  *rows, ""]
    return lines


def render(group: click.Group, name: str = "prunekit") -> str:
    """The Markdown reference of ``group`` and every subcommand (alphabetical)."""
    root = group.make_context(name, [], resilient_parsing=True)
    lines = [HEADER]
    commands = group.list_commands(root)
    lines += ["| command | what it does |", "| --- | --- |"]
    for sub in commands:
        cmd = group.get_command(root, sub)
        assert cmd is not None
        lines.append(f"| [`{name} {sub}`](#{name}-{sub}) | {_cell(cmd.get_short_help_str(200))} |")
    lines.append("")
    lines += _section(group, name, None)
    for sub in commands:
        cmd = group.get_command(root, sub)
        assert cmd is not None
        lines += _section(cmd, f"{name} {sub}", root)
    return "\n".join(lines).rstrip() + "\n"


def generate() -> str:
    """The reference of the ``prunekit`` command as installed from ``src/``."""
    from prunekit.cli.main import cli

    return render(cli)


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if not TARGET.is_file() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python scripts/cli_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Entry point of the ``prunekit`` command: the click group and error handling.

Exit codes: 0 success, 2 usage error (bad option, argument or model spec syntax),
1 failure (a :class:`~prunekit.errors.PrunekitError` or anything unexpected). Errors print
one line on stderr, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .. import __version__
from ..errors import PrunekitError
from .analyze import analyze
from .demo import demo
from .env import env
from .export import export
from .measure import measure
from .oneshot import oneshot
from .prune import prune
from .report import report
from .run_recipe import run_recipe

__all__ = ["cli", "main", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prunekit")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """prunekit: make PyTorch models smaller and faster by pruning, and prove it."""


cli.add_command(demo)
cli.add_command(prune)
cli.add_command(run_recipe)
cli.add_command(analyze)
cli.add_command(measure)
cli.add_command(export)
cli.add_command(oneshot)
cli.add_command(report)
cli.add_command(env)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="prunekit", standalone_mode=False)
    except click.UsageError as exc:  # and BadParameter: exit code 2, one line
        where = exc.ctx.command_path if exc.ctx is not None else "prunekit"
        click.echo(f"prunekit: usage error: {_one_line(exc.format_message())} "
                   f"(see '{where} --help')", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"prunekit: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo("prunekit: aborted", err=True)
        return 1
    except PrunekitError as exc:
        if debug:
            raise
        click.echo(f"prunekit: error: {_one_line(str(exc))}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("prunekit: interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        click.echo(f"prunekit: unexpected error: {type(exc).__name__}: {_one_line(str(exc))} "
                   "(run again with --debug for the traceback, and please report it)", err=True)
        return 1
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())

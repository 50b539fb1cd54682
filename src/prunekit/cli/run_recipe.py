"""``prunekit run RECIPE.yaml``: the same as ``prunekit prune``, settings from a recipe."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from .common import json_option, out_option, quiet_option

__all__ = ["run_recipe"]


@click.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@out_option(None, "Override the recipe's out.dir.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow unpickling the model or weights file (overrides the recipe).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted iterative run from its last checkpoint in "
                   "OUT/checkpoints.")
@json_option
@quiet_option
def run_recipe(recipe: Path, out: Path | None, trust_pickle: bool, resume: bool,
               as_json: bool, quiet: bool) -> None:
    """Run the pruning recipe RECIPE (YAML; sections model, data, prune, finetune, distill,
    out, iterative, reconstruct, decompose, quantize, shrink (prune while training);
    see examples/recipe.yaml). Relative paths are
    relative to the current folder."""
    from ..workflow.recipe import load_recipe
    from .run_common import execute

    config = load_recipe(recipe)
    if out is not None:
        config = dataclasses.replace(config, out=dataclasses.replace(config.out, dir=str(out)))
    if trust_pickle:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                       trust_pickle=True))
    execute(config, as_json=as_json, quiet=quiet, resume=resume)

"""``prunekit prune MODEL_SPEC``: prune a model on data given on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import (check_model_spec, data_options, json_option, model_and_pruning_options,
                     out_option,
                     parse_shape, quiet_option)

if TYPE_CHECKING:
    from ..decompose.config import DecomposeConfig

__all__ = ["prune"]


@click.command("prune")
@click.argument("model_spec")
@data_options
@click.option("--input-features", is_flag=True,
              help="Also prune input features (dim 1 of the input; CSV columns) and report "
                   "which remain.")
@click.option("--ratio", type=float, default=0.5, show_default=True,
              help="Fraction of units removed from each group (local) or overall (global).")
@click.option("--importance", default="l2", show_default=True, help="Importance criterion.")
@click.option("--scope", type=click.Choice(["local", "global"]), default="local",
              show_default=True)
@click.option("--flops-reduction", type=float, default=None,
              help="Instead of --ratio: prune until FLOPs shrink this many times (2 = half).")
@click.option("--depth-width", is_flag=True,
              help="Meet --flops-reduction [default: 2] by removing whole residual blocks as "
                   "well as channels, whichever mix measures fastest at --serving-batch "
                   "[default: 1] (candidates are listed in the report).")
@click.option("--depth-width-budget", type=click.FloatRange(min=0), default=None,
              help="With --depth-width: the largest drop of the metric, before "
                   "fine-tuning, a candidate may have [default: none, the fastest wins].")
@model_and_pruning_options
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tuning epochs after pruning (distilled from the unpruned model).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Fine-tuning rate.")
@click.option("--no-distill", is_flag=True, help="Fine-tune on labels only.")
@click.option("--distill-feature", "distill_features", multiple=True, metavar="MODULE",
              help="Also match this module's output to the unpruned model's (feature "
                   "distillation; repeat for several modules, names as in named_modules()).")
@click.option("--reconstruct", is_flag=True,
              help="Right after pruning, re-fit every layer that lost inputs to the unpruned "
                   "outputs on 8 training batches (no training; before any fine-tuning).")
@click.option("--decompose", "decompose_settings", multiple=True, metavar="KEY=VALUE",
              help="After pruning (and --reconstruct), before fine-tuning: factorize Linear "
                   "and Conv2d layers (SVD, spatial SVD, Tucker-2); KEY=VALUE are fields of "
                   "prunekit.decompose.DecomposeConfig, e.g. --decompose energy=0.95 "
                   "--decompose activation_aware=true (calibration: 4 training batches). "
                   "Repeat for several settings; --ratio 0 decomposes without pruning.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for latency [default: torch's setting].")
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed forward passes per latency figure.")
@click.option("--latency-device", default="cpu", show_default=True,
              help="Where latency and peak memory are measured: cpu, cuda or cuda:N (pruning "
                   "and fine-tuning stay on cpu).")
@click.option("--cuda-graph", is_flag=True,
              help="Time CUDA-graph replays of one captured forward pass, so kernel-launch "
                   "overhead does not hide the model's cost (needs --latency-device cuda).")
@click.option("--serving-batch", type=click.IntRange(1, 4096), default=None,
              help="Also time dense and pruned interleaved at batch 1 and at this batch size "
                   "(the one you serve) for the report's speed section: throughput, batch-1 "
                   "latency and, when the speed-up falls short of the MACs, where time goes.")
@click.option("--no-html", is_flag=True, help="Write report.json only.")
@click.option("--iterative", is_flag=True,
              help="Prune in steps until a target, fine-tuning after each (--finetune-epochs) "
                   "and keeping a step only within --budget; every kept step is checkpointed "
                   "in OUT/checkpoints.")
@click.option("--target-macs-reduction", type=float, default=None,
              help="Iterative target: this many times fewer MACs [default: 2].")
@click.option("--target-params-reduction", type=float, default=None,
              help="Iterative target: this many times fewer parameters (instead of MACs).")
@click.option("--step-factor", type=float, default=2.0, show_default=True,
              help="Iterative: reduction asked of each step (shrinks after a rolled-back step).")
@click.option("--budget", type=float, default=0.01, show_default=True,
              help="Iterative: largest drop of the metric from the dense model (0.01 = one "
                   "point of accuracy).")
@click.option("--max-steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="Iterative: most steps.")
@click.option("--resume", is_flag=True,
              help="Iterative: continue an interrupted run from its last checkpoint.")
@out_option("prunekit-out", "Folder for report.json, report.html and pruned/ (weights + plan).")
@json_option
@quiet_option
def prune(model_spec: str, data_spec: str, label_column: str, image_size: int,
          split: str | None, feature_column: str | None, metric: str, input_features: bool,
          ratio: float, importance: str, scope: str, flops_reduction: float | None,
          depth_width: bool, depth_width_budget: float | None, model_args: dict[str, Any],
          ignore: tuple[str, ...], round_to: int,
          input_shape: str | None, weights: Path | None, trust_pickle: bool,
          finetune_epochs: int, lr: float,
          no_distill: bool, distill_features: tuple[str, ...], reconstruct: bool,
          decompose_settings: tuple[str, ...], batch_size: int, seed: int, threads: int | None,
          repeats: int, latency_device: str, cuda_graph: bool, serving_batch: int | None,
          no_html: bool, iterative: bool,
          target_macs_reduction: float | None,
          target_params_reduction: float | None, step_factor: float, budget: float,
          max_steps: int, resume: bool, out: Path, as_json: bool, quiet: bool) -> None:
    """Prune MODEL_SPEC (torchvision:NAME, timm:NAME, prunekit:digits_cnn, a Hugging Face
    folder, path/to/file.py:factory, path/to/model.onnx, or a pickled model.pt with
    --trust-pickle; constructor arguments as --model-arg num_classes=10 or
    'SPEC?num_classes=10'), fine-tune, measure and write a report; with --iterative, in
    checkpointed steps until a target (--resume continues after a crash)."""
    from ..plan.config import PruneConfig
    from ..errors import ConfigError
    from ..train.distill import DistillConfig
    from ..train.finetune import FinetuneConfig
    from ..workflow.config import (
        DataSource,
        DepthWidthRun,
        IterativeRun,
        ModelSource,
        OutputConfig,
        Reconstruct,
        RunConfig,
    )
    from .run_common import execute

    check_model_spec(model_spec, model_args)
    shape = parse_shape(input_shape) if input_shape else None
    if depth_width_budget is not None and not depth_width:
        raise click.UsageError("--depth-width-budget needs --depth-width")
    depth = None
    if depth_width:
        if iterative or input_features:
            raise click.UsageError("--depth-width does not combine with --iterative or "
                                   "--input-features yet")
        try:
            depth = DepthWidthRun(macs_reduction=flops_reduction or 2.0,
                                  budget=depth_width_budget)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        flops_reduction = None  # the target is depth + width's
    try:
        prune_config = PruneConfig(ratio=ratio, importance=importance,
                                   scope=scope,  # type: ignore[arg-type]
                                   flops_reduction=flops_reduction, ignore=ignore,
                                   round_to=round_to,
                                   input_features=((0, 1),) if input_features else ())
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if distill_features and (no_distill or not finetune_epochs):
        raise click.UsageError("--distill-feature needs --finetune-epochs N and distillation "
                               "(drop --no-distill)")
    targets = (target_macs_reduction, target_params_reduction)
    if not iterative and (any(t is not None for t in targets) or resume):
        raise click.UsageError("--target-*-reduction and --resume need --iterative")
    iterate = None
    if iterative:
        if all(t is not None for t in targets):
            raise click.UsageError("give --target-macs-reduction or --target-params-reduction, "
                                   "not both")
        cost = "params" if target_params_reduction is not None else "macs"
        target = target_params_reduction or target_macs_reduction or 2.0
        try:
            iterate = IterativeRun(target=target, metric=cost,  # type: ignore[arg-type]
                                   budget=budget, step_factor=step_factor, max_steps=max_steps)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
    try:
        output = OutputConfig(str(out), html=not no_html, threads=threads,
                              warmup=min(5, repeats), repeats=repeats, device=latency_device,
                              cuda_graph=cuda_graph, serving_batch=serving_batch)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        config = RunConfig(
            model=ModelSource(model_spec, None if weights is None else str(weights), shape,
                              trust_pickle, model_args),
            data=DataSource(data_spec, label_column, batch_size=batch_size, seed=seed,
                            image_size=image_size, split=split, feature_column=feature_column,
                            metric=metric),
            prune=prune_config,
            finetune=FinetuneConfig(epochs=finetune_epochs, lr=lr),
            distill=None if no_distill else DistillConfig(features=distill_features),
            out=output,
            iterative=iterate,
            reconstruct=Reconstruct() if reconstruct else None,
            decompose=_decompose_config(decompose_settings),
            depth_width=depth)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    execute(config, as_json=as_json, quiet=quiet, resume=resume)


def _decompose_config(settings: tuple[str, ...]) -> DecomposeConfig | None:
    """``--decompose KEY=VALUE`` options as a ``DecomposeConfig`` (values read as YAML, the
    way a recipe's ``decompose:`` section is), or ``None`` without any."""
    if not settings:
        return None
    import yaml

    from ..decompose.config import DecomposeConfig
    from ..workflow.recipe import RecipeError, section

    values = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--decompose takes KEY=VALUE (e.g. energy=0.95), got "
                                   f"{item!r}")
        try:
            values[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise click.UsageError(f"--decompose {item!r}: the value is not valid YAML") \
                from None
    try:
        return section("decompose", DecomposeConfig, None, values, "--decompose")
    except RecipeError as exc:
        raise click.UsageError(str(exc)) from None

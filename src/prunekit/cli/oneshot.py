"""``prunekit oneshot MODEL_DIR``: one-shot, block-by-block pruning of a Hugging Face folder.

This module reads and checks the inputs; :mod:`prunekit.workflow.oneshot` runs the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..llm.methods import available_oneshot_methods
from .common import Printer, emit_json, json_option, parse_assignments, quiet_option

__all__ = ["oneshot"]

DTYPES = ("float32", "bfloat16", "float16")


def _tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{str(model_dir)!r} has no tokenizer files transformers can "
                                 f"read ({exc}); save the tokenizer into the model folder",
                                 param_hint="MODEL_DIR") from None


def _family(model_dir: Path) -> Any:
    """The supported family named by the folder's config.json (before any weight loads)."""
    from transformers import AutoConfig

    from ..hf.families import family_of_config

    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{str(model_dir)!r}: no readable config.json ({exc})",
                                 param_hint="MODEL_DIR") from None
    return family_of_config(config, str(model_dir))


def _calibration(path: Path, tokenizer: Any, decoder: bool, samples: int, seq_len: int) -> Any:
    """Windows of a text (decoders), one padded line each (encoders), or stored token ids."""
    from ..llm import (
        calibration_from_sentences,
        calibration_from_tensors,
        calibration_from_text,
    )

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(path)
        if "input_ids" not in tensors:
            raise click.BadParameter(f"{str(path)!r} holds no 'input_ids' tensor "
                                     f"(it has {sorted(tensors)})", param_hint="--calibration")
        return calibration_from_tensors(tensors["input_ids"], tensors.get("attention_mask"))
    if decoder:
        return calibration_from_text(path, tokenizer, num_samples=samples, seq_len=seq_len)
    lines = path.read_text(encoding="utf-8").splitlines()[:samples]
    return calibration_from_sentences(lines, tokenizer, max_length=seq_len)


@click.command("oneshot")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--calibration", "calibration_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Text file (decoders: windows of the text; encoders: one sentence per line) "
                   "or a .safetensors file with input_ids [N, T] (and attention_mask).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="New folder for the pruned checkpoint (with tokenizer and oneshot.json).")
@click.option("--method", type=click.Choice(available_oneshot_methods()),
              default="wanda", show_default=True)
@click.option("--method-option", "method_options", multiple=True, metavar="KEY=VALUE",
              callback=parse_assignments("--method-option"),
              help="An option of the method, e.g. blocksize=64 or damp=0.02 for sparsegpt "
                   "(repeatable).")
@click.option("--sparsity", type=float, default=0.5, show_default=True,
              help="Fraction of weights zeroed in every pruned layer.")
@click.option("--pattern", default="unstructured", show_default=True,
              help="'unstructured' or N:M such as 2:4.")
@click.option("--swap-rounds", type=click.IntRange(min=0), default=0, show_default=True,
              help="Refine magnitude/Wanda masks with up to this many error-lowering swaps "
                   "per row (needs each layer's input Hessian).")
@click.option("--samples", type=click.IntRange(min=1), default=64, show_default=True,
              help="Calibration sequences.")
@click.option("--seq-len", type=click.IntRange(min=1), default=512, show_default=True,
              help="Tokens per calibration sequence (encoders: longest sentence).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="Cast floating-point weights as they load [default: the checkpoint's].")
@click.option("--offload-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep every block but the one being pruned on disk here (models larger "
                   "than RAM).")
@click.option("--eval-text", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Held-out text: perplexity (decoders) or embedding cosine to "
                                 "the unpruned model (encoders), before and after.")
@json_option
@quiet_option
def oneshot(model_dir: Path, calibration_path: Path, out: Path, method: str,
            method_options: dict[str, Any], sparsity: float, pattern: str, swap_rounds: int,
            samples: int, seq_len: int, batch_size: int,
            dtype: str | None, offload_dir: Path | None, eval_text: Path | None,
            as_json: bool, quiet: bool) -> None:
    """Prune the Hugging Face model in MODEL_DIR one block at a time from calibration data
    (a one-shot method such as magnitude, Wanda or SparseGPT; unstructured or N:M) and save
    it to --out."""
    import torch

    from ..errors import ConfigError
    from ..llm import OneShotConfig
    from ..workflow.oneshot import Evaluation, OneShotRun, run_oneshot

    try:
        config = OneShotConfig(method=method, sparsity=sparsity, pattern=pattern,
                               options=method_options, batch_size=batch_size,
                               swap_rounds=swap_rounds or None)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise click.BadParameter(f"{str(out)!r} already exists and is not empty; choose a new "
                                 "folder", param_hint="--out")
    if eval_text is not None and offload_dir is not None:
        raise click.UsageError("--eval-text runs the whole model, which --offload-dir keeps on "
                               "disk; drop one of them (evaluate the saved folder instead)")
    printer = Printer(quiet=quiet or as_json)
    decoder = _family(model_dir).decoder
    tokenizer = _tokenizer(model_dir)
    data = _calibration(calibration_path, tokenizer, decoder, samples, seq_len)
    evaluation = None
    if eval_text is not None:
        try:
            evaluation = Evaluation(eval_text, tokenizer, decoder, seq_len)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--eval-text") from None
    run = OneShotRun(model_dir, out, config, data, calibration_path, tokenizer, evaluation,
                     dtype=getattr(torch, dtype) if dtype else None, offload_dir=offload_dir)
    summary = run_oneshot(run, log=printer.info)
    if as_json:
        emit_json(summary)
        return
    printer.result(f"pruned {summary['layers']} layers to {summary['achieved_sparsity']:.1%} "
                   f"zeros in {summary['prune_seconds']:.1f} s; saved to {out}")
    evaluated = summary["evaluation"]
    if evaluated is not None:
        before, after = evaluated["before"], evaluated["after"]
        for key in after:
            printer.result(f"{key.replace('_', ' ')}: {before[key]:.4g} -> {after[key]:.4g}")

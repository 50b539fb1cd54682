"""One one-shot run over a Hugging Face folder: load (in memory or with blocks offloaded),
evaluate, prune block by block, evaluate again, save the checkpoint and ``oneshot.json``.

The command line (``prunekit oneshot``) reads the inputs — tokenizer, family, calibration
data, evaluation text — and checks its options; this module runs the pipeline on them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._internal.validate import settings_of
from ..errors import ConfigError
from ..files import atomic_directory, atomic_write_text

__all__ = ["Evaluation", "OneShotRun", "run_oneshot"]

Log = Callable[[str], None]


class Evaluation:
    """Perplexity (decoders) or embedding fidelity to the unpruned model (encoders) on a
    held-out text; the first call of an encoder sets the reference embeddings."""

    def __init__(self, path: Path, tokenizer: Any, decoder: bool, seq_len: int) -> None:
        text = path.read_text(encoding="utf-8")
        self.path, self.decoder = path, decoder
        if decoder:
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            windows = ids.numel() // seq_len
            if windows < 1:
                raise ConfigError(f"evaluation text {str(path)!r} has {ids.numel()} tokens, "
                                  f"fewer than one window of {seq_len} (lower --seq-len or "
                                  f"give a longer text)")
            self.ids = ids[:windows * seq_len].reshape(windows, seq_len)
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            self.enc = tokenizer(lines, padding=True, truncation=True, max_length=seq_len,
                                 return_tensors="pt")
        self.reference: Any = None

    def __call__(self, model: Any) -> dict[str, float]:
        from ..llm import embedding_fidelity, mean_pooled_embeddings, perplexity

        if self.decoder:
            return {"perplexity": perplexity(model, self.ids)}
        emb = mean_pooled_embeddings(model, self.enc["input_ids"], self.enc["attention_mask"])
        if self.reference is None:
            self.reference = emb
        return {"embedding_cosine": embedding_fidelity(self.reference, emb)}


@dataclass
class OneShotRun:
    """The inputs of one run, read and checked by the caller."""

    model_dir: Path
    out: Path
    config: Any  # prunekit.llm.OneShotConfig
    calibration: Any  # prunekit.llm calibration data
    calibration_path: Path
    tokenizer: Any
    evaluation: Evaluation | None = None
    dtype: torch.dtype | None = None
    offload_dir: Path | None = None


def run_oneshot(run: OneShotRun, *, log: Log | None = None) -> dict[str, Any]:
    """Prune, save the checkpoint (with the tokenizer) into ``run.out`` and return the summary
    written there as ``oneshot.json``."""
    from ..llm import load_offloaded, prune_sequential, save_offloaded
    from ..llm.checkpoint import load_checkpoint

    say: Log = log if log is not None else (lambda _msg: None)
    if run.evaluation is not None and run.offload_dir is not None:
        raise ConfigError("evaluation runs the whole model, which offloading keeps on disk; "
                          "evaluate the saved folder instead")
    t0 = time.perf_counter()
    config, data, evaluate = run.config, run.calibration, run.evaluation
    if run.offload_dir is not None:
        say(f"loading {run.model_dir} with its blocks offloaded to {run.offload_dir}")
        model: Any = load_offloaded(run.model_dir, run.offload_dir, dtype=run.dtype)
    else:
        say(f"loading {run.model_dir}")
        model = load_checkpoint(run.model_dir, dtype=run.dtype)
    before = evaluate(model) if evaluate else None
    say(f"pruning: {config.method}, {config.pattern}, sparsity {config.sparsity:g}, "
        f"{data.num_samples} calibration sequences of {data.seq_len} tokens")
    result = prune_sequential(model, data, config, offload_dir=run.offload_dir,
                              keep_offloaded=run.offload_dir is not None)
    after = evaluate(model) if evaluate else None
    if run.offload_dir is not None:
        save_offloaded(model, run.offload_dir, run.out)
    else:
        with atomic_directory(run.out) as tmp:
            model.save_pretrained(tmp)
    run.tokenizer.save_pretrained(run.out)
    summary: dict[str, Any] = {
        "schema": "prunekit.oneshot", "version": 1, "model": str(run.model_dir),
        "out": str(run.out),
        "config": {"method": config.method, "sparsity": config.sparsity,
                   "pattern": config.pattern, "swap_rounds": config.swap_rounds or 0,
                   "batch_size": config.batch_size, "options": settings_of(config.options)},
        "calibration": {"path": str(run.calibration_path), "sequences": data.num_samples,
                        "seq_len": data.seq_len},
        "achieved_sparsity": result.sparsity, "layers": len(result.layers),
        "prune_seconds": result.seconds, "total_seconds": time.perf_counter() - t0,
        "offloaded": run.offload_dir is not None,
        "evaluation": None if evaluate is None else {"text": str(evaluate.path),
                                                    "before": before, "after": after},
    }
    atomic_write_text(run.out / "oneshot.json", json.dumps(summary, indent=1) + "\n")
    return summary

"""Quality after pruning: perplexity for decoders, embedding fidelity for encoders."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def _check_ids(input_ids: torch.Tensor, min_len: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 \
            or input_ids.shape[1] < min_len or input_ids.shape[0] < 1:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else input_ids
        raise ConfigError(
            f"evaluation input_ids must be a 2-D tensor [N, T] with N >= 1 and T >= "
            f"{min_len}, got {shape}"
        )


@torch.no_grad()
def perplexity(model: nn.Module, input_ids: torch.Tensor, *, batch_size: int = 8) -> float:
    """``exp`` of the mean next-token negative log-likelihood on held-out ``[N, T]`` ids."""
    _check_ids(input_ids, 2)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[start:start + batch_size].long().to(device)
            logits = model(input_ids=ids, use_cache=False).logits.float()
            nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                  ids[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += ids[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(total / count)


@torch.no_grad()
def mean_pooled_embeddings(model: nn.Module, input_ids: torch.Tensor,
                           attention_mask: torch.Tensor | None = None, *,
                           batch_size: int = 32) -> torch.Tensor:
    """Sentence embeddings ``[N, hidden]``: last hidden state averaged over real tokens."""
    _check_ids(input_ids, 1)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[start:start + batch_size].long().to(device)
            mask = attention_mask[start:start + batch_size].to(device)
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            h = getattr(out, "last_hidden_state", None)
            h = out.hidden_states[-1] if h is None else h
            m = mask.unsqueeze(-1).to(h.dtype)
            chunks.append(((h * m).sum(1) / m.sum(1).clamp_min(1.0)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def embedding_fidelity(reference: torch.Tensor, pruned: torch.Tensor) -> float:
    """Mean cosine similarity between matching rows of two ``[N, hidden]`` embeddings."""
    if reference.shape != pruned.shape or reference.dim() != 2:
        raise ConfigError(
            f"embedding_fidelity needs two [N, hidden] tensors of one shape, got "
            f"{tuple(reference.shape)} and {tuple(pruned.shape)}"
        )
    return float(F.cosine_similarity(reference.float(), pruned.float(), dim=1).mean())

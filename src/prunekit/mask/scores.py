"""Element-wise importance: scores of a weight's shape from the importance registry.

Masked pruning treats every weight tensor as its own group whose units are single
elements. :func:`element_scores` builds that group (a :class:`GroupSlices` with one
member indexed element by element) and asks a criterion to score it, so registry criteria
that score each unit from its own slice work unchanged:

- ``"l1"`` / ``"l2"``: ``|w|`` (magnitude; the default);
- ``"gradient"``: ``|g|`` from the accumulated ``.grad``;
- ``"taylor"``: ``|w * g|``;
- :class:`InputNormWeightedImportance`: ``|w| * ||X_j||`` with input norms recorded on
  calibration data (the Wanda score), not registered by name.

Criteria that compare units with one another or read per-channel statistics
(``redundancy``, ``bn_scale``, ...) cannot score single weights and are refused.
Any other tensor of the weight's shape can be passed directly as scores.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..importance import GroupSlices, Importance, MemberSlice, get_importance
from ..importance.reduce import MemberImportance, NormalizedImportance, as_float

INPUT_NORM = "input_norm"


class InputNormWeightedImportance(NormalizedImportance):
    """Wanda-style score ``|W_ij| * ||X_j||_2``: weight magnitude times input norm."""

    elementwise = True
    needs_activations = True

    def score(self, group: GroupSlices) -> torch.Tensor:
        norm = group.extras.get(INPUT_NORM)
        if norm is None:
            raise ConfigError(
                f"input-norm-weighted importance needs input norms for {group.name!r}; "
                "pass a calibrate function that runs the model on calibration data"
            )
        return wanda_scores(group.members[0].tensor, norm)


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor) -> torch.Tensor:
    """Wanda importance ``|W_ij| * ||X_j||_2``; ``input_norm`` broadcasts against ``weight``
    (see :func:`expand_input_norm` for a per-input norm of a weight ``[out, in, ...]``)."""
    return as_float(weight).abs() * as_float(input_norm).to(weight.device)


def resolve_element_importance(spec: str | Importance,
                               options: dict[str, object] | None = None) -> Importance:
    """A criterion from the registry (or an instance) that can score single weights."""
    criterion = get_importance(spec, **(options or {}))
    if not (isinstance(criterion, MemberImportance) or getattr(criterion, "elementwise", False)):
        raise ConfigError(
            f"importance {getattr(criterion, 'name', '') or type(criterion).__name__!r} "
            "cannot score single weights (it compares units with each other or reads "
            "per-channel statistics); use 'l1', 'l2', 'gradient', 'taylor' or "
            "prunekit.mask.InputNormWeightedImportance(), or pass score tensors"
        )
    return criterion


def expand_input_norm(shape: torch.Size, norm: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Broadcast a per-input norm ``[in]`` to a weight of ``shape`` ``[out, in/groups, ...]``."""
    out_dim, in_per_group = shape[0], shape[1]
    if norm.numel() != in_per_group * groups:
        raise ConfigError(
            f"input norm has {norm.numel()} entries but the weight of shape {tuple(shape)} "
            f"with groups={groups} reads {in_per_group * groups} inputs"
        )
    if groups == 1:  # a broadcast view, no copy
        return norm.reshape((1, in_per_group) + (1,) * (len(shape) - 2)).expand(shape)
    per_group = norm.reshape(groups, in_per_group)
    rows = per_group.repeat_interleave(out_dim // groups, dim=0)  # [out, in/groups]
    return rows.reshape(rows.shape + (1,) * (len(shape) - 2)).expand(shape)


def element_scores(criterion: Importance, name: str, weight: torch.Tensor,
                   grad: torch.Tensor | None = None,
                   input_norm: torch.Tensor | None = None, groups: int = 1) -> torch.Tensor:
    """Scores of ``weight``'s shape from ``criterion`` (one unit per element)."""
    flat = weight.detach().reshape(-1)
    index = torch.arange(flat.numel(), device=flat.device).unsqueeze(1)
    member = MemberSlice(name, flat, 0, index,
                         grad=None if grad is None else grad.detach().reshape(-1))
    extras: dict[str, torch.Tensor] = {}
    if input_norm is not None:
        extras[INPUT_NORM] = expand_input_norm(weight.shape, input_norm.to(flat.device),
                                               groups).reshape(-1)
    group = GroupSlices(name=name, n_units=flat.numel(), members=(member,), extras=extras)
    scores = criterion(group).reshape(weight.shape)
    if not torch.isfinite(scores).all():
        raise ConfigError(
            f"importance {getattr(criterion, 'name', '')!r} produced NaN or infinite scores "
            f"for {name!r}; check the weights and gradients for NaN"
        )
    return scores

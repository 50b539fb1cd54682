"""Feature matching: intermediate activations of the pruned student follow the teacher's.

For each named module (the same name in student and teacher, which structured pruning
keeps), the student's output is mapped by a linear *adapter* along the one dimension where
the shapes differ (the channels pruning removed) and compared with the teacher's output:

``loss = mean over modules of ||adapter(student) - teacher||² / ||teacher||²``

The loss is relative to the teacher's feature energy, so one weight suits every layer and
model. An adapter starts as the least-squares map from the student's features to the
teacher's on a probe batch (for a freshly pruned model that is close to selecting the kept
channels) and is trained with the student; it is discarded afterwards and never changes the
pruned model. Modules whose outputs have the same shape in both models are compared directly.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .._internal.runtime import eval_mode

__all__ = ["FeatureMatcher", "check_modules"]

#: ridge term of the least-squares adapter start, relative to the mean feature energy
_RIDGE = 1e-3


def _first_tensor(output: Any, name: str) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(f"feature module {name!r} returns {type(output).__name__}, not a tensor "
                      "(or a tuple starting with one); name a module whose output is a tensor")


def _find(model: nn.Module, name: str, which: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=3)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ConfigError(f"feature module {name!r} is not in {which}{hint}; "
                      "give names from model.named_modules()")


def check_modules(model: nn.Module, names: Sequence[str], which: str = "the model") -> None:
    """Raise a :class:`ConfigError` naming the first of ``names`` that ``model`` lacks."""
    for name in names:
        _find(model, name, which)


def _channel_dim(student: torch.Size, teacher: torch.Size, name: str) -> int | None:
    """The one dimension where the shapes differ, or None when they are equal."""
    if len(student) != len(teacher):
        raise ConfigError(f"feature module {name!r}: student output {tuple(student)} and teacher "
                          f"output {tuple(teacher)} have different ranks")
    differ = [d for d, (s, t) in enumerate(zip(student, teacher, strict=True)) if s != t]
    if not differ:
        return None
    if len(differ) > 1 or differ[0] == 0:
        raise ConfigError(f"feature module {name!r}: student output {tuple(student)} and teacher "
                          f"output {tuple(teacher)} differ in more than the channel dimension; "
                          "feature matching needs the same shape up to one pruned dimension")
    return differ[0]


class _Adapter(nn.Module):
    """A linear map along dimension ``dim`` from ``c_in`` student to ``c_out`` teacher channels."""

    def __init__(self, dim: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.zeros(c_out, c_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = torch.movedim(x, self.dim, -1)
        return torch.movedim(moved @ self.weight.t().to(moved.dtype), -1, self.dim)

    @torch.no_grad()
    def fit(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """Start from the ridge least-squares map ``student → teacher`` on one batch."""
        s = torch.movedim(student.float(), self.dim, -1).reshape(-1, student.shape[self.dim])
        t = torch.movedim(teacher.float(), self.dim, -1).reshape(-1, teacher.shape[self.dim])
        gram = s.t() @ s
        ridge = _RIDGE * float(gram.diagonal().mean().clamp_min(1e-12))
        gram.diagonal().add_(ridge)
        self.weight.copy_(torch.linalg.solve(gram, s.t() @ t).t())


class FeatureMatcher:
    """Captures named module outputs of a student and a teacher and scores their mismatch.

    Use :meth:`attach` once with a probe batch (it builds the adapters), add
    :meth:`parameters` to the optimizer, and after each forward of both models call
    :meth:`loss`; :meth:`detach` removes the hooks.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, names: Sequence[str]) -> None:
        if not names:
            raise ConfigError("feature matching needs at least one module name")
        self.names = list(names)
        self._models = {"student": student, "teacher": teacher}
        self._student = {n: _find(student, n, "the student model") for n in self.names}
        self._teacher = {n: _find(teacher, n, "the teacher model") for n in self.names}
        self._captured: dict[tuple[str, str], torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.adapters = nn.ModuleDict()
        self._direct: set[str] = set()

    def _hook(self, side: str, name: str) -> Any:
        def capture(module: nn.Module, args: Any, output: Any) -> None:
            self._captured[(side, name)] = _first_tensor(output, name)
        return capture

    def attach(self, run: Callable[[nn.Module], Any]) -> None:
        """Install the hooks and build each adapter from one probe forward of both models.

        ``run(model)`` runs a model on a probe batch; no gradients are taken.
        """
        for name in self.names:
            self._handles.append(self._student[name].register_forward_hook(
                self._hook("student", name)))
            self._handles.append(self._teacher[name].register_forward_hook(
                self._hook("teacher", name)))
        try:
            self._probe(run)
        except BaseException:
            self.detach()
            raise

    def _probe(self, run: Callable[[nn.Module], Any]) -> None:
        student = self._models["student"]
        with eval_mode(student), torch.no_grad():  # the probe must not move BatchNorm stats
            run(student)
            run(self._models["teacher"])
        for name in self.names:
            s, t = self._pair(name)
            dim = _channel_dim(s.shape, t.shape, name)
            if dim is None:
                self._direct.add(name)
                continue
            adapter = _Adapter(dim, s.shape[dim], t.shape[dim]).to(s.device)
            adapter.fit(s, t)
            self.adapters[self._key(name)] = adapter
        self._captured.clear()

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "/")  # ModuleDict keys may not contain dots

    def _pair(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return self._captured[("student", name)], self._captured[("teacher", name)]
        except KeyError:
            raise ConfigError(f"feature module {name!r} did not run in the forward pass of both "
                              "models; name a module on the path from input to output") from None

    def parameters(self) -> list[nn.Parameter]:
        """The adapters' parameters, to train alongside the student."""
        return list(self.adapters.parameters())

    def loss(self) -> torch.Tensor:
        """Mean relative squared error over the modules, from the last forward of both."""
        terms = []
        for name in self.names:
            s, t = self._pair(name)
            t = t.detach().float()
            if name not in self._direct:
                s = self.adapters[self._key(name)](s)
            energy = t.pow(2).mean().clamp_min(1e-12)
            terms.append((s.float() - t).pow(2).mean() / energy)
        self._captured.clear()
        return torch.stack(terms).mean()

    def detach(self) -> None:
        """Remove the hooks from both models."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._captured.clear()

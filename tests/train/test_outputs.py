"""Built-in loss, metrics and distillation read a Hugging Face ``ModelOutput``'s logits; a
user's own loss sees the output unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.metrics import top_k_accuracy
from prunekit.train import DistillConfig, FinetuneConfig, accuracy, evaluate, finetune
from prunekit.train.outputs import logits_of


@dataclass
class Output:  # the shape of a transformers ModelOutput: attributes, logits among them
    logits: torch.Tensor
    hidden: torch.Tensor | None = None


class Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> Output:
        return Output(self.fc(x), x)


def test_logits_of() -> None:
    t = torch.randn(2, 3)
    assert logits_of(t) is t
    assert logits_of(Output(t)) is t
    assert logits_of((t,)) == (t,)  # not a classifier output: left as it is


def test_metrics_and_training_read_the_logits() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    model = Wrapped()
    logits = model.fc(x)
    assert accuracy(Output(logits), y) == accuracy(logits, y)
    assert top_k_accuracy(Output(logits), y, 2) == top_k_accuracy(logits, y, 2)
    assert evaluate(model, loader) == accuracy(logits, y)
    teacher = Wrapped()
    before = model.fc.weight.detach().clone()
    finetune(model, loader, loader, FinetuneConfig(epochs=1, lr=0.01),
             teacher=teacher, distill=DistillConfig())
    assert not torch.equal(model.fc.weight, before)
    seen: list[type] = []

    def own_loss(outputs: object, targets: torch.Tensor) -> torch.Tensor:
        seen.append(type(outputs))
        assert isinstance(outputs, Output)
        return nn.functional.cross_entropy(outputs.logits, targets)

    finetune(model, loader, loader, FinetuneConfig(epochs=1, lr=0.01), loss_fn=own_loss)
    assert seen and set(seen) == {Output}

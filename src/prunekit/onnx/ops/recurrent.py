"""LSTM, GRU and RNN nodes as ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``.

ONNX stores the gates in another order than PyTorch (LSTM ``i o f c`` against ``i f g o``,
GRU ``z r h`` against ``r z n``) and the input and recurrent biases in one tensor; the
weights are reordered once here. Outputs keep ONNX's layout: ``Y`` is
``[seq, directions, batch, hidden]`` (``layout=1``: batch first), ``Y_h`` / ``Y_c``
``[directions, batch, hidden]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import NodeContext, converter

__all__ = ["Recurrent"]

GATE_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                       "RNN": ["Tanh"]}
MODULES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


class Recurrent(nn.Module):
    """An ONNX recurrent node around the equivalent ``torch.nn`` module."""

    def __init__(self, op_type: str, rnn: nn.Module, batch_first: bool, outputs: int) -> None:
        super().__init__()
        self.op_type = op_type
        self.rnn = rnn
        self.batch_first = batch_first
        self.outputs = outputs

    def forward(self, x: torch.Tensor, *states: Any) -> Any:
        directions = 2 if self.rnn.bidirectional else 1
        h0 = states[0] if states else None
        c0 = states[1] if len(states) > 1 else None
        if self.batch_first:
            h0 = None if h0 is None else h0.transpose(0, 1).contiguous()
            c0 = None if c0 is None else c0.transpose(0, 1).contiguous()
        if self.op_type == "LSTM":
            init = None if h0 is None else (h0, c0 if c0 is not None else torch.zeros_like(h0))
            y, (h, c) = self.rnn(x, init)
        else:
            y, h = self.rnn(x, h0)
            c = None
        hidden = self.rnn.hidden_size
        if self.batch_first:  # [batch, seq, dirs*hidden] -> [batch, seq, dirs, hidden]
            y = y.reshape(y.shape[0], y.shape[1], directions, hidden)
            h = h.transpose(0, 1)
            c = None if c is None else c.transpose(0, 1)
        else:  # [seq, batch, dirs*hidden] -> [seq, dirs, batch, hidden]
            y = y.reshape(y.shape[0], y.shape[1], directions, hidden).transpose(1, 2)
        results = (y, h, c)[:self.outputs]
        return results[0] if self.outputs == 1 else results


def _gates(tensor: torch.Tensor, order: list[int]) -> torch.Tensor:
    pieces = tensor.chunk(len(order), dim=0)
    return torch.cat([pieces[i] for i in order], dim=0)


@converter("LSTM", "GRU", "RNN")
def _recurrent(ctx: NodeContext) -> nn.Module:
    op = ctx.op_type
    direction = str(ctx.attr("direction", "forward"))
    if direction == "reverse":
        raise ctx.fail("direction='reverse'")
    if ctx.attr("clip") is not None or int(ctx.attr("input_forget", 0)):
        raise ctx.fail("clip / input_forget")
    expected = DEFAULT_ACTIVATIONS[op] * (2 if direction == "bidirectional" else 1)
    activations = [str(a) for a in ctx.attr("activations") or expected]
    if [a.lower() for a in activations] != [a.lower() for a in expected]:
        raise ctx.fail(f"activations {activations} (only the defaults {expected})")
    if op == "GRU" and not int(ctx.attr("linear_before_reset", 0)):
        raise ctx.fail("linear_before_reset=0 (PyTorch's GRU applies the reset gate after "
                       "the linear map: re-export with linear_before_reset=1)")
    if ctx.has(4):
        raise ctx.fail("sequence_lens (variable lengths)")
    if op == "LSTM" and ctx.has(7):
        raise ctx.fail("peephole weights P")
    w, r = ctx.static(1, "W"), ctx.static(2, "R")
    directions, gates_hidden, input_size = w.shape
    hidden = int(ctx.attr("hidden_size", r.shape[-1]))
    order = GATE_ORDER[op]
    layout = int(ctx.attr("layout", 0))
    rnn = MODULES[op](input_size, hidden, batch_first=bool(layout),
                      bidirectional=directions == 2, bias=True)
    b = ctx.static(3, "B") if ctx.has(3) else torch.zeros(directions, 2 * gates_hidden)
    with torch.no_grad():
        for d in range(directions):
            suffix = "_reverse" if d == 1 else ""
            getattr(rnn, f"weight_ih_l0{suffix}").copy_(_gates(w[d], order))
            getattr(rnn, f"weight_hh_l0{suffix}").copy_(_gates(r[d], order))
            getattr(rnn, f"bias_ih_l0{suffix}").copy_(_gates(b[d, :gates_hidden], order))
            getattr(rnn, f"bias_hh_l0{suffix}").copy_(_gates(b[d, gates_hidden:], order))
    outputs = max(i + 1 for i, name in enumerate(ctx.node.output) if name)
    module = Recurrent(op, rnn, bool(layout), outputs)
    runtime_states = [i for i in (5, 6) if ctx.has(i)]
    for i in runtime_states:
        if ctx.is_static(i):
            raise ctx.fail("constant initial states")
    return module

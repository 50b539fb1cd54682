"""Generated ONNX graphs (``onnx.helper``): convs with random widths, groups and strides,
optional BatchNormalization, residual adds and concats, a Gemm head. Each converts in
agreement with onnxruntime and prunes exactly (zeroed units removed, outputs unchanged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunekit.onnx import example_inputs, load

from helpers.onnx_files import assert_prunes_exactly, save_graph

BLOCK = st.fixed_dictionaries({
    "width": st.sampled_from([4, 6, 8]),
    "depthwise": st.booleans(),
    "grouped": st.booleans(),
    "batch_norm": st.booleans(),
    "join": st.sampled_from(["none", "add", "concat"]),
    "stride": st.sampled_from([1, 2]),
})


def _graph(path: Path, blocks: list[dict], seed: int) -> Path:
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], {}
    current, channels, size = "x", 3, 8

    def weight(name: str, *shape: int) -> str:
        inits[name] = rng.normal(0, 0.5, shape).astype(np.float32)
        return name

    for i, block in enumerate(blocks):
        width, stride = block["width"], block["stride"] if size > 2 else 1
        groups = 2 if block["grouped"] and channels % 2 == 0 and width % 2 == 0 else 1
        conv = f"c{i}"
        nodes.append(helper.make_node(
            "Conv", [current, weight(f"w{i}", width, channels // groups, 3, 3),
                     weight(f"b{i}", width)], [conv], name=f"conv{i}", pads=[1, 1, 1, 1],
            strides=[stride, stride], group=groups))
        size = (size + 2 - 3) // stride + 1
        out = conv
        if block["batch_norm"]:
            inits[f"m{i}"] = rng.normal(0, 0.2, width).astype(np.float32)
            inits[f"v{i}"] = rng.uniform(0.5, 1.5, width).astype(np.float32)
            nodes.append(helper.make_node(
                "BatchNormalization", [conv, weight(f"g{i}", width), weight(f"be{i}", width),
                                       f"m{i}", f"v{i}"], [f"bn{i}"], name=f"bn{i}"))
            out = f"bn{i}"
        nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
        out, channels = f"r{i}", width
        if block["depthwise"]:
            nodes.append(helper.make_node(
                "Conv", [out, weight(f"dw{i}", width, 1, 3, 3)], [f"d{i}"], name=f"dw{i}",
                pads=[1, 1, 1, 1], group=width))
            out = f"d{i}"
        if block["join"] == "add":
            nodes.append(helper.make_node(
                "Conv", [out, weight(f"p{i}", width, width, 1, 1)], [f"pw{i}"], name=f"pw{i}"))
            nodes.append(helper.make_node("Add", [out, f"pw{i}"], [f"a{i}"], name=f"add{i}"))
            out = f"a{i}"
        elif block["join"] == "concat":
            nodes.append(helper.make_node(
                "Conv", [out, weight(f"q{i}", width, width, 1, 1)], [f"qw{i}"], name=f"qw{i}"))
            nodes.append(helper.make_node("Concat", [out, f"qw{i}"], [f"cat{i}"], axis=1,
                                          name=f"cat{i}"))
            out, channels = f"cat{i}", 2 * width
        current = out
    nodes += [helper.make_node("GlobalAveragePool", [current], ["pool"], name="pool"),
              helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", weight("fc", 5, channels), weight("fcb", 5)],
                               ["y"], transB=1, name="head")]
    return save_graph(path, nodes,
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
                      inits, opset=17)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.lists(BLOCK, min_size=1, max_size=3), seed=st.integers(0, 1000))
def test_generated_graphs_convert_and_prune_exactly(tmp_path: Path, blocks: list[dict],
                                                    seed: int) -> None:
    model = load(_graph(tmp_path / "g.onnx", blocks, seed))
    assert model.conversion["onnxruntime"]["max_rel_diff"][0] <= 1e-5
    x = example_inputs(model.signature)[0]
    assert_prunes_exactly(model, x)

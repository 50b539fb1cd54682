"""Prune, then quantize, then deploy from the command line: the recipe's ``quantize:``
section, ``prunekit export --int8`` and ``prunekit measure --runtimes``; bad input fails with
one line that names the op or module, and no partial file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prunekit.export.config import QuantizeConfig
from prunekit.report import load_report
from prunekit.workflow.recipe import RecipeError, recipe_from_dict

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

Runner = Callable[[list[str]], tuple[int, str, str]]
TIMING = ["--runtimes", "onnxruntime", "--batch-sizes", "1,4", "--repeats", "1", "--warmup",
          "0", "--threads", "1"]


@pytest.fixture(scope="module")
def pruned_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prunekit.cli.main import run

    out = tmp_path_factory.mktemp("cli") / "out"
    assert run(["prune", "prunekit:digits_cnn", "--out", str(out), "--quiet", "--repeats",
                "2", "--threads", "1"]) == 0
    return out


def test_recipe_quantize_section(cli: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: {spec: 'prunekit:digits_cnn'}\nprune: {ratio: 0.5}\nfinetune: {epochs: 1}\n"
        "quantize: {formats: [int8-qdq], runtimes: [onnxruntime], batch_sizes: [1, 4],\n"
        "           repeats: 1, warmup: 0, threads: 1}\n"
        f"out: {{dir: '{tmp_path / 'o'}', repeats: 2, threads: 1}}\n")
    code, stdout, err = cli(["run", str(recipe), "--json"])
    assert code == 0, err
    report = load_report(tmp_path / "o")  # validated, deployment section included
    section = report["deployment"]
    assert report["settings"]["run"]["quantize"]["formats"] == ["fp32", "int8-qdq"]
    kinds = {(r["variant"], r["format"], r["batch_size"]) for r in section["rows"]}
    assert kinds == {(v, f, b) for v, f in (("dense", "fp32"), ("pruned", "fp32"),
                                            ("pruned", "int8-qdq")) for b in (1, 4)}
    pruned = tmp_path / "o" / "pruned"
    assert (pruned / "model.onnx").is_file() and (pruned / "model.int8-qdq.onnx").is_file()
    assert report["files"]["onnx:int8-qdq"] == "pruned/model.int8-qdq.onnx"
    assert set(section["chosen"]) == {"1", "4"}
    assert [p.name for p in (tmp_path / "o").iterdir() if p.name.startswith(".")] == []
    page = (tmp_path / "o" / "report.html").read_text()
    assert "<h2>Deployment</h2>" in page and "Chosen:" in page
    assert json.loads(stdout)["report"]["deployment"] == section


def test_recipe_quantize_section_maps_onto_its_config() -> None:
    config = recipe_from_dict({"quantize": {}})
    assert config.quantize == QuantizeConfig()
    assert recipe_from_dict({"quantize": None}).quantize is None
    config = recipe_from_dict({"quantize": {"int8": "static", "op_types": ["Conv"],
                                            "batch_sizes": [8, 1]}})
    assert config.quantize is not None and config.quantize.op_types == ("Conv",)
    assert config.quantize.batch_sizes == (1, 8)


@pytest.mark.parametrize("text, message", [
    ("quantize: {int4: true}\n", "unknown key quantize.int4; valid keys of 'quantize': int8, "),
    ("quantize: {int8: int4}\n", "int8 must be one of ('static', 'dynamic', 'auto')"),
    ("quantize: {formats: [int2]}\n", "unknown formats ['int2']"),
    ("quantize: {}\niterative: {}\n", "not available in iterative runs"),
])
def test_bad_quantize_sections(text: str, message: str, cli: Runner, tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError):
        recipe_from_dict(__import__("yaml").safe_load(text))
    code, _, err = cli(["run", str(recipe), "--out", str(tmp_path / "o")])
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_export_int8_static_calibrates_on_the_runs_data(cli: Runner, pruned_out: Path) -> None:
    code, stdout, err = cli(["export", str(pruned_out), "--int8", "static", *TIMING, "--json"])
    assert code == 0, err
    result = json.loads(stdout)
    section = result["deployment"]
    q = section["files"]["pruned:int8-qdq"]
    assert q["quantized_layers"] == 4 and q["settings"]["calibration_samples"] == 256
    assert "digits" in q["settings"]["calibration_source"]
    formats = {r["format"] for r in section["rows"] if r["variant"] == "pruned"}
    assert formats == {"fp32", "int8-qdq", "int8-qoperator"}
    assert all(r["metric"] is not None for r in section["rows"] if r["variant"] == "pruned")
    folder = pruned_out / "pruned"
    assert (folder / "model.int8-qdq.onnx").is_file()
    assert (folder / "model.int8-qoperator.onnx").is_file()
    assert json.loads((folder / "export.json").read_text()) == result
    assert load_report(pruned_out)["deployment"] == section
    code, stdout, _ = cli(["export", str(pruned_out), "--int8", "static", *TIMING])
    assert code == 0 and "chosen at batch 1:" in stdout and "int8-qoperator" in stdout


def test_export_static_without_data_is_a_clear_error(cli: Runner, pruned_out: Path,
                                                     tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(pruned_out / "pruned", bare,
                    ignore=shutil.ignore_patterns("*.onnx", "export.json"))
    args = ["export", str(bare), "--model", "prunekit:digits_cnn", "--input-shape", "1,1,8,8"]
    code, _, err = cli([*args, "--int8", "static", *TIMING])
    assert code == 1 and "static int8 needs calibration data: pass --calibration" in err
    assert "Traceback" not in err and not list(bare.glob("*int8*"))
    code, _, err = cli([*args, "--int8", "static", "--calibration", "digits", *TIMING])
    assert code == 0, err
    assert (bare / "model.int8-qdq.onnx").is_file()


def test_export_op_type_the_quantizer_cannot_take(cli: Runner, pruned_out: Path) -> None:
    code, _, err = cli(["export", str(pruned_out), "--int8", "dynamic", "--op-types", "Gemm",
                        *TIMING])
    last = err.strip().splitlines()[-1]  # the lines before are progress messages
    assert code == 1 and "cannot take op type 'Gemm' (used by classifier)" in last
    assert "Traceback" not in err
    assert not (pruned_out / "pruned" / "model.int8-dynamic.onnx").exists()


def test_measure_times_runtimes_side_by_side(cli: Runner, pruned_out: Path) -> None:
    code, stdout, err = cli(["measure", "prunekit:digits_cnn", "--pruned",
                             str(pruned_out / "pruned"), "--runtimes", "eager,onnxruntime",
                             "--batch-sizes", "1,2", "--repeats", "1", "--warmup", "0",
                             "--threads", "1", "--json"])
    assert code == 0, err
    rows = json.loads(stdout)["deployment"]["rows"]
    keys = {(r["variant"], r["runtime"], r["format"], r["batch_size"]) for r in rows}
    for variant in ("dense", "pruned"):
        for runtime in ("eager", "onnxruntime"):
            assert {(variant, runtime, "fp32", b) for b in (1, 2)} <= keys
    assert all(r["latency_ms"]["threads"] == 1 for r in rows if r["latency_ms"])
    code, _, err = cli(["measure", "prunekit:digits_cnn", "--runtimes", "eager",
                        "--repeats", "1"])
    assert code == 2 and "must include onnxruntime" in err

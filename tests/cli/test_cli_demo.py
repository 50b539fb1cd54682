"""``prunekit demo`` end to end on a reduced budget, then ``measure --pruned`` on its output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from prunekit.cli.main import run
from prunekit.report import load_report

SMALL = ["--train-epochs", "3", "--epochs", "2", "--sweep", "0.75", "--repeats", "3",
         "--threads", "1"]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    code = run(["demo", "--out", str(root / "out"), "--cache-dir", str(root / "cache"),
                "--quiet", *SMALL])
    assert code == 0
    return root


@pytest.mark.numerics
def test_demo_writes_report_and_model(demo_out: Path) -> None:
    out = demo_out / "out"
    assert {p.name for p in out.iterdir()} == {"report.json", "report.html", "pruned"}
    assert {p.name for p in (out / "pruned").iterdir()} == {"model.safetensors", "plan.json"}
    assert len(list((demo_out / "cache").glob("digits_cnn-*.safetensors"))) == 1
    report = load_report(out / "report.json")  # validates the schema
    assert report["schema"] == "prunekit.report" and report["version"] == 1
    before, after = report["before"], report["after"]
    assert after["macs"] < before["macs"] and after["params"] < before["params"]
    for side in (before, after):
        assert math.isfinite(side["metric"]) and 0.5 < side["metric"] <= 1.0
        assert side["latency_ms"]["threads"] == 1 and side["latency_ms"]["batch_size"] == 1
        assert side["latency_ms"]["median"] > 0
    assert report["layers"] and all(r["units_after"] < r["units_before"]
                                    for r in report["layers"])
    stages = [p["stage"] for p in report["points"]]
    assert stages == ["dense", "pruned", "reconstructed", "fine-tuned", "pruned",
                      "reconstructed", "fine-tuned"]
    pruned, rebuilt = (p["metric"] for p in report["points"][1:3])
    assert rebuilt > pruned  # a few dense epochs already give the re-fit something to match
    assert report["settings"]["demo"]["ratio"] == 0.5
    assert report["settings"]["dense_from_cache"] is False
    assert "data:image/png;base64," in (out / "report.html").read_text()
    speed = report["speed"]  # dense and pruned timed interleaved, at batch 1 and serving
    assert speed["serving_batch"] == 64 and "interleaved" in speed["method"]
    assert [row["batch_size"] for row in speed["rows"]] == [1, 64]
    batch1 = speed["rows"][0]
    assert before["latency_ms"]["median"] == batch1["dense_ms"]
    assert after["latency_ms"]["median"] == batch1["pruned_ms"]
    assert set(speed["fixed"]) == {"dense", "pruned"} and speed["launch"]["ops"] > 0
    assert "<h2>Speed</h2>" in (out / "report.html").read_text()


def test_demo_reuses_cache_and_prints_json(demo_out: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = run(["demo", "--out", str(demo_out / "again"), "--cache-dir",
                str(demo_out / "cache"), "--json", *SMALL, "--sweep", ""])
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert report["settings"]["dense_from_cache"] is True
    assert report["after"]["macs"] < report["before"]["macs"]
    assert captured.err == ""  # --json silences progress


def test_measure_the_pruned_output(demo_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = run(["measure", "prunekit:digits_cnn", "--pruned", str(demo_out / "out" / "pruned"),
                "--json", "--repeats", "1", "--warmup", "0", "--threads", "1"])
    assert code == 0
    measured = json.loads(capsys.readouterr().out)
    report = load_report(demo_out / "out")
    assert measured["params"] == report["after"]["params"]
    assert measured["macs"] == report["after"]["macs"]


def test_demo_bad_ratio_is_a_usage_or_config_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["demo", "--out", str(tmp_path), "--ratio", "1.5", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "ratio must be a number in (0, 1)" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_same_seed_same_dense_model_whatever_the_global_rng(tmp_path: Path) -> None:
    """Without the cache the dense model is trained from weights drawn after the demo's seed,
    so two runs agree exactly, even when the caller's RNG state differs."""
    import torch
    from safetensors.torch import load_file

    from prunekit.workflow.demo import DemoConfig, run_demo

    config = DemoConfig(train_epochs=1, finetune_epochs=0, sweep=(), reconstruct=False,
                        use_cache=False, latency_warmup=0, latency_repeats=1, threads=1)
    weights = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        run_demo(config, tmp_path / f"run{caller_seed}", html=False)
        weights.append(load_file(str(tmp_path / f"run{caller_seed}" / "pruned" /
                                     "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

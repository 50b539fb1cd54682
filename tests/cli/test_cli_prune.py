"""``prunekit prune``: files written, JSON output, CSV input-feature pruning, progress, and
one-line errors that leave no partial output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prunekit.models.digits_cnn import DigitsCNN
from prunekit.report import load_report
from prunekit.surgery.serialization import load_pruned

Runner = Callable[[list[str]], tuple[int, str, str]]
FAST = ["--repeats", "2", "--threads", "1"]


def test_prune_digits_writes_report_weights_and_plan(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = cli(["prune", "prunekit:digits_cnn", "--ratio", "0.5",
                           "--finetune-epochs", "1", "--out", str(out), "--json", *FAST])
    assert code == 0
    payload = json.loads(stdout)
    report = load_report(out)  # validates the schema
    assert payload["report"] == report
    assert {p.name for p in out.iterdir()} == {"report.json", "report.html", "pruned"}
    assert {p.name for p in (out / "pruned").iterdir()} == {"model.safetensors", "plan.json"}
    assert report["after"]["params"] < report["before"]["params"]
    assert report["after"]["file_bytes"] == (out / "pruned" / "model.safetensors").stat().st_size
    assert [p["stage"] for p in report["points"]] == ["dense", "pruned", "fine-tuned"]
    assert report["settings"]["run"]["prune"]["ratio"] == 0.5
    pruned = load_pruned(DigitsCNN(), out / "pruned")  # replayable on a fresh copy
    assert sum(p.numel() for p in pruned.parameters()) == report["after"]["params"]


def test_prune_csv_input_features_names_kept_columns(cli: Runner, tmp_path: Path,
                                                      tabular: tuple[Path, Path]) -> None:
    table, source = tabular
    code, stdout, _ = cli(["prune", f"{source}:mlp", "--data", str(table), "--input-features",
                           "--ratio", "0.5", "--finetune-epochs", "1", "--out",
                           str(tmp_path / "o"), "--no-html", *FAST])
    assert code == 0
    assert "input features kept (3): a, b, c" in stdout
    assert "input features dropped (3): d, e, f" in stdout
    report = load_report(tmp_path / "o")
    assert report["settings"]["input_features"] == {"kept": ["a", "b", "c"],
                                                    "dropped": ["d", "e", "f"]}
    assert report["model"]["pruned_input_shape"] == [1, 3]
    assert not (tmp_path / "o" / "report.html").exists()


def test_feature_distillation_with_pruned_input_features(cli: Runner, tmp_path: Path,
                                                         tabular: tuple[Path, Path]) -> None:
    # the pruned model is wrapped to read only the kept columns; the matched names follow it
    table, source = tabular
    code, _, err = cli(["prune", f"{source}:mlp", "--data", str(table), "--input-features",
                        "--ratio", "0.5", "--finetune-epochs", "2", "--distill-feature", "1",
                        "--out", str(tmp_path / "o"), "--no-html", "--json", *FAST])
    assert code == 0, err
    report = load_report(tmp_path / "o")
    assert report["settings"]["run"]["distill"]["features"] == ["1"]
    assert [p["stage"] for p in report["points"]] == ["dense", "pruned", "fine-tuned"]


@pytest.mark.parametrize("args, message", [
    (["--distill-feature", "features.9", "--finetune-epochs", "1"],
     "feature module 'features.9' is not in the model; close names: features.3"),
    (["--distill-feature", "features.9", "--finetune-epochs", "1", "--iterative"],
     "feature module 'features.9' is not in the model; close names: features.3"),
    (["--distill-feature", "features.1"], "--distill-feature needs --finetune-epochs N"),
    (["--distill-feature", "features.1", "--finetune-epochs", "1", "--no-distill"],
     "--distill-feature needs --finetune-epochs N"),
])
def test_bad_distill_features_are_refused_before_pruning(args: list[str], message: str,
                                                         cli: Runner, tmp_path: Path) -> None:
    code, stdout, err = cli(["prune", "prunekit:digits_cnn", "--out", str(tmp_path / "o"),
                             *args, *FAST])
    assert code != 0 and message in err and "Traceback" not in err + stdout
    assert "pruned:" not in err and not (tmp_path / "o").exists()


def test_reconstruct_runs_between_pruning_and_fine_tuning(cli: Runner, tmp_path: Path) -> None:
    code, _, err = cli(["prune", "prunekit:digits_cnn", "--ratio", "0.5", "--reconstruct",
                        "--finetune-epochs", "1", "--out", str(tmp_path / "o"), "--no-html",
                        *FAST])
    assert code == 0, err
    assert "reconstructed 3 layer(s) on 8 batch(es)" in err
    report = load_report(tmp_path / "o")
    assert [p["stage"] for p in report["points"]] == ["dense", "pruned", "reconstructed",
                                                      "fine-tuned"]
    assert report["settings"]["run"]["reconstruct"] == {"batches": 8, "damp": 0.01}
    assert "reconstruct" in report["timings_s"]


@pytest.mark.parametrize("args, message", [
    (["--input-features"], "reconstruction is not available together with input-feature"),
])
def test_reconstruct_conflicts_are_usage_errors(args: list[str], message: str, cli: Runner,
                                                tmp_path: Path) -> None:
    code, stdout, err = cli(["prune", "prunekit:digits_cnn", "--reconstruct", *args,
                             "--out", str(tmp_path / "o"), *FAST])
    assert code == 2 and message in err and "Traceback" not in err + stdout
    assert not (tmp_path / "o").exists()


def test_prune_npz_with_input_shape_and_progress(cli: Runner, tmp_path: Path,
                                                  tabular: tuple[Path, Path]) -> None:
    _, source = tabular
    code, _, err = cli(["prune", f"{source}:mlp", "--data", str(tmp_path / "arrays.npz"),
                        "--input-shape", "1,6", "--finetune-epochs", "2", "--out",
                        str(tmp_path / "o"), *FAST])
    assert code == 0 and "fine-tuning" in err and "dense:" in err  # progress on stderr
    code, out, err = cli(["prune", f"{source}:mlp", "--data", str(tmp_path / "arrays.npz"),
                          "--finetune-epochs", "2", "--out", str(tmp_path / "q"), "--quiet",
                          *FAST])
    assert code == 0 and err == "" and "parameters" in out


@pytest.mark.parametrize("args, code, message", [
    (["--ratio", "1.5"], 2, "ratio must be a number in [0, 1)"),
    (["--importance", "nope"], 2, "unknown importance criterion"),
    (["--data", "nothing.txt"], 1, "unknown data spec"),
    (["--data", "missing.npz"], 1, "does not exist"),
    (["--input-shape", "1,3,5,5"], 1, "cannot be reshaped"),
])
def test_prune_errors_are_one_line_without_output(args: list[str], code: int, message: str,
                                                  cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    got, stdout, err = cli(["prune", "prunekit:digits_cnn", "--out", str(out), "--quiet", *args,
                            *FAST])
    assert got == code
    assert message in err and "Traceback" not in err + stdout
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_data_that_does_not_fit_the_model(cli: Runner, tmp_path: Path,
                                          tabular: tuple[Path, Path]) -> None:
    _, source = tabular
    got, _, err = cli(["prune", f"{source}:mlp", "--out", str(tmp_path / "o"), "--quiet"])
    assert got == 1 and "does not run on data samples of shape (1, 1, 8, 8)" in err
    assert not (tmp_path / "o").exists()


def test_serving_batch_adds_the_speed_section(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = cli(["prune", "prunekit:digits_cnn", "--ratio", "0.5",
                                "--finetune-epochs", "0", "--serving-batch", "16",
                                "--out", str(out), *FAST])
    assert code == 0, stderr
    report = load_report(out)  # validates the schema, speed section included
    speed = report["speed"]
    assert speed["serving_batch"] == 16
    assert [row["batch_size"] for row in speed["rows"]] == [1, 16]
    assert speed["macs_ratio"] == pytest.approx(report["before"]["macs"] / report["after"]["macs"])
    assert all(row["dense_ms"] > 0 and row["pruned_ms"] > 0 for row in speed["rows"])
    assert "served at batch 16: throughput" in stdout + stderr
    assert "<h2>Speed</h2>" in (out / "report.html").read_text()


def test_serving_batch_needs_cpu_latency(cli: Runner, tmp_path: Path) -> None:
    code, _, stderr = cli(["prune", "prunekit:digits_cnn", "--serving-batch", "8",
                           "--latency-device", "cuda", "--out", str(tmp_path / "o"), *FAST])
    assert code == 2 and "serving-batch timing runs on the CPU" in stderr
    assert not (tmp_path / "o").exists()


def test_iterative_run_with_serving_batch_times_dense_against_the_result(
        cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = cli(["prune", "prunekit:digits_cnn", "--iterative",
                           "--target-macs-reduction", "1.5", "--finetune-epochs", "0",
                           "--budget", "1.0", "--serving-batch", "8", "--out", str(out), *FAST])
    assert code == 0, stderr
    report = load_report(out)
    assert report["speed"]["serving_batch"] == 8
    assert report["speed"]["macs_ratio"] == pytest.approx(
        report["before"]["macs"] / report["after"]["macs"])


RESIDUAL_NET = '''
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.body(x))


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                         *[Residual(16) for _ in range(4)], nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 10))
'''


def test_depth_width_chooses_by_measured_speed_and_saves_a_replayable_model(
        cli: Runner, tmp_path: Path) -> None:
    import importlib.util

    source = tmp_path / "residual_net.py"
    source.write_text(RESIDUAL_NET)
    out = tmp_path / "out"
    code, stdout, stderr = cli(["prune", f"{source}:build", "--depth-width",
                                "--flops-reduction", "2", "--finetune-epochs", "0",
                                "--out", str(out), *FAST])
    assert code == 0, stderr
    report = load_report(out)  # validates the schema, depth_width section included
    section = report["depth_width"]
    assert len(section["candidates"]) >= 2
    assert any(c["blocks"] for c in section["candidates"])
    chosen = section["chosen"]
    assert chosen["speedup"] == max(c["speedup"] for c in section["candidates"])
    assert report["before"]["macs"] / report["after"]["macs"] == \
        pytest.approx(chosen["macs_reduction"])
    assert "depth + width: chose" in stdout + stderr
    assert "<h2>Depth + width candidates</h2>" in (out / "report.html").read_text()
    spec = importlib.util.spec_from_file_location("residual_net", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pruned = load_pruned(module.build(), out / "pruned")
    assert sum(p.numel() for p in pruned.parameters()) == report["after"]["params"]


@pytest.mark.parametrize(("args", "message"), [
    (["--depth-width-budget", "0.1"], "needs --depth-width"),
    (["--depth-width", "--iterative"], "does not combine"),
    (["--depth-width", "--flops-reduction", "0.5"], "macs_reduction must be a number > 1"),
])
def test_depth_width_conflicts_are_usage_errors(args: list[str], message: str, cli: Runner,
                                                tmp_path: Path) -> None:
    code, _, stderr = cli(["prune", "prunekit:digits_cnn", *args,
                           "--out", str(tmp_path / "o"), *FAST])
    assert code == 2 and message in stderr
    assert not (tmp_path / "o").exists()

"""``prunekit prune --iterative``: a real subprocess killed (SIGKILL) after its first
checkpoint resumes with ``--resume`` and ends with the same plan and weights as an
uninterrupted run; a folder with checkpoints is refused without ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

Runner = Callable[[list[str]], tuple[int, str, str]]
ARGS = ["prune", "prunekit:digits_cnn", "--iterative", "--target-macs-reduction", "6",
        "--step-factor", "1.6", "--budget", "1", "--finetune-epochs", "1", "--batch-size",
        "32", "--seed", "1", "--repeats", "2", "--threads", "1", "--no-html", "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _prunekit(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "prunekit", *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.numerics
def test_killed_iterative_run_resumes_to_the_same_result(tmp_path: Path, cli: Runner) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = _prunekit(*ARGS, "--out", str(whole))
    victim = _prunekit(*ARGS, "--out", str(killed))
    state_file = killed / "checkpoints" / "state.json"
    deadline = time.monotonic() + 90
    state: dict = {}
    while time.monotonic() < deadline and victim.poll() is None:
        if state_file.is_file():
            state = json.loads(state_file.read_text())  # written atomically: whole or absent
            if state["step"] >= 1:
                break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert state["step"] >= 1 and not state["done"]
    assert (killed / "checkpoints" / "step_000" / "model.safetensors").is_file()
    assert not (killed / "report.json").exists() and not (killed / "pruned").exists()

    code, _, err = cli([*ARGS, "--out", str(killed)])  # without --resume: refused
    assert code == 1 and "pass --resume" in err and len(err.strip().splitlines()) == 1

    resumed = _prunekit(*ARGS, "--out", str(killed), "--resume")
    assert _finish(reference) == (0, "")
    assert _finish(resumed) == (0, "")
    report_whole = json.loads((whole / "report.json").read_text())
    report_resumed = json.loads((killed / "report.json").read_text())
    assert report_resumed["settings"]["iterative"]["resumed_from"] >= 1
    assert (report_resumed["settings"]["iterative"]["history"]
            == report_whole["settings"]["iterative"]["history"])
    assert report_whole["ratios"]["macs"] >= 6 * 0.999
    plan_whole = json.loads((whole / "pruned" / "plan.json").read_text())
    assert json.loads((killed / "pruned" / "plan.json").read_text()) == plan_whole
    a = load_file(whole / "pruned" / "model.safetensors")
    b = load_file(killed / "pruned" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_iterative_section_and_usage_errors(cli: Runner, tmp_path: Path) -> None:
    from prunekit.workflow.recipe import RecipeError, recipe_from_dict

    config = recipe_from_dict({"iterative": {"target": 3, "metric": "params", "budget": 0.02}})
    assert config.iterative is not None and config.iterative.metric == "params"
    assert config.settings()["iterative"]["target"] == 3
    assert recipe_from_dict({"iterative": None}).iterative is None
    with pytest.raises(RecipeError, match="unknown key iterative.steps"):
        recipe_from_dict({"iterative": {"steps": 3}})
    with pytest.raises(RecipeError, match="target must be a reduction > 1"):
        recipe_from_dict({"iterative": {"target": 0.5}})
    out = tmp_path / "o"
    for args, message in ((["--resume"], "need --iterative"),
                          (["--iterative", "--step-factor", "1.0"], "step_factor must be"),
                          (["--iterative", "--target-macs-reduction", "2",
                            "--target-params-reduction", "2"], "not both")):
        code, _, err = cli(["prune", "prunekit:digits_cnn", "--out", str(out), *args])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()

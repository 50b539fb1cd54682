"""``prunekit measure`` and ``prunekit env``, and clear one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunekit.cli.main import run

FAST = ["--repeats", "2", "--warmup", "0", "--threads", "1"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_measure_torchvision_resnet18_json(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    code, out, _ = _run(["measure", "torchvision:resnet18", "--json", "--input-shape",
                         "1,3,64,64", "--out", str(tmp_path), *FAST], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["schema"] == "prunekit.measure" and result["model"] == "torchvision:resnet18"
    assert result["params"] == 11_689_512  # torchvision's ResNet-18
    assert result["macs"] > 100_000_000 and result["flops"] == 2 * result["macs"]
    assert result["latency_ms"]["threads"] == 1 and result["input_shape"] == [1, 3, 64, 64]
    assert json.loads((tmp_path / "measure.json").read_text()) == result


def test_measure_file_factory_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "mymodel.py"
    source.write_text("import torch.nn as nn\n\ndef make():\n    return nn.Linear(4, 2)\n")
    code, out, _ = _run(["measure", f"{source}:make", "--input-shape", "3x4", *FAST], capsys)
    assert code == 0
    assert "parameters" in out and "10" in out and "MACs" in out and "1 thread(s)" in out


def test_env_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["env", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert {"python", "torch", "torchvision", "prunekit"} <= set(info["versions"])
    assert info["devices"][0]["type"] == "cpu" and info["threads"]["torch_intra_op"] >= 1
    code, out, _ = _run(["env"], capsys)
    assert code == 0 and "torch" in out and "threads" in out


@pytest.mark.parametrize("args, code, message", [
    (["measure", "nonsense:model"], 2, "unknown model spec"),
    (["measure", "torchvision:not_a_model"], 1, "torchvision has no model"),
    (["measure", "missing/file.py:make"], 1, "does not exist"),
    (["measure", "prunekit:digits_cnn", "--weights", "missing.safetensors"], 1,
     "does not exist"),
    (["measure", "prunekit:digits_cnn", "--input-shape", "a,b"], 2, "not a shape"),
    (["measure", "prunekit:digits_cnn", "--input-shape", "1,3,32,32", *FAST], 1,
     "does not run on an input of shape"),
    (["nosuchcommand"], 2, "No such command"),
])
def test_bad_input_is_one_clear_line(args: list[str], code: int, message: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    got, out, err = _run(args, capsys)
    assert got == code
    assert message in err and "Traceback" not in err + out


def test_factory_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "broken.py"
    source.write_text("import torch.nn as nn\n\ndef make():\n    raise ValueError('boom')\n\n"
                      "def good():\n    return nn.Linear(4, 2)\n")
    code, _, err = _run(["measure", f"{source}:make", "--input-shape", "1,4"], capsys)
    assert code == 1 and "make() failed: ValueError: boom" in err
    code, _, err = _run(["measure", f"{source}:absent", "--input-shape", "1,4"], capsys)
    assert code == 1 and "defines no callable 'absent'" in err
    code, _, err = _run(["measure", f"{source}:good"], capsys)
    assert code == 1 and "pass --input-shape" in err


def test_python_dash_m_entry_point_and_exit_codes() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bad = subprocess.run([sys.executable, "-m", "prunekit", "measure", "nonsense:x"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2
    assert "unknown model spec" in bad.stderr and "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "prunekit", "--version"], env=env,
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0 and "prunekit" in ok.stdout


def test_env_names_the_cpu_kernel_level_it_runs() -> None:
    """Training figures differ between kernel levels, so bug reports and benchmark pages say
    which one ran: the portable level forced by ATEN_CPU_CAPABILITY shows as DEFAULT."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-m", "prunekit", "env", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout)["devices"][0]["kernels"] == "DEFAULT"

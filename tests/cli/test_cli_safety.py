"""No unpickling without --trust-pickle: a malicious pickle is refused and never runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from prunekit.errors import PrunekitError
from prunekit.models.spec import load_model_spec

Runner = Callable[[list[str]], tuple[int, str, str]]


class _Evil:
    """Unpickling this creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _evil_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Evil(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_malicious_model_pickle_is_refused(cli: Runner, tmp_path: Path) -> None:
    evil, marker = _evil_file(tmp_path)
    code, stdout, err = cli(["prune", str(evil), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 1 and "is a pickled model" in err and "--trust-pickle" in err
    assert "Traceback" not in err + stdout and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_malicious_weights_pickle_is_refused(cli: Runner, tmp_path: Path) -> None:
    evil, marker = _evil_file(tmp_path)
    for command in (["prune", "prunekit:digits_cnn", "--out", str(tmp_path / "o")],
                    ["measure", "prunekit:digits_cnn"]):
        code, _, err = cli([*command, "--weights", str(evil), "--quiet"])
        assert code == 1 and "holds pickled objects other than tensors" in err
        assert "--trust-pickle" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_trust_pickle_really_unpickles(tmp_path: Path) -> None:
    """The control: with trust the same file does run its code (so the test above means
    something), and a benign pickled model loads."""
    evil, marker = _evil_file(tmp_path)
    try:
        load_model_spec(str(evil), trust_pickle=True)
    except PrunekitError:
        pass  # it holds a dict, not a model
    assert marker.exists()
    good = tmp_path / "good.pt"
    torch.save(nn.Sequential(nn.Linear(4, 3)), good)
    model = load_model_spec(str(good), trust_pickle=True)
    assert isinstance(model, nn.Sequential)


def test_trusted_pickled_model_prunes(cli: Runner, tmp_path: Path) -> None:
    import numpy as np
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(40, 4)).astype(np.float32),
             y=np.arange(40) % 3)
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), tmp_path / "m.pt")
    code, _, err = cli(["prune", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d.npz"),
                        "--trust-pickle", "--out", str(tmp_path / "o"), "--quiet",
                        "--repeats", "2", "--no-html"])
    assert code == 0, err and (tmp_path / "o" / "pruned" / "plan.json").is_file()

"""Sensitivity curves: one curve per prunable group, JSON round trip, a PNG plot, validation,
and the model left untouched."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.recover import (
    SensitivityConfig,
    SensitivityResult,
    analyze_sensitivity,
    save_sensitivity_plot,
)


@pytest.mark.numerics
def test_curves_cover_every_group_and_round_trip(trained, digits, val, tmp_path) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    x = digits.x_val[:1]
    points = []
    result = analyze_sensitivity(trained, x, val,
                                 config=SensitivityConfig(ratios=(0.25, 0.5, 0.9)),
                                 on_point=lambda k, r, m: points.append((k, r)))
    assert set(result.curves) == {"features.0.0", "features.1.0", "features.3.0"}
    assert result.units == {"features.0.0": 8, "features.1.0": 16, "features.3.0": 32}
    assert len(points) == 9 and all(len(c) == 3 for c in result.curves.values())
    assert result.baseline > 0.8
    # removing 90% of a group hurts more than nothing; drops are relative to the baseline
    for key in result.curves:
        assert result.drops(key)[-1] > 0.0
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    path = result.save(tmp_path / "sens.json")
    assert SensitivityResult.load(path) == result
    json.loads(path.read_text())  # plain JSON
    png = save_sensitivity_plot(result, tmp_path / "sens.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_group_filter_and_validation(trained, digits, val) -> None:
    result = analyze_sensitivity(trained, digits.x_val[:1], val,
                                 config=SensitivityConfig(ratios=(0.5,), groups=("features.3*",)))
    assert list(result.curves) == ["features.3.0"]
    with pytest.raises(ConfigError, match="match no prunable group"):
        analyze_sensitivity(trained, digits.x_val[:1], val,
                            config=SensitivityConfig(groups=("nope",)))
    for bad in ((0.5, 0.2), (0.0, 0.5), (1.0,), ()):
        with pytest.raises(ConfigError, match="ratios"):
            SensitivityConfig(ratios=bad)


def test_import_stays_light() -> None:
    import subprocess

    code = "import sys, prunekit, prunekit.recover; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert out.stdout.strip() == "False"

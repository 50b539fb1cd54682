"""Every JSON document prunekit writes (plans, latency tables, sensitivity results, reports)
is read back with one helper: a missing or broken file is an error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunekit.allocate import LatencyTable, SensitivityResult
from prunekit.decompose.latency import LayerTimes
from prunekit.errors import PlanError
from prunekit.plan.document import Plan
from prunekit.report.io import load_report
from prunekit.report.schema import ReportError


@pytest.mark.parametrize("kind, name", [(Plan, "plan file"), (LatencyTable, "latency table"),
                                        (SensitivityResult, "sensitivity result"),
                                        (LayerTimes, "decomposition latency table")])
def test_missing_or_broken_document_names_the_file(kind: type, name: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(PlanError, match=f"{name} '.*missing.json' does not exist"):
        kind.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ')
    with pytest.raises(PlanError, match=f"{name} '.*broken.json' is not valid JSON"):
        kind.load(broken)


def test_sensitivity_result_round_trips(tmp_path: Path) -> None:
    result = SensitivityResult(baseline=0.9, ratios=[0.25, 0.5], curves={"conv1": [0.85, 0.6]},
                               units={"conv1": 8})
    path = result.save(tmp_path / "sub" / "sensitivity.json")
    assert SensitivityResult.load(path) == result
    assert not list(path.parent.glob("*.tmp"))  # written through a temporary file


def test_report_errors_stay_report_errors(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("not json")
    with pytest.raises(ReportError, match="report file .* is not valid JSON"):
        load_report(tmp_path)


def test_state_files_of_another_kind_are_refused(tmp_path: Path) -> None:
    """Optimizer and pruner states share one reader: missing, not safetensors, or written for
    another format, each is a PlanError naming the file."""
    import torch
    from safetensors.torch import save_file

    from prunekit.integrations._state import load_pruner_state
    from prunekit.schedule.optim_state import load_optimizer_state

    with pytest.raises(PlanError, match="no optimizer state at '.*missing'"):
        load_optimizer_state(tmp_path / "missing")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(PlanError, match="not a valid safetensors file"):
        load_optimizer_state(junk)
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"format": "something.else"})
    with pytest.raises(PlanError, match="is not a prunekit optimizer state of version"):
        load_optimizer_state(other)
    with pytest.raises(PlanError, match="is not a prunekit pruner state of version"):
        load_pruner_state(other)

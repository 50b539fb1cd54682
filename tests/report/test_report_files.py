"""report.json schema, atomic writes, the self-contained HTML page, and lazy matplotlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import prunekit
from prunekit.models.cache import load_cached, save_cached
from prunekit.files import atomic_write_text
from prunekit.report import (
    SCHEMA,
    VERSION,
    ReportError,
    build_report,
    collect_stats,
    load_report,
    validate_report,
    write_report,
)
from prunekit.report.build import point


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.fixture(scope="module")
def report() -> dict:
    example = torch.randn(1, 1, 8, 8)
    model = _model()
    before = collect_stats(model, example, threads=1, warmup=0, repeats=2, metric=0.9)
    result = prunekit.prune(model, example, ratio=0.5)
    after = collect_stats(model, example, threads=1, warmup=0, repeats=2, metric=0.85)
    return build_report(model={"name": "tiny", "input_shape": [1, 1, 8, 8]},
                        task={"dataset": "synthetic", "metric": "accuracy", "split": "val"},
                        before=before, after=after, plan=result.plan,
                        points=[point("dense", "dense", before),
                                point("ratio 0.5", "fine-tuned", after)],
                        settings={"prune": result.plan.settings})


def test_schema_fields(report: dict) -> None:
    assert report["schema"] == SCHEMA == "prunekit.report" and report["version"] == VERSION == 1
    for side in ("before", "after"):
        stats = report[side]
        assert {"params", "macs", "flops", "size_bytes", "latency_ms", "metric"} <= set(stats)
        assert stats["latency_ms"]["threads"] == 1 and stats["latency_ms"]["batch_size"] == 1
    assert report["after"]["macs"] < report["before"]["macs"]
    assert report["ratios"]["macs"] > 1
    assert report["layers"][0]["units_before"] == 8 and report["layers"][0]["units_after"] == 4
    assert report["versions"]["torch"] and report["versions"]["prunekit"]
    json.dumps(report, allow_nan=False)  # plain JSON data


def test_validation_rejects_bad_documents(report: dict) -> None:
    with pytest.raises(ReportError, match="not a prunekit report"):
        validate_report({**report, "schema": "other"})
    with pytest.raises(ReportError, match="version"):
        validate_report({**report, "version": 99})
    broken = json.loads(json.dumps(report))
    del broken["after"]["macs"]
    with pytest.raises(ReportError, match="after"):
        validate_report(broken)
    broken = json.loads(json.dumps(report))
    broken["before"]["metric"] = float("nan")
    with pytest.raises(ReportError, match="finite"):
        validate_report(broken)


def test_write_and_load_roundtrip(report: dict, tmp_path: Path) -> None:
    files = write_report(report, tmp_path)
    assert files.json.is_file() and files.html is not None and files.html.is_file()
    assert load_report(tmp_path) == json.loads(files.json.read_text())
    page = files.html.read_text()
    assert page.count("data:image/png;base64,") == 2  # kept units + metric vs MACs
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "<table>" in page and "before" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]


def test_load_report_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_report(tmp_path)


def test_failed_render_leaves_previous_report_untouched(report: dict, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "report.json").write_text("previous")
    import prunekit.report.html as html_module

    def boom(_report: dict) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(html_module, "render_html", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        write_report(report, tmp_path)
    assert (tmp_path / "report.json").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_leaves_no_partial_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "x" * 100_000)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file


def test_cached_weights_atomic_and_corrupt_file_reported(tmp_path: Path) -> None:
    model = _model()
    path = save_cached(model, tmp_path / "m.safetensors", {"key": "value"})
    fresh = _model()
    metadata, reason = load_cached(fresh, path)
    assert metadata == {"key": "value"} and reason is None
    path.write_bytes(b"garbage")
    metadata, reason = load_cached(_model(), path)
    assert metadata is None and "unusable" in (reason or "")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_import_prunekit_does_not_import_matplotlib() -> None:
    code = ("import sys, prunekit, prunekit.report, prunekit.cli.main, prunekit.workflow.demo; "
            "sys.exit('matplotlib' in sys.modules)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr or "matplotlib was imported"


def test_atomic_write_gives_new_files_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "plan.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "plan.json").read_text() == "{}"


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    from prunekit.files import atomic_directory

    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.txt"]
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "failed") as tmp:
        (tmp / "b.txt").write_text("b")
        raise RuntimeError("stop")
    with pytest.raises(OSError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "c.txt").write_text("c")  # the target is not empty: it is kept as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.txt"]

"""``prunekit analyze``: sensitivity.json + PNG, the curves added to a report in the same
folder (JSON section and HTML), ``prunekit report`` picks them up, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prunekit.recover import SensitivityResult
from prunekit.report import load_report

Runner = Callable[[list[str]], tuple[int, str, str]]
FAST = ["--repeats", "2", "--threads", "1"]


def test_analyze_writes_curves_and_extends_the_report(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, _ = cli(["prune", "prunekit:digits_cnn", "--ratio", "0.5", "--out", str(out),
                      "--quiet", *FAST])
    assert code == 0 and "sensitivity" not in load_report(out)  # old reports stay valid
    code, stdout, _ = cli(["analyze", "prunekit:digits_cnn", "--ratios", "0.25,0.75",
                           "--out", str(out), "--json"])
    assert code == 0
    payload = json.loads(stdout)
    doc = json.loads((out / "sensitivity.json").read_text())
    assert payload["sensitivity"] == doc
    assert set(doc["curves"]) == {"features.0.0", "features.1.0", "features.3.0"}
    assert doc["ratios"] == [0.25, 0.75] and all(len(v) == 2 for v in doc["curves"].values())
    assert SensitivityResult.from_dict(doc).units == doc["units"]  # the library reads it back
    assert (out / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = load_report(out)  # still valid, now with the curves
    assert report["sensitivity"]["curves"] == doc["curves"]
    page = (out / "report.html").read_text()
    assert "Sensitivity curves" in page and 'alt="sensitivity curves"' in page
    # re-rendering keeps the section; a report without sensitivity.json renders without it
    (out / "report.html").unlink()
    assert cli(["report", str(out), "--quiet"])[0] == 0
    assert "Sensitivity curves" in (out / "report.html").read_text()
    (out / "sensitivity.json").unlink()
    del report["sensitivity"]
    (out / "report.json").write_text(json.dumps(report))
    assert cli(["report", str(out), "--quiet"])[0] == 0
    assert "Sensitivity curves" not in (out / "report.html").read_text()


def test_analyze_alone_prints_a_table(cli: Runner, tmp_path: Path) -> None:
    code, stdout, err = cli(["analyze", "prunekit:digits_cnn", "--ratios", "0.5",
                             "--groups", "features.3*", "--out", str(tmp_path / "a")])
    assert code == 0 and "features.3.0 (128)" in stdout and "features.0.0" not in stdout
    assert "features.3.0: done" in err
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"sensitivity.json",
                                                           "sensitivity.png"}


@pytest.mark.parametrize("args, code, message", [
    (["--ratios", "0.5,1.5"], 2, "strictly increasing numbers in (0, 1)"),
    (["--ratios", "half"], 2, "not a comma-separated list"),
    (["--groups", "nothing*"], 1, "match no prunable group"),
    (["--data", "missing.npz"], 1, "does not exist"),
])
def test_analyze_errors_are_one_line_without_output(args: list[str], code: int, message: str,
                                                    cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    got, stdout, err = cli(["analyze", "prunekit:digits_cnn", "--out", str(out), "--quiet",
                            *args])
    assert got == code
    assert message in err and "Traceback" not in err + stdout
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()

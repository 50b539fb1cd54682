"""The format chooser decides from measured figures alone: injected timings, no clock."""

from __future__ import annotations

import pytest

from prunekit.errors import ConfigError
from prunekit.export.choose import Candidate, choose_format

BASE = "onnxruntime/fp32"


def test_the_fastest_acceptable_format_wins() -> None:
    choice = choose_format([Candidate(BASE, 10.0, metric=0.95),
                            Candidate("onnxruntime/int8-qdq", 4.0, metric=0.948),
                            Candidate("onnxruntime/int8-qoperator", 5.0, metric=0.949),
                            Candidate("eager/fp32", 30.0, metric=0.95)], baseline=BASE)
    assert choice.format == "onnxruntime/int8-qdq" and choice.faster
    assert choice.speedup == pytest.approx(2.5)
    verdicts = dict(choice.verdicts)
    assert verdicts["eager/fp32"].startswith("0.33× onnxruntime/fp32 (slower")
    assert verdicts["onnxruntime/int8-qoperator"] == "2.00× onnxruntime/fp32"


def test_a_slower_format_is_never_chosen() -> None:
    # the measurement: dense ResNet-50, static int8 QDQ at 0.73x fp32
    choice = choose_format([Candidate(BASE, 346.0), Candidate("onnxruntime/int8-qdq", 473.0)],
                           baseline=BASE)
    assert choice.format == BASE and not choice.faster and choice.speedup == 1.0
    assert "fastest other: onnxruntime/int8-qdq at 0.73×" in choice.reason
    assert "fp32 kept" in choice.reason


def test_a_gain_below_min_speedup_keeps_the_baseline() -> None:
    candidates = [Candidate(BASE, 10.0), Candidate("onnxruntime/fp16", 9.8)]
    assert choose_format(candidates, baseline=BASE).format == BASE
    assert "not enough faster" in dict(choose_format(candidates, baseline=BASE).verdicts)[
        "onnxruntime/fp16"]
    assert choose_format(candidates, baseline=BASE, min_speedup=1.0).format == \
        "onnxruntime/fp16"


def test_accuracy_gates_come_before_speed() -> None:
    candidates = [Candidate(BASE, 10.0, metric=0.95),
                  Candidate("onnxruntime/int8-qdq", 3.0, metric=0.90),
                  Candidate("onnxruntime/int8-dynamic", 6.0, metric=0.949)]
    choice = choose_format(candidates, baseline=BASE, budget=0.005)
    assert choice.format == "onnxruntime/int8-dynamic"
    assert "0.05 worse than 0.95 (budget 0.005)" in dict(choice.verdicts)["onnxruntime/int8-qdq"]
    assert choose_format(candidates, baseline=BASE, budget=None).format == "onnxruntime/int8-qdq"
    # lower is better (a loss): 0.30 against 0.25 is worse
    losses = [Candidate(BASE, 10.0, metric=0.25), Candidate("onnxruntime/int8-qdq", 3.0,
                                                            metric=0.30)]
    assert choose_format(losses, baseline=BASE, higher_is_better=False).format == BASE
    assert choose_format(losses, baseline=BASE).format == "onnxruntime/int8-qdq"


def test_without_a_metric_the_outputs_must_agree() -> None:
    candidates = [Candidate(BASE, 10.0), Candidate("onnxruntime/int8-qdq", 3.0, cosine=0.97),
                  Candidate("onnxruntime/int8-qoperator", 4.0, cosine=0.999)]
    choice = choose_format(candidates, baseline=BASE)
    assert choice.format == "onnxruntime/int8-qoperator"
    assert "cosine" in dict(choice.verdicts)["onnxruntime/int8-qdq"]


def test_untimed_candidates_and_a_missing_baseline() -> None:
    choice = choose_format([Candidate(BASE, 10.0),
                            Candidate("onnxruntime/int8-qdq", None,
                                      status="skipped: no calibration data")], baseline=BASE)
    assert choice.format == BASE
    assert dict(choice.verdicts)["onnxruntime/int8-qdq"] == \
        "not timed: skipped: no calibration data"
    with pytest.raises(ConfigError, match="baseline 'onnxruntime/fp32' has no timing"):
        choose_format([Candidate("onnxruntime/int8-qdq", 3.0)], baseline=BASE)
    with pytest.raises(ConfigError, match="min_speedup"):
        choose_format([Candidate(BASE, 1.0)], baseline=BASE, min_speedup=0.9)
    assert choose_format([Candidate(BASE, 1.0)], baseline=BASE).to_dict()["format"] == BASE

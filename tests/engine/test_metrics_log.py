"""metrics.jsonl: window averages, strict JSON, truncation on resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sparsercnn.engine.metrics_log import LogWindow, MetricsLog, StepStats


def _step(loss: float, applied: bool = True, seconds: float = 1.0) -> StepStats:
    return StepStats(
        terms={"loss_cls/stage0": loss / 2, "loss_l1/stage0": loss / 2},
        loss=loss,
        grad_norm=3.0,
        lr=1e-4,
        seconds=seconds,
        data_seconds=0.25,
        applied=applied,
    )


def test_window_averages_applied_steps_only() -> None:
    window = LogWindow([_step(2.0), _step(math.nan, applied=False), _step(4.0)])
    means = window.loss_means()
    assert means["loss"] == pytest.approx(3.0)
    assert means["loss_cls/stage0"] == pytest.approx(1.5)
    timing = window.timing(images_per_step=8)
    assert timing["skipped"] == 1
    assert timing["images_per_s"] == pytest.approx(8.0)
    assert LogWindow([_step(math.nan, applied=False)]).loss_means() == {}


def test_append_writes_strict_json(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.start(0)
    log.append({"iter": 1, "loss": math.nan, "eval": {"APl": math.inf, "AP": 0.5}})
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    assert json.loads(line) == {"iter": 1, "loss": None, "eval": {"APl": None, "AP": 0.5}}


def test_start_on_resume_drops_later_records(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.start(0)
    for iteration in (1, 2, 3, 4):
        log.append({"iter": iteration, "loss": float(iteration)})
    log.start(2)
    assert [r["iter"] for r in log.read()] == [1, 2]
    log.start(0)
    assert log.read() == []


def test_a_line_cut_off_by_a_killed_run_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """read() raised JSONDecodeError on the half line a killed run leaves; start() on resume
    raised TypeError on a record whose ``iter`` is not a number."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iter": 1, "loss": 2.0}\n{"iter": "x"}\n{"iter": 2, "eval": {"AP": 0.5}}\n')
    log = MetricsLog(path)
    log.append({"iter": 3, "loss": 1.0})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"iter": 4, "lo')  # killed mid-write
    assert [r["iter"] for r in log.read()] == [1, "x", 2, 3]
    assert f"{path}:5 is not a JSON record; skipped" in caplog.text
    log.start(2)
    assert log.read() == [{"iter": 1, "loss": 2.0}, {"iter": "x"}, {"iter": 2, "eval": {"AP": 0.5}}]

"""metrics.jsonl: window averages, strict JSON, truncation on resume."""

from __future__ import annotations

import errno
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.engine import metrics_log
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


def _window(*steps: StepStats) -> LogWindow:
    window = LogWindow()
    for step in steps:
        window.add(step)
    return window


def test_window_averages_applied_steps_only() -> None:
    window = _window(_step(2.0), _step(math.nan, applied=False), _step(4.0))
    means = window.loss_means()
    assert means["loss"] == pytest.approx(3.0)
    assert means["loss_cls/stage0"] == pytest.approx(1.5)
    timing = window.timing(images_per_step=8)
    assert timing["skipped"] == 1
    assert timing["images_per_s"] == pytest.approx(8.0)
    assert window.num_steps == 3 and window.lr == 1e-4
    assert _window(_step(math.nan, applied=False)).loss_means() == {}
    window.clear()
    assert window == LogWindow() and window.loss_means() == {}


def test_a_window_as_long_as_the_run_holds_no_step() -> None:
    """With ``train.log_period <= 0`` the window spans the run (a record at checkpoints and at
    the end): it kept every step's statistics, 270k of them for a 3x schedule. Its sums are
    those of the steps, in their order."""
    losses = [0.1 * (index % 7) + 1e-3 * index for index in range(1000)]
    window = _window(*(_step(loss, seconds=0.1 + loss) for loss in losses))
    assert not any(isinstance(value, (list, StepStats)) for value in vars(window).values())
    means = window.loss_means()
    assert means["loss"] == sum(losses) / len(losses)
    assert means["loss_l1/stage0"] == sum(loss / 2 for loss in losses) / len(losses)
    assert window.timing(1)["time"] == sum(0.1 + loss for loss in losses) / len(losses)


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


def test_the_file_is_made_by_the_first_record(tmp_path: Path) -> None:
    """start(0) wrote an empty metrics.jsonl before the first step, which the run-folder check
    and the CLI's clean-up of a refused run then had to tell from a log with records."""
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.start(0)
    log.start(5)  # a resumed run whose log was deleted
    assert not path.exists() and log.read() == []
    log.append({"iter": 6, "loss": 1.0})
    assert [r["iter"] for r in log.read()] == [6]


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


class _DiskFillingUp(io.FileIO):
    """A file opened for appending on a disk with room for 10 more bytes."""

    def __init__(self, path: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, "a")
        self.room = 10

    def write(self, data: Any) -> int:
        if not self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        count = super().write(bytes(data)[: self.room])
        self.room -= count
        return count


def test_a_full_disk_leaves_no_part_of_a_line_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part of a line that fitted stayed, without its newline: the next record, written once
    there was room again, was glued to it and lost with it; the error did not name the file."""
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.start(0)
    log.append({"iter": 1, "loss": 2.0})
    monkeypatch.setattr(metrics_log, "open", _DiskFillingUp, raising=False)
    with pytest.raises(OSError) as caught:
        log.append({"iter": 2, "loss": 1.0})
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value.strerror).startswith(f"could not add a record to {path} (No space left")
    monkeypatch.undo()
    assert path.read_text() == '{"iter": 1, "loss": 2.0}\n'
    log.append({"iter": 3, "loss": 0.5})
    assert [r["iter"] for r in log.read()] == [1, 3]

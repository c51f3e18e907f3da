"""The one JSON-lines reader: the metrics log and the training-curve plot read through it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sparsercnn.json_lines import read_json_lines


def test_lines_that_are_not_records_are_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iter": 1}\n\n[1, 2]\n{"iter": 2}\n{"iter": 3, "lo', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="sparsercnn.json_lines"):
        assert read_json_lines(path) == [{"iter": 1}, {"iter": 2}]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:3 is not a JSON record; skipped",
        f"{path}:5 is not a JSON record; skipped",
    ]

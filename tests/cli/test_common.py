"""The CLI's shared checks and messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sparsercnn.cli.common import warn_replacing


def test_only_an_existing_file_is_said_to_be_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    existing = tmp_path / "metrics.json"
    existing.write_text("{}")
    with caplog.at_level(logging.WARNING):
        warn_replacing(None, "--results")
        warn_replacing(tmp_path / "new.json", "--output")
        warn_replacing(tmp_path, "--output")  # a folder is refused elsewhere, not replaced
        warn_replacing(existing, "--output")
    assert [r.getMessage() for r in caplog.records] == [
        f"--output {existing} exists: it will be replaced once this run succeeds"
    ]
    assert existing.read_text() == "{}"

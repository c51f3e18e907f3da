"""The CLI's shared checks and messages."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import torch

from sparsercnn.cli.common import device_name, resolve_device, warn_replacing


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


@pytest.mark.parametrize("name", ["gpu", "cuda:x"])
def test_a_device_that_is_none_is_refused_in_the_runtime_s_words(name: str) -> None:
    """--device is checked by the one device check (runtime.check_device), at parsing and when
    resolved."""
    with pytest.raises(argparse.ArgumentTypeError, match=rf"device '{name}' is not a device"):
        device_name(name)
    with pytest.raises(ValueError, match=rf"^--device: device '{name}' is not a device"):
        resolve_device(name)
    assert resolve_device("cpu") == torch.device("cpu")

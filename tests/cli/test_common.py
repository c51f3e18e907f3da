"""The CLI's shared checks and messages."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import torch

from sparsercnn.cli.common import (
    add_device_argument,
    device_name,
    resolve_device,
    warn_replacing,
)


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


def test_the_files_a_command_writes_into_a_folder_are_said_to_be_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One warning for the folder of ``eval --report-dir`` and ``diagnose --output-dir``,
    naming those of its files that exist (a folder of their name is not replaced)."""
    names = ("a.png", "b.json", "c.png")
    with caplog.at_level(logging.WARNING):
        warn_replacing(None, "--report-dir", files=names)
        warn_replacing(tmp_path / "new", "--report-dir", files=names)
        warn_replacing(tmp_path, "--report-dir", files=names)
        (tmp_path / "c.png").write_text("an earlier report's")
        (tmp_path / "a.png").mkdir()
        (tmp_path / "b.json").write_text("{}")
        warn_replacing(tmp_path, "--report-dir", files=names)
    assert [r.getMessage() for r in caplog.records] == [
        f"--report-dir {tmp_path} holds b.json, c.png: this run replaces them"
    ]


@pytest.mark.parametrize("name", ["gpu", "cuda:x"])
def test_a_device_that_is_none_is_refused_in_the_runtime_s_words(name: str) -> None:
    """--device is checked by the one device check (runtime.check_device), at parsing and when
    resolved; each message names the flag once (argparse adds ``argument --device:``)."""
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^'{name}' is not a device; use"):
        device_name(name)
    with pytest.raises(ValueError, match=rf"^--device '{name}' is not a device; use 'cpu'"):
        resolve_device(name)
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_bad_device_is_a_parser_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="sparsercnn predict")
    add_device_argument(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "mps"])
    assert (
        "sparsercnn predict: error: argument --device: 'mps': sparsercnn runs on 'cpu', "
        "'cuda' or 'cuda:N' only"
    ) in capsys.readouterr().err
    assert parser.parse_args([]).device is None
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == expected  # the default: the runtime's

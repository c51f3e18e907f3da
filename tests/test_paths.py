"""Paths as the user gave them: a file check that names what was expected, and is_below."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.paths import check_file, is_below


def test_a_file_check_names_a_folder_and_a_missing_path_apart(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    check_file(tmp_path / "model.onnx", "ONNX model", "the .onnx file")
    with pytest.raises(IsADirectoryError, match=r"^ONNX model .* is a folder; give the \.onnx"):
        check_file(tmp_path, "ONNX model", "the .onnx file")
    with pytest.raises(FileNotFoundError, match=r"^checkpoint .*x\.pth does not exist$"):
        check_file(tmp_path / "x.pth", "checkpoint", "the checkpoint file")


def test_is_below_compares_paths_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert is_below(Path("run/a.png"), tmp_path / "run")
    assert is_below(tmp_path / "run", Path("run")) and not is_below(
        tmp_path / "run", Path("run"), strictly=True
    )
    assert not is_below(Path("runs/a.png"), Path("run"))

"""Paths as the user gave them: a file check that names what was expected, is_below, and the
file a path resolves to."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.paths import check_file, file_identity, is_below


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


def test_file_identity_follows_links_and_knows_no_file_without_a_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file, link = tmp_path / "a.png", tmp_path / "link.png"
    file.write_bytes(b"a")
    link.symlink_to(file)
    assert file_identity(link) == file_identity(file) is not None
    assert file_identity(tmp_path / "missing.png") is None
    stat = os.stat

    def unnumbered(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = list(stat(path, *args, **kwargs))
        result[1] = 0  # st_ino, as some Windows file systems give
        return os.stat_result(result)

    monkeypatch.setattr(os, "stat", unnumbered)
    assert file_identity(file) is None

"""Paths as the user gave them: a file check that names what was expected, is_below, the
file a path resolves to (and whether it changed), and the folders a command makes and removes
again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.paths import (
    check_file,
    file_identity,
    file_version,
    is_below,
    missing_folders,
    remove_empty_folders,
    same_file,
)
from tests.denied_file import deny_reading


def test_a_file_check_names_a_folder_and_a_missing_path_apart(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    check_file(tmp_path / "model.onnx", "ONNX model", "the .onnx file")
    with pytest.raises(IsADirectoryError, match=r"^ONNX model .* is a folder; give the \.onnx"):
        check_file(tmp_path, "ONNX model", "the .onnx file")
    with pytest.raises(FileNotFoundError, match=r"^checkpoint .*x\.pth does not exist$"):
        check_file(tmp_path / "x.pth", "checkpoint", "the checkpoint file")


def test_a_file_check_tells_a_file_the_user_may_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: passed, for whatever read the file to fail with a raw "[Errno 13] Permission
    denied: '...'" (or to call the file damaged)."""
    path = tmp_path / "x.pth"
    path.write_bytes(b"")
    deny_reading(monkeypatch, "sparsercnn.paths", path)
    with pytest.raises(PermissionError) as raised:
        check_file(path, "checkpoint", "the checkpoint file")
    assert str(raised.value) == (
        f"checkpoint {path} cannot be read (Permission denied); check its permissions"
    )


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


def test_a_file_version_changes_with_the_file_and_follows_links(tmp_path: Path) -> None:
    file, link = tmp_path / "checkpoint.pt", tmp_path / "link.pt"
    file.write_bytes(b"a")
    link.symlink_to(file)
    version = file_version(file)
    assert version is not None and file_version(link) == version
    assert version[:2] == file_identity(file)
    file.write_bytes(b"ab")  # rewritten in place: same file number, another size
    assert file_version(file) not in (None, version)
    assert file_version(tmp_path / "missing.pt") is None


def test_same_file_follows_links_and_falls_back_to_resolved_paths(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "x.png").write_bytes(b"x")
    (tmp_path / "a" / "y.png").write_bytes(b"y")
    assert same_file(tmp_path / "link" / "x.png", tmp_path / "a" / "x.png")
    assert not same_file(tmp_path / "a" / "y.png", tmp_path / "a" / "x.png")
    # One of them gone: by the paths with links resolved.
    assert same_file(tmp_path / "link" / "gone.png", str(tmp_path / "a" / "gone.png"))
    assert not same_file(tmp_path / "a" / "gone.png", tmp_path / "a" / "x.png")


def test_the_folders_made_for_a_path_are_removed_again_where_empty(tmp_path: Path) -> None:
    """Deepest first, so that a folder left empty by removing one below goes too; one that
    holds a file stays, and so does each above it."""
    run, other = tmp_path / "runs" / "a" / "b", tmp_path / "runs" / "c"
    assert missing_folders(run) == [run, run.parent, tmp_path / "runs"]
    assert missing_folders(tmp_path) == []
    made = missing_folders(run)
    run.mkdir(parents=True)
    made += missing_folders(other)  # a sibling's, as a set of drawings' folders gathers them
    other.mkdir()
    remove_empty_folders(made)
    assert not (tmp_path / "runs").exists()
    run.mkdir(parents=True)
    (run.parent / "kept.txt").write_text("")
    remove_empty_folders([run.parent, run, tmp_path / "never made"])
    assert not run.exists() and (run.parent / "kept.txt").is_file()

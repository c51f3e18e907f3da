"""The marker of a folder of drawings: the files it lists are drawings, any other is the user's,
an older marker (no list) counts its whole folder, and a listing never leaves its folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparsercnn.drawings_marker import (
    earlier_drawings,
    is_drawing,
    is_marked,
    marker_lock,
    write_marker,
)
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.staged_drawings import staged_path
from sparsercnn.video.suffixes import IMAGE_AND_VIDEO_SUFFIXES


def _files(folder: Path, *names: str) -> list[Path]:
    paths = [folder / name for name in names]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"an image")
    return paths


def _earlier(folder: Path) -> dict[Path, str | None]:
    return earlier_drawings(folder, IMAGE_AND_VIDEO_SUFFIXES)


def test_a_marker_lists_its_drawings_with_their_inputs_and_counts_those_only(
    tmp_path: Path,
) -> None:
    drawn = tmp_path / "drawn"
    drawing, photo, below = _files(drawn, "a.png", "x.png", "sub/y.png")
    source = str(tmp_path / "in" / "a.png")
    assert not is_marked(drawn) and _earlier(drawn) == {}
    write_marker(drawn, {drawing: source})
    assert is_marked(drawn) and _earlier(drawn) == {drawing: source}
    assert json.loads((drawn / DRAWINGS_MARKER).read_text())["drawings"] == {"a.png": source}
    assert is_drawing(drawing)
    assert not is_drawing(photo) and not is_drawing(below)  # the user's, saved there later


@pytest.mark.parametrize(
    "text",
    [
        "drawings of sparsercnn predict\n",  # an older run's
        '{"drawings": ["a.png"]}',  # damaged
        "{",
    ],
)
def test_a_marker_that_lists_no_drawings_counts_every_file_below_its_folder(
    tmp_path: Path, text: str
) -> None:
    drawn = tmp_path / "drawn"
    files = _files(drawn, "x.png", "sub/y.png")
    (drawn / DRAWINGS_MARKER).write_text(text)
    assert _earlier(drawn) == {path: None for path in files}  # of unknown inputs
    assert all(is_drawing(path) for path in files)
    assert not is_drawing(tmp_path / "beside.png")


def test_a_listing_never_names_a_file_outside_its_folder_nor_an_input_by_a_relative_path(
    tmp_path: Path,
) -> None:
    """A marker edited by hand (or another tool's) must not make a file outside its folder, or
    the folder itself, count as a drawing to replace or remove. An input ``null`` is unknown
    (an older run's drawing)."""
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    source = str(tmp_path / "in" / "a.png")
    listing = {
        "a.png": source,
        "../outside.png": source,
        "": source,
        ".": source,
        "b.png": "in/b.png",
        "c.png": 3,
        "d.png": None,
    }
    (drawn / DRAWINGS_MARKER).write_text(json.dumps({"drawings": listing}))
    assert _earlier(drawn) == {drawn / "a.png": source, drawn / "d.png": None}
    assert not is_drawing(tmp_path / "outside.png")


def test_a_staged_drawing_a_killed_run_left_counts_as_a_drawing(tmp_path: Path) -> None:
    staged = staged_path(tmp_path / "sub" / "clip.mp4")
    assert staged == tmp_path / "sub" / ".clip.partial.mp4"
    assert is_drawing(staged) and not is_drawing(tmp_path / "sub" / "clip.mp4")


def test_the_marker_lock_is_held_in_its_folder_while_the_block_runs(tmp_path: Path) -> None:
    lock = tmp_path / f"{DRAWINGS_MARKER}.lock"
    with marker_lock(tmp_path):
        assert lock.is_file()
    assert not lock.exists()
    # No folder, no lock (and no folder made for one): nothing was drawn there.
    with marker_lock(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()


def test_each_version_of_the_marker_is_read_once_however_many_files_are_asked_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """is_drawing read and hashed the whole marker for every file asked about (each image
    checked, each file of a folder looked over): time quadratic in the drawings. A marker
    another process rewrites since is read again."""
    drawn = tmp_path / "drawn"
    drawings = _files(drawn, *(f"{i}.png" for i in range(20)))
    write_marker(drawn, {path: str(tmp_path / path.name) for path in drawings[:10]})
    reads: list[Path] = []
    read_text = Path.read_text

    def counted(path: Path, *args: object, **kwargs: object) -> str:
        reads.append(path)
        return read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counted)
    assert [is_drawing(path) for path in drawings] == [True] * 10 + [False] * 10
    assert reads == [drawn / DRAWINGS_MARKER]
    listing = {path.name: str(tmp_path / path.name) for path in drawings}
    (drawn / DRAWINGS_MARKER).write_text(json.dumps({"drawings": listing}))
    assert all(is_drawing(path) for path in drawings) and len(reads) == 2


def test_is_drawing_looks_at_each_folders_marker_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """is_drawing looked at each folder's marker twice (is it there? which version?): two
    system calls per folder above each file asked about, for every file of a folder looked
    over."""
    drawn = tmp_path / "drawn"
    drawing, photo = _files(drawn / "sub", "a.png", "x.png")
    write_marker(drawn, {drawing: str(tmp_path / "a.png")})
    looks: list[str] = []
    stat = os.stat

    def counted(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(path).endswith(DRAWINGS_MARKER):
            looks.append(os.fspath(path))
        return stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counted)
    assert is_drawing(drawing)
    assert looks == [str(drawn / "sub" / DRAWINGS_MARKER), str(drawn / DRAWINGS_MARKER)]
    looks.clear()
    assert not is_drawing(photo)
    assert len(looks) == len(photo.parents) == len(set(looks))

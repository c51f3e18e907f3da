"""Staged drawings: those of a run killed before its commit are removed by a later commit into
the folder, never those of a run still living; a commit that fails part-way leaves none, and a
marker that lists what the folder holds."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

from sparsercnn.drawing_writer import DrawingsCommitError, DrawingWriter
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.prediction import Prediction
from sparsercnn.staged_drawings import STAGING_LOCK, is_staged, staged_path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no flock: nothing is swept")

# A run that stages the drawing of an image and an annotated video (through an atomic write's
# temporary, as the video writer does), and a marker write of its own, then waits to be killed.
_STAGE = """
import sys
from pathlib import Path
from sparsercnn.atomic_file import AtomicFile
from sparsercnn.drawing_writer import DrawingWriter
from sparsercnn.image_inputs import DRAWINGS_MARKER

drawn, image, clip = (Path(arg) for arg in sys.argv[1:])
writer = DrawingWriter(drawn, [image, clip], score_threshold=0.3)
writer.stage(writer.target(image), image).write_bytes(b"a drawing, staged")
video = AtomicFile(writer.stage(writer.video_target(clip), clip))
video.tmp.write_bytes(b"an annotated video, half written")
marker = AtomicFile(drawn / DRAWINGS_MARKER)
print("staged", flush=True)
sys.stdin.read()
"""


@contextmanager
def _staging_run(drawn: Path, image: Path, clip: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process staging drawings in ``drawn`` while the block runs; killed (SIGKILL)
    where the block does not kill it first."""
    process = subprocess.Popen(
        [sys.executable, "-c", _STAGE, str(drawn), str(image), str(clip)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "staged\n", "the staging run did not start"
        yield process
    finally:
        process.kill()
        process.wait()


def _empty_prediction(image: Path) -> Prediction:
    """No detections on ``image`` (a drawing is the image itself)."""
    with Image.open(image) as opened:
        size = (opened.height, opened.width)
    return Prediction(
        boxes=torch.zeros(0, 4),
        scores=torch.zeros(0),
        labels=torch.zeros(0, dtype=torch.long),
        class_names=[],
        category_ids=[],
        image_size=size,
        source=str(image),
    )


def _images(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [folder / name for name in names]
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    return images


def _run(drawn: Path, images: list[Path]) -> DrawingWriter:
    """One run drawing ``images`` (given) into ``drawn``, committed."""
    with DrawingWriter(drawn, images, score_threshold=0.3) as writer:
        for image in images:
            writer.write(_empty_prediction(image), [])
    return writer


def _hidden(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name != DRAWINGS_MARKER
    )


def test_a_commit_removes_the_staged_files_of_runs_killed_before_their_end_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run killed (SIGKILL) mid-way left its hidden staged drawings, the temporary file of a
    video half written and of a marker write, and no later run into the folder removed them.
    Now the next commit into the folder does, saying how many, once no run living stages there;
    a commit while the staging run lives keeps them."""
    a, b, c = _images(tmp_path / "in", "a.png", "b.png", "c.png")
    clip = tmp_path / "in" / "clip.mov"
    drawn = tmp_path / "drawn"
    _run(drawn, [a])
    with _staging_run(drawn, b, clip) as staging:
        left = _hidden(drawn)
        assert STAGING_LOCK in left and ".b.partial.png" in left
        assert any(name.startswith("..clip.partial.mp4.") for name in left)
        assert any(name.startswith(f".{DRAWINGS_MARKER}.") for name in left)
        _run(drawn, [c])  # while it lives: its files are kept
        assert _hidden(drawn) == left
        staging.kill()
        staging.wait()
    caplog.set_level(logging.INFO)
    _run(drawn, [a])
    assert _hidden(drawn) == []
    assert (
        f"removed 3 hidden files of runs killed before their end (drawings staged, files half "
        f"written) in {drawn}"
    ) in caplog.text
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "a.png", "c.png"]


def test_staged_files_below_another_runs_output_folder_are_kept_while_it_lives(
    tmp_path: Path,
) -> None:
    """A commit into a folder removed the staged files of a run living that draws into a
    folder below it (its own output folder): it proves a run dead by that run's lock."""
    a, b = _images(tmp_path / "in", "a.png", "b.png")
    clip = tmp_path / "in" / "clip.mov"
    drawn = tmp_path / "drawn"
    with _staging_run(drawn / "sub", b, clip):
        _run(drawn, [a])
        assert (drawn / "sub" / ".b.partial.png").is_file()


def test_a_failed_run_leaves_no_staged_file_nor_lock_nor_folder(tmp_path: Path) -> None:
    (image,) = _images(tmp_path / "in", "a.png")
    drawn = tmp_path / "new" / "drawn"
    with pytest.raises(RuntimeError), DrawingWriter(drawn, [image], 0.3) as writer:
        writer.write(_empty_prediction(image), [])
        assert (drawn / STAGING_LOCK).is_file()
        raise RuntimeError("the model failed")
    assert not (tmp_path / "new").exists()


def test_a_commit_failing_part_way_deletes_what_it_did_not_move_and_lists_what_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk or a permission stopping the commit after some drawings were moved left the
    others' staged files behind, and a marker listing drawings the folder did not hold (or an
    earlier drawing as this run's). Now those are deleted, the marker lists the drawings there
    with their inputs, and the error names the folder and what to do."""
    a, b, c = _images(tmp_path / "in", "a.png", "b.png", "c.png")
    (old_b,) = _images(tmp_path / "old", "b.png")  # drawn to drawn/b.png too, given alone
    drawn = tmp_path / "drawn"
    _run(drawn, [a])
    _run(drawn, [old_b])
    (drawn / "b.png").write_bytes(b"the earlier run's drawing of old/b.png")
    replace = os.replace

    def disk_full(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if Path(source).name == ".b.partial.png":
            raise OSError(errno.ENOSPC, "No space left on device", str(source))
        replace(source, target)

    monkeypatch.setattr(os, "replace", disk_full)
    writer = DrawingWriter(drawn, [a, b, c], score_threshold=0.3)
    with pytest.raises(DrawingsCommitError) as raised, writer:
        for image in (a, b, c):
            writer.write(_empty_prediction(image), [])
    assert str(raised.value) == (
        f"{drawn}: could not put the drawings in place ({drawn / '.b.partial.png'}: No space left "
        "on device); 1 of 3 drawings moved, the others deleted (the earlier drawings they would "
        "replace stay): free disk space or make the folder writable, and run again"
    )
    assert raised.value.errno == errno.ENOSPC
    assert not [p for p in tmp_path.rglob("*") if is_staged(p)]
    assert not (drawn / STAGING_LOCK).exists()
    assert (drawn / "b.png").read_bytes() == b"the earlier run's drawing of old/b.png"
    assert not (drawn / "c.png").exists()
    listed = json.loads((drawn / DRAWINGS_MARKER).read_text())["drawings"]
    assert listed == {"a.png": str(a), "b.png": str(old_b)}


def test_a_staged_name_is_the_targets_hidden_and_its_temporary_is_one_too(tmp_path: Path) -> None:
    staged = staged_path(tmp_path / "clip.v2.mp4")
    assert staged.name == ".clip.v2.partial.mp4" and is_staged(staged)
    assert is_staged(tmp_path / "..clip.v2.partial.mp4.k2j3h4g5.tmp")
    assert not is_staged(tmp_path / "clip.v2.mp4") and not is_staged(tmp_path / ".notes.txt")


def test_a_relative_output_folder_keeps_the_staged_files_of_a_run_drawing_into_a_folder_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``predict --save-images deep`` (run in ``drawn/sub``) kept the folder as typed: its
    parents were only ``.``, so a commit never saw the lock of the run living that draws into
    ``drawn`` (its drawings of ``in/sub/deep`` go to ``drawn/sub/deep``), and removed its staged
    drawing."""
    (a,) = _images(tmp_path / "in", "a.png")
    (b,) = _images(tmp_path / "in" / "sub" / "deep", "b.png")
    drawn = tmp_path / "drawn"
    (drawn / "sub" / "deep").mkdir(parents=True)
    with _staging_run(drawn, b, tmp_path / "in" / "clip.mov"):
        staged = drawn / "sub" / "deep" / ".b.partial.png"
        assert staged.is_file()
        monkeypatch.chdir(drawn / "sub")
        _run(Path("deep"), [a])
        assert staged.is_file() and (drawn / "sub" / "deep" / "a.png").is_file()


def test_a_file_system_without_locks_is_left_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where flock fails with ENOLCK (some network and FUSE mounts), a run created the staging
    lock and never removed it: a failed run left a new output folder holding only that file,
    and a good run left it for good. Now neither leaves it, and one warning a run says what is
    lost."""
    import fcntl

    def no_locks(*args: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    (image,) = _images(tmp_path / "in", "a.png")
    drawn = tmp_path / "new" / "drawn"
    with pytest.raises(RuntimeError), DrawingWriter(drawn, [image], 0.3) as writer:
        writer.write(_empty_prediction(image), [])
        raise RuntimeError("the model failed")
    assert not (tmp_path / "new").exists()
    caplog.clear()
    _run(drawn, [image])
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "a.png"]
    assert caplog.text.count(f"cannot lock {drawn / STAGING_LOCK} (No locks available)") == 1


def test_a_commit_removes_only_what_a_run_staged_and_nothing_in_hidden_folders(
    tmp_path: Path,
) -> None:
    """The sweep removed any hidden ``.X.partial.EXT`` and ``..X.partial.EXT.Y.tmp`` below the
    output folder, hidden folders included: files no run of sparsercnn wrote (a folder of the
    user's given to ``--save-images``). Now only a drawing's staged name (an image's suffix or
    .mp4) and its atomic write's temporary go, and nothing in a hidden folder below."""
    (image,) = _images(tmp_path / "in", "a.png")
    drawn = tmp_path / "drawn"
    dead = [drawn / ".b.partial.png", drawn / "sub" / ".c.partial.JPG"]
    dead.append(drawn / "sub" / "..clip.partial.mp4.k2j3h4_5.tmp")
    kept = [drawn / ".notes.partial.txt", drawn / "..notes.partial.txt.k2j3h4g5.tmp"]
    kept += [drawn / ".b.partial.png.bak", drawn / "..b.partial.png.tmp"]
    kept += [drawn / ".cache" / ".d.partial.png", drawn / ".cache" / "sub" / ".e.partial.png"]
    for path in dead + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"a hidden file")
    _run(drawn, [image])
    assert [p for p in dead if p.exists()] == [] and all(p.exists() for p in kept)

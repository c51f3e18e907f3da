"""Drawings of predictions: never over an input or a file of the user's, and never marking a
folder of the user's images as drawings."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from sparsercnn import drawings_marker
from sparsercnn.drawing_writer import DrawingWriter
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.prediction import Prediction
from sparsercnn.visualization import font


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


def test_a_drawing_never_replaces_a_file_no_run_drew(tmp_path: Path) -> None:
    """The user's photo of the same name in the output folder was replaced "as a drawing from
    an earlier run"; only files in a marked folder of drawings are."""
    image = tmp_path / "in" / "x.png"
    image.parent.mkdir()
    Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    photo = drawn / "x.png"
    photo.write_bytes(b"the user's photo")
    writer = DrawingWriter(drawn, [image], score_threshold=0.3, flag="--save-images")
    with pytest.raises(ValueError, match=f"--save-images {drawn} would replace {photo}, which no"):
        writer.check_target(writer.target(image), image)
    with pytest.raises(ValueError, match="which no earlier run drew"), writer:
        writer.write(_empty_prediction(image), [])
    with pytest.raises(ValueError, match=f"--save-images {drawn} holds {photo}, which no run"):
        writer.check_folder()
    assert photo.read_bytes() == b"the user's photo"
    assert sorted(p.name for p in drawn.iterdir()) == ["x.png"]  # neither staged nor marked
    # The drawings' own folder is, and a folder below it: their files are earlier drawings.
    photo.unlink()
    for folder in (drawn, drawn / "below"):
        for _ in range(2):
            with DrawingWriter(folder, [image], score_threshold=0.3) as writer:
                writer.check_folder()
                writer.write(_empty_prediction(image), [])
        assert writer.overwritten == [folder / "x.png"]
    # Nor does a drawing replace its own input in a folder of drawings.
    with pytest.raises(ValueError, match=f"would replace the input {drawn / 'x.png'} with its"):
        writer = DrawingWriter(drawn, [drawn], score_threshold=0.3)
        writer.check_target(writer.target(drawn / "x.png"), drawn / "x.png")


def test_a_file_that_appears_during_the_run_is_kept_and_its_folder_not_marked(
    tmp_path: Path,
) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    with (
        pytest.raises(ValueError, match="appeared during the run"),
        DrawingWriter(drawn, [image], score_threshold=0.3) as writer,
    ):
        writer.write(_empty_prediction(image), [])
        (drawn / "x.png").write_bytes(b"saved meanwhile")
    assert (drawn / "x.png").read_bytes() == b"saved meanwhile"
    assert sorted(p.name for p in drawn.iterdir()) == ["x.png"]
    # Nor is a folder marked as drawings while it holds an image of the user's.
    (drawn / "x.png").rename(drawn / "mine.png")
    with (
        pytest.raises(ValueError, match=f"{drawn} holds {drawn / 'mine.png'}, which no run drew"),
        DrawingWriter(drawn, [image], score_threshold=0.3) as writer,
    ):
        writer.write(_empty_prediction(image), [])
    assert sorted(p.name for p in drawn.iterdir()) == ["mine.png"]


def test_a_folder_given_again_loses_the_drawings_it_no_longer_draws_and_no_file_of_the_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Drawings of a given folder's images that this run did not draw (unreadable now) stayed,
    beside this run's, and so did the subfolders they emptied: the folder mixed two runs'
    results. Only drawings the marker lists are removed; a file of the user's in the folder,
    and a drawing given as an input, stay; a failed run changes nothing."""
    folder = tmp_path / "in"
    images = [folder / name for name in ("x.png", "y.png", "sub/z.png")]
    (folder / "sub").mkdir(parents=True)
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    _run(drawn, [folder], images)
    x, y, z = (drawn / image.relative_to(folder) for image in images)
    (drawn / "notes.png").write_bytes(b"the user's, saved here later")
    for fail in (True, False):
        writer = DrawingWriter(drawn, [folder], score_threshold=0.3)
        with pytest.raises(RuntimeError) if fail else contextlib.nullcontext(), writer:
            writer.write(_empty_prediction(images[0]), [])
            if fail:
                raise RuntimeError("the model failed")
        assert (x.is_file(), y.is_file(), z.is_file()) == (True, fail, fail)
    assert set(writer.removed) == {y, z} and writer.overwritten == [x]
    assert not (drawn / "sub").exists()
    assert (drawn / "notes.png").read_bytes() == b"the user's, saved here later"
    assert (
        f"removing 2 drawings of inputs given this run (or below a folder given) that it did not "
        f"draw again: {z}, {y}"
    ) in caplog.text
    # A drawing given as an input of this run is read, never removed, and stays listed.
    writer = _run(drawn, [x, folder], [images[1]])
    assert x.is_file() and writer.removed == []
    assert sorted(_listed(drawn)) == ["in/y.png", "x.png"]


def _run(drawn: Path, given: list[Path], images: list[Path]) -> DrawingWriter:
    """One run into ``drawn``, given ``given`` and drawing ``images`` (no detections);
    returns its writer, committed."""
    with DrawingWriter(drawn, given, score_threshold=0.3) as writer:
        for image in images:
            writer.write(_empty_prediction(image), [])
    return writer


def _listed(drawn: Path) -> dict[str, str | None]:
    """The drawings the marker of ``drawn`` lists, each with its input (None: unknown)."""
    listed: dict[str, str | None] = json.loads((drawn / DRAWINGS_MARKER).read_text())["drawings"]
    return listed


def test_a_drawing_is_removed_only_by_a_run_given_its_input_or_a_folder_above_it(
    tmp_path: Path,
) -> None:
    """A run removed every drawing the last run drew and it did not: predicting images one at
    a time into one folder (a shell loop; today's images beside yesterday's) left only the last
    image's drawing. Now a drawing of an input not given this run stays, and stays listed with
    its input, so that a later run given that input's folder removes it once its image is
    deleted."""
    folder = tmp_path / "in"
    folder.mkdir()
    images = [folder / name for name in ("a.png", "b.png", "c.png")]
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    for image in [*images, images[1]]:
        writer = _run(drawn, [image], [image])
        assert writer.removed == []
    targets = [drawn / image.name for image in images]
    assert all(target.is_file() for target in targets)
    assert _listed(drawn) == {image.name: str(image) for image in images}
    images[0].unlink()
    writer = _run(drawn, [folder], images[1:])
    assert writer.removed == [targets[0]] and not targets[0].exists()
    assert _listed(drawn) == {image.name: str(image) for image in images[1:]}


def test_a_drawing_replaced_by_that_of_another_input_is_named_with_both_inputs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Images of one name in two folders, predicted one run each into one folder, share a
    target (each run's root is its image's folder): the second replaced the first's drawing
    with only "replacing 1 drawing that an earlier run drew", as a run again on the same image
    does. Now the warning names the drawing's earlier input and its new one."""
    images = [tmp_path / folder / "x.png" for folder in ("a", "b")]
    for image in images:
        image.parent.mkdir()
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    warnings = []
    for image in (images[0], images[1], images[1]):
        caplog.clear()
        _run(drawn, [image], [image])
        warnings.append(caplog.text)
    target = drawn / "x.png"
    assert (
        f"replacing 1 drawing of other inputs (give them in one run to keep each): {target}, "
        f"the drawing of {images[0]}, replaced by that of {images[1]}"
    ) in warnings[1]
    assert "earlier run drew" not in warnings[1]
    assert f"replacing 1 drawing that an earlier run drew: {target}" in warnings[2]
    assert "other inputs" not in warnings[2]
    assert _listed(drawn) == {"x.png": str(images[1])}


def test_a_drawing_replaced_by_that_of_its_image_given_through_a_link_is_of_the_same_input(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The marker names inputs by absolute path, links unresolved: the same image given through
    a linked folder was said to be another input whose drawing replaced the first's."""
    image, linked = tmp_path / "a" / "x.png", tmp_path / "link" / "x.png"
    image.parent.mkdir()
    (tmp_path / "link").symlink_to(image.parent)
    Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    for given in (image, linked):
        caplog.clear()
        with DrawingWriter(drawn, [given], score_threshold=0.3) as writer:
            writer.write(_empty_prediction(given), [])
    assert f"replacing 1 drawing that an earlier run drew: {drawn / 'x.png'}" in caplog.text
    assert "other inputs" not in caplog.text
    assert writer.overwritten == [drawn / "x.png"]


def test_a_folder_given_again_through_a_link_loses_the_drawing_of_an_image_since_deleted(
    tmp_path: Path,
) -> None:
    """A run covered an earlier drawing's input by its path as written only: a folder drawn,
    one image then deleted, and the folder given again through a link to it, kept the deleted
    image's drawing (while its other drawing was known as of the same input)."""
    folder, link = tmp_path / "a", tmp_path / "link"
    folder.mkdir()
    link.symlink_to(folder)
    images = [folder / name for name in ("x.png", "y.png")]
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    _run(drawn, [folder], images)
    images[1].unlink()
    writer = _run(drawn, [link], [link / "x.png"])
    assert writer.removed == [drawn / "y.png"] and not (drawn / "y.png").exists()
    assert _listed(drawn) == {"x.png": str(link / "x.png")}


def test_a_staged_file_a_killed_run_left_is_not_taken_for_this_runs_drawing(
    tmp_path: Path,
) -> None:
    """A run killed between an annotated video's close and its commit leaves drawn/.clip.partial
    .mp4; a later run that stages that video but writes none of it (no frame readable now) moved
    the old file into place and listed it as its own drawing."""
    clip, drawn = tmp_path / "clip.mov", tmp_path / "drawn"
    drawn.mkdir()
    (drawn / ".clip.partial.mp4").write_bytes(b"the killed run's video")
    writer = DrawingWriter(drawn, [clip], score_threshold=0.3)
    writer.stage(writer.video_target(clip), clip)
    assert writer.commit() == [] and sorted(p.name for p in drawn.iterdir()) == []


def test_a_file_a_marker_does_not_list_is_the_users_and_an_older_marker_marks_the_folder(
    tmp_path: Path,
) -> None:
    """Any file below a marked folder counted as a drawing: a photo the user saved into a
    folder of drawings, at the name of an image drawn later, was replaced. A marker that lists
    the drawings counts those only; one of an older run (no list) still counts its folder."""
    images = [tmp_path / "in" / name for name in ("a.png", "x.png")]
    images[0].parent.mkdir()
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    _run(drawn, [images[0]], [images[0]])
    photo = drawn / "x.png"
    photo.write_bytes(b"the user's photo")
    with (
        pytest.raises(ValueError, match=f"would replace {photo}, which no earlier run drew"),
        DrawingWriter(drawn, [images[1]], score_threshold=0.3) as writer,
    ):
        writer.write(_empty_prediction(images[1]), [])
    assert photo.read_bytes() == b"the user's photo"
    (drawn / DRAWINGS_MARKER).write_text("drawings of sparsercnn predict\n")  # an older run's
    writer = _run(drawn, [images[1]], [images[1]])
    assert writer.overwritten == [photo]
    assert _listed(drawn) == {"a.png": None, "x.png": str(images[1])}


def test_the_drawings_of_an_older_marker_stay_drawings_once_the_marker_lists_them(
    tmp_path: Path,
) -> None:
    """An older marker (no list: every file below counts) was rewritten listing only the new
    run's drawings: the earlier ones became the user's files, which a later run refused to
    replace ("which no earlier run drew") and never removed. They are listed from then on, of
    an unknown input: replaced where drawn again, never removed."""
    folder = tmp_path / "in"
    images = [folder / name for name in ("a.png", "x.png")]
    folder.mkdir()
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    (drawn / "sub").mkdir(parents=True)
    (drawn / DRAWINGS_MARKER).write_text("drawings of sparsercnn predict\n")  # an older run's
    for name in ("a.png", "sub/clip.mp4", ".b.partial.png", "notes.txt"):
        (drawn / name).write_bytes(b"drawn by an older run")
    # Given the folder of a.png, drawing x.png only (as if a.png could not be read now).
    writer = _run(drawn, [folder], [images[1]])
    assert writer.removed == [] and (drawn / "a.png").is_file()
    assert _listed(drawn) == {"a.png": None, "sub/clip.mp4": None, "x.png": str(images[1])}
    writer = _run(drawn, [images[0]], [images[0]])
    assert writer.overwritten == [drawn / "a.png"]
    assert _listed(drawn)["a.png"] == str(images[0])


def test_runs_committing_into_one_folder_at_once_keep_each_others_drawings_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs into one folder (images predicted one at a time, in parallel) read, merged and
    rewrote the marker unlocked: the second to write it dropped the other's drawing, which a
    later run then took for the user's file. Here run b commits while run a is between reading
    the marker and writing it: b waits for a's lock, then lists both (and a's commit no longer
    deletes the staged files in its folders, b's among them, as a killed run's leftovers)."""
    images = [tmp_path / "in" / name for name in ("a.png", "b.png")]
    images[0].parent.mkdir()
    for image in images:
        Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    writers = [DrawingWriter(drawn, [image], score_threshold=0.3) for image in images]
    for writer, image in zip(writers, images, strict=True):
        writer.write(_empty_prediction(image), [])
    b_waits_or_ends = threading.Event()
    caplog.set_level(logging.INFO, logger=drawings_marker.__name__)
    waiting = logging.Handler()
    waiting.emit = lambda record: b_waits_or_ends.set()  # type: ignore[method-assign]
    b = threading.Thread(target=lambda: (writers[1].commit(), b_waits_or_ends.set()))
    write = drawings_marker.atomic_write_text

    def b_commits_first(path: Path, text: str) -> None:
        if b.ident is None and threading.current_thread() is threading.main_thread():
            b.start()
            assert b_waits_or_ends.wait(timeout=60)
        write(path, text)

    monkeypatch.setattr(drawings_marker, "atomic_write_text", b_commits_first)
    logging.getLogger(drawings_marker.__name__).addHandler(waiting)
    try:
        writers[0].commit()
        b.join()
    finally:
        logging.getLogger(drawings_marker.__name__).removeHandler(waiting)
    assert "waiting for process" in caplog.text
    assert _listed(drawn) == {image.name: str(image) for image in images}
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "a.png", "b.png"]


def test_an_annotated_video_keeps_its_sources_path_with_suffix_mp4(tmp_path: Path) -> None:
    """A video file's drawing takes .mp4, a frame folder ``f`` gives ``f.mp4``, and the inputs'
    common folder itself (one frame folder given) its name .mp4 inside the output folder."""
    (tmp_path / "in" / "frames").mkdir(parents=True)
    clip, frames = tmp_path / "in" / "clip.mov", tmp_path / "in" / "frames"
    drawn = tmp_path / "drawn"
    writer = DrawingWriter(drawn, [clip, frames], score_threshold=0.3)
    assert writer.video_target(clip) == drawn / "clip.mp4"
    assert writer.video_target(frames) == drawn / "frames.mp4"
    alone = DrawingWriter(drawn, [frames], score_threshold=0.3)
    assert alone.video_target(frames) == drawn / "frames.mp4"


def test_a_name_the_font_lacks_is_warned_about_once_and_only_when_drawn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    """One warning for a folder of drawings, not one per image; none where no detection passes
    the threshold (the name is never drawn)."""
    (tmp_path / "in").mkdir()

    def write_all(score: float) -> list[str]:
        caplog.clear()
        with DrawingWriter(tmp_path / f"drawn{score}", [tmp_path / "in"], 0.3) as writer:
            for i in range(3):
                image = tmp_path / "in" / f"{i}.png"
                Image.new("RGB", (20, 10), "red").save(image)
                prediction = Prediction(
                    boxes=torch.tensor([[1.0, 1.0, 8.0, 8.0]]),
                    scores=torch.tensor([score]),
                    labels=torch.tensor([0]),
                    class_names=["猫"],
                    category_ids=[1],
                    image_size=(10, 20),
                    source=str(image),
                )
                writer.write(prediction, ["猫"])
        return [r.getMessage() for r in caplog.records if r.name == font.__name__]

    assert write_all(0.1) == []
    messages = write_all(0.9)
    assert len(messages) == 1 and "'猫' (猫)" in messages[0]


def test_a_folder_holding_hidden_files_of_the_users_may_take_drawings_that_leave_them_be(
    tmp_path: Path,
) -> None:
    """A ``--save-images`` folder copied from a Mac (``._x.jpg`` beside its images, hidden
    thumbnails) was refused: "holds ._x.jpg, which no run drew". Hidden files are no inputs and
    no drawing replaces them, so they do not keep a folder from being marked; they stay."""
    image = tmp_path / "in" / "x.png"
    image.parent.mkdir()
    Image.new("RGB", (20, 10), "red").save(image)
    drawn = tmp_path / "drawn"
    hidden = [drawn / "._x.jpg", drawn / ".thumbnails" / "x.jpg"]
    for path in hidden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    with DrawingWriter(drawn, [image], score_threshold=0.3, flag="--save-images") as writer:
        writer.check_folder()
        writer.write(_empty_prediction(image), [])
    assert (drawn / "x.png").is_file() and (drawn / DRAWINGS_MARKER).is_file()
    assert all(path.read_bytes().endswith(b"Mac OS X") for path in hidden)

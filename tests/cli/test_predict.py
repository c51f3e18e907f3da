"""``sparsercnn predict`` on a folder holding images that cannot be read: the others predicted,
written and drawn, the unreadable named in one warning and in the frame list, exit status 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sparsercnn.cli import predict
from sparsercnn.cli.main import main
from sparsercnn.image_inputs import DRAWINGS_MARKER
from tests.synthetic_coco import SyntheticCoco, WriteCoco, truncate


@pytest.fixture
def damaged(write_coco: WriteCoco) -> SyntheticCoco:
    """Four images: a.jpg and nested/c.png readable, b.jpg truncated, d.png empty."""
    data = write_coco(file_names=["a.jpg", "b.jpg", "nested/c.png", "d.png"], size=(48, 64))
    truncate(data.image_dir / "b.jpg")
    (data.image_dir / "d.png").write_bytes(b"")
    return data


def test_unreadable_images_are_left_out_named_and_listed_and_the_run_exits_2(
    model_file: Path,
    damaged: SyntheticCoco,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One truncated JPEG stopped the run part-way, writing nothing: every other image's
    results were lost."""
    folder, output, drawn = damaged.image_dir, tmp_path / "preds.json", tmp_path / "drawn"
    argv = ["predict", "--model", str(model_file), str(folder), "--output", str(output)]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--save-images", str(drawn), "--score-threshold", "0"]) == 2
    sources = {record["file_name"] for record in json.loads(output.read_text())}
    assert sources == {str(folder / "a.jpg"), str(folder / "nested" / "c.png")}
    drawings = sorted(str(p.relative_to(drawn)) for p in drawn.rglob("*") if p.is_file())
    assert drawings == [DRAWINGS_MARKER, "a.jpg", "nested/c.png"]
    frame_list = tmp_path / "preds.frames.json"
    listed = json.loads(frame_list.read_text())
    assert listed["videos"] == []
    assert listed["unreadable_images"] == [
        {"file_name": str(folder / "b.jpg"), "reason": listed["unreadable_images"][0]["reason"]},
        {
            "file_name": str(folder / "d.png"),
            "reason": "the file is empty (0 bytes): copy or export it again",
        },
    ]
    assert listed["unreadable_images"][0]["reason"].startswith("the file is truncated")
    (warning,) = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert warning.startswith(
        f"2 images could not be read and were left out (listed in {frame_list})"
    )
    assert f"{folder / 'b.jpg'} (the file is truncated" in warning
    assert f"{folder / 'd.png'} (the file is empty (0 bytes)" in warning
    out = capsys.readouterr().out
    assert "detections on 2 images written to " in out and "2 images could not be read" in out
    # A later run reading every image removes the frame list, which described earlier results.
    assert (
        main(
            ["predict", "--model", str(model_file), str(folder / "a.jpg"), "--output", str(output)]
        )
        == 0
    )
    assert not frame_list.exists()


def test_an_image_no_longer_readable_loses_its_earlier_drawing(
    model_file: Path, write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """b.jpg, drawn by a first run, is truncated before the second: its old drawing stayed in
    the drawings folder, showing detections the results no longer had."""
    folder = write_coco(file_names=["a.jpg", "b.jpg"], size=(48, 64)).image_dir
    drawn = tmp_path / "drawn"
    argv = [
        "predict",
        "--model",
        str(model_file),
        str(folder),
        "--output",
        str(tmp_path / "p.json"),
    ]
    assert main([*argv, "--save-images", str(drawn)]) == 0
    assert (drawn / "b.jpg").is_file()
    truncate(folder / "b.jpg")
    capsys.readouterr()
    assert main([*argv, "--save-images", str(drawn)]) == 2
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "a.jpg"]
    assert "(1 earlier drawing replaced, 1 earlier drawing removed)" in capsys.readouterr().out


def test_a_run_that_reads_no_image_is_an_error_that_writes_nothing(
    model_file: Path, damaged: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A single image named that cannot be read fails as before; several name each."""
    folder, output = damaged.image_dir, tmp_path / "preds.json"
    argv = ["predict", "--model", str(model_file), "--output", str(output)]
    assert main([*argv, str(folder / "b.jpg")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sparsercnn predict: error: cannot read image '{folder / 'b.jpg'}': ")
    assert main([*argv, str(folder / "b.jpg"), str(folder / "d.png")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"sparsercnn predict: error: none of the 2 images could be read: {folder / 'b.jpg'} (the "
    )
    assert f"{folder / 'd.png'} (the file is empty (0 bytes)" in line
    assert not output.exists() and not (tmp_path / "preds.frames.json").exists()


def test_a_run_that_reads_no_input_leaves_an_earlier_runs_outputs_as_they_were(
    model_file: Path, damaged: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run none of whose inputs can be read is an error: the results, frame list and drawings
    of the earlier run into the same files stay whole and as they were (its drawing of an image
    since damaged too: only a run that writes removes it), and it leaves nothing half-written
    (no staged drawing, lock or temporary file)."""
    folder, out = damaged.image_dir, tmp_path / "out"
    output, drawn = out / "preds.json", out / "drawn"
    argv = ["predict", "--model", str(model_file), "--output", str(output)]
    assert main([*argv, "--save-images", str(drawn), str(folder)]) == 2  # b.jpg, d.png
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {p.name for p in before} == {
        "preds.json",
        "preds.frames.json",
        DRAWINGS_MARKER,
        "a.jpg",
        "c.png",
    }
    truncate(folder / "a.jpg")
    capsys.readouterr()
    given = [str(folder / name) for name in ("a.jpg", "b.jpg", "d.png")]
    assert main([*argv, "--save-images", str(drawn), *given]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sparsercnn predict: error: none of the 3 images could be read: ")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", ["drawn.mp4", "drawn.PNG"])
def test_an_output_naming_an_image_or_video_is_refused_before_the_model_loads(
    model_file: Path,
    damaged: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    """Its suffix alone tells, yet the refusal came after the model was loaded and every input
    video opened."""

    def loaded(args: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(predict, "build_predictor", loaded)
    output = tmp_path / name
    argv = ["predict", "--model", str(model_file), str(damaged.image_dir / "a.jpg")]
    assert main([*argv, "--output", str(output)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"sparsercnn predict: error: --output {output} names an image or video file, but "
        "--output is the results JSON: give a .json name (--save-images DIR draws the detections)"
    )


def test_an_unreadable_image_exits_2_and_a_skipped_frame_0_as_help_says(
    model_file: Path,
    damaged: SyntheticCoco,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An image that cannot be read is a whole input lost (2); a frame of an --fps folder that
    cannot be read, truncated or empty, is one part of an input, whose other frames are written
    (0, a warning; an empty one failed the run). --help's exit-status text says which and
    why."""
    folder = damaged.image_dir
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a.jpg", "b.jpg", "d.png"):  # b.jpg is truncated, d.png empty
        (frames / name).write_bytes((folder / name).read_bytes())
    argv = ["predict", "--model", str(model_file), "--output", str(tmp_path / "preds.json")]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--fps", "5", str(frames), str(folder / "a.jpg")]) == 0
    assert f"frame folder {frames}: skipped 2 frames that could not be read" in caplog.text
    assert main([*argv, "--fps", "5", str(frames), str(folder / "b.jpg")]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "Exit status: 2 when an image (or every frame kept of an --fps folder or video, or the "
        "rest of a video) could not be read, 0 when only frames were skipped, as an image is a "
        "whole input lost and a frame one part of an input whose other frames are written."
    ) in help_text


def test_the_progress_bar_counts_only_the_images_and_frames_predicted(
    model_file: Path, damaged: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable image was counted as predicted, an unreadable --fps frame was not."""
    from sparsercnn.cli.predict_progress import PredictionProgress

    counted: list[None] = []
    monkeypatch.setattr(PredictionProgress, "count", lambda self: counted.append(None))
    folder = damaged.image_dir
    argv = ["predict", "--model", str(model_file), "--output", str(tmp_path / "preds.json")]
    assert main([*argv, str(folder)]) == 2  # a.jpg and nested/c.png of 4 images
    assert len(counted) == 2
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a.jpg", "b.jpg"):  # b.jpg is truncated
        (frames / name).write_bytes((folder / name).read_bytes())
    counted.clear()
    assert main([*argv, "--fps", "5", str(frames)]) == 0
    assert len(counted) == 1


def test_lost_inputs_counts_every_kind_in_the_order_given() -> None:
    """The kinds were counted from a fixed ("frame folder", "video"): a kind outside it was
    dropped from the count."""
    lost = [("video", "a.mp4"), ("frame folder", "f"), ("video", "b.mp4"), ("animation", "c")]
    assert predict.lost_inputs(1, lost) == "1 image and 2 videos and 1 frame folder and 1 animation"
    assert predict.lost_inputs(0, lost[1:2]) == "1 frame folder"

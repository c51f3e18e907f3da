"""``sparsercnn predict`` on videos, frame folders and mixed inputs: records, annotated videos,
progress, and bad input reported in one line that names the file or flag."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn import video
from sparsercnn.cli import predict, predict_inputs, predict_sequences
from sparsercnn.cli.main import main
from sparsercnn.cli.predict_progress import PredictionProgress
from sparsercnn.data.categories import CategoryMap
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.prediction import Prediction
from sparsercnn.video import VIDEO_SUFFIXES
from sparsercnn.visualization.draw import draw_detections
from tests.synthetic_coco import truncate
from tests.video.clips import RED_BOX_Y, clip_frame, decode, red_box_x, write_audio_only, write_clip
from tests.video.test_reader import damage_packets, fail_reading_at, write_frames


def run_predict(model: Path, *args: str | Path) -> int:
    return main(["predict", "--model", str(model), *map(str, args)])


def frames_of(records: list[dict[str, Any]]) -> dict[tuple[str, int | None], list[dict[str, Any]]]:
    grouped = defaultdict(list)
    for record in records:
        grouped[record["file_name"], record.get("frame_index")].append(record)
    return grouped


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sparsercnn predict: error: ")
    return line


def test_a_video_gives_frame_records_and_an_annotated_video(
    unclipped_model_file: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = [clip, "--every", "4", "--output", output, "--save-images", drawn]
    assert run_predict(unclipped_model_file, *args, "--score-threshold", "0") == 0
    assert "on 6 frames of 1 video written to" in capsys.readouterr().out
    records = json.loads(output.read_text())
    grouped = frames_of(records)
    assert sorted(grouped) == [(str(clip), i) for i in range(0, 24, 4)]
    for (_, index), frame_records in grouped.items():
        for record in frame_records:
            assert record["timestamp"] == pytest.approx(index / 12, abs=1e-6)
            assert record["category_id"] in (3, 7) and len(record["bbox"]) == 4
            assert "frame_file" not in record
    frames, fps, _ = decode(drawn / "clip.mp4")
    assert len(frames) == 6 and fps == 3 and frames[0].shape == (64, 96, 3)
    for i, frame in enumerate(frames):  # every detection drawn (threshold 0), in frame order
        frame_records = grouped[str(clip), 4 * i]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in frame_records)]
        labels = [(3, 7).index(r["category_id"]) for r in frame_records]
        scores = [r["score"] for r in frame_records]
        image = Image.fromarray(clip_frame(4 * i))
        expected = np.asarray(draw_detections(image, boxes, labels, scores, ["cat", "dog"], 0))
        gray = frame.astype(float).mean(axis=2)
        # Closer to the expected drawing than to the frame undrawn, despite compression.
        drawn_error = np.abs(gray - expected.mean(axis=2)).mean()
        assert drawn_error < np.abs(gray - clip_frame(4 * i).mean(axis=2)).mean()


def test_mixed_inputs_keep_their_relative_paths(
    unclipped_model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    (inputs / "media" / "nested").mkdir(parents=True)
    Image.fromarray(clip_frame(0)).save(inputs / "a.png")
    Image.fromarray(clip_frame(1)).save(inputs / "media" / "b.jpg")
    write_clip(inputs / "clip.mkv", 6)
    write_clip(inputs / "media" / "nested" / "c.mp4", 4)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    paths = [inputs / "a.png", inputs / "clip.mkv", inputs / "media"]
    assert run_predict(unclipped_model_file, *paths, "--every", "3", "--output", output,
                       "--save-images", drawn) == 0  # fmt: skip
    assert "on 2 images and 4 frames of 2 videos" in capsys.readouterr().out
    grouped = frames_of(json.loads(output.read_text()))
    assert sorted(grouped, key=str) == sorted(
        [
            (str(inputs / "a.png"), None),
            (str(inputs / "clip.mkv"), 0),
            (str(inputs / "clip.mkv"), 3),
            (str(inputs / "media" / "b.jpg"), None),
            (str(inputs / "media" / "nested" / "c.mp4"), 0),
            (str(inputs / "media" / "nested" / "c.mp4"), 3),
        ],
        key=str,
    )
    drawings = sorted(p.relative_to(drawn).as_posix() for p in drawn.rglob("*") if p.is_file())
    assert drawings == [DRAWINGS_MARKER, "a.png", "clip.mp4", "media/b.jpg", "media/nested/c.mp4"]
    assert len(decode(drawn / "media" / "nested" / "c.mp4")[0]) == 2


def test_a_frame_folder_with_fps_is_one_video(unclipped_model_file: Path, tmp_path: Path) -> None:
    paths = write_frames(tmp_path / "frames", 6)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = [tmp_path / "frames", "--fps", "6", "--every", "2", "--output", output]
    assert run_predict(unclipped_model_file, *args, "--save-images", drawn) == 0
    records = json.loads(output.read_text())
    positions = {(r["frame_index"], r["timestamp"], r["frame_file"]) for r in records}
    assert positions == {(0, 0.0, str(paths[0])), (2, 0.333333, str(paths[2])),
                         (4, 0.666667, str(paths[4]))}  # fmt: skip
    assert {r["file_name"] for r in records} == {str(tmp_path / "frames")}
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "frames.mp4"]
    frames, fps, _ = decode(drawn / "frames.mp4")
    assert len(frames) == 3 and fps == Fraction(3)


def test_switching_fps_replaces_the_other_mode_s_drawings(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder drawn as images, then with --fps as one video (and back), left the other run's
    drawings beside this one's: the folder showed two runs' results mixed. The drawing of an
    image not given in these runs, drawn into the same folder before, stays (it was removed)."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_frames(folder / "frames", 2)
    (frame,) = write_frames(tmp_path / "other", 1)
    other = frame.rename(frame.with_name("other.png"))
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    assert run_predict(model_file, other, "--output", output, "--save-images", drawn) == 0
    images = ["frames/frame_0.png", "frames/frame_1.png"]
    for fps, expected in (([], images), (["--fps", "4"], ["in.mp4"]), ([], images)):
        args = [folder, *fps, "--output", output, "--save-images", drawn]
        assert run_predict(model_file, *args) == 0
        drawings = sorted(p.relative_to(drawn).as_posix() for p in drawn.rglob("*") if p.is_file())
        assert drawings == [DRAWINGS_MARKER, *expected, other.name]
        # The images' subfolder goes with them.
        assert (drawn / "frames").is_dir() == (expected == images)
    assert "(1 earlier drawing removed)" in capsys.readouterr().out


def test_a_frame_folder_none_of_whose_frames_reads_is_left_out_as_an_image_is(
    model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Such a folder (truncated frames, or empty ones whose headers do not read) stopped the
    whole run, writing nothing of the other inputs; now it is named, listed with every frame
    kept skipped, its earlier annotated video removed, and the run exits 2. A run that reads
    nothing else is an error that writes nothing."""
    good, bad, empty = (tmp_path / name for name in ("good", "bad", "empty"))
    write_frames(good, 2)
    for path in write_frames(empty, 2):
        path.write_bytes(b"")
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = ["--fps", "4", "--output", output, "--save-images", drawn]
    frames = write_frames(bad, 3)
    assert run_predict(model_file, good, bad, *args) == 0
    for path in frames:
        truncate(path)
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert run_predict(model_file, good, bad, *args) == 2
    assert f"none of the 3 frames to predict in frame folder {bad} could be read" in caplog.text
    out = capsys.readouterr().out
    assert "on 2 frames of 1 video written to" in out
    assert "; 1 frame folder could not be read (listed in " in out
    listed = json.loads((tmp_path / "preds.frames.json").read_text())["videos"]
    assert listed[1] == {"file_name": str(bad), "frames": [], "skipped_frames": [0, 1, 2]}
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "good.mp4"]
    # With no frame predicted, the frame list lists no frame predicted.
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0)).save(image)
    assert run_predict(model_file, image, bad, "--fps", "4", "--output", output) == 2
    out = capsys.readouterr().out
    assert "on 1 image written to" in out and "every frame predicted" not in out
    assert f"1 frame folder could not be read (listed in {tmp_path / 'preds.frames.json'})" in out
    output.unlink()
    assert run_predict(model_file, bad, empty, "--fps", "4", "--output", output) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"sparsercnn predict: error: none of the inputs could be read: frame folder {bad} (no "
        f"frame of it read, as warned), frame folder {empty} (no frame of it read, as warned)"
    )
    assert not output.exists()


def test_a_frame_folder_s_unreadable_frames_are_skipped_keeping_the_later_frames_times(
    unclipped_model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A truncated frame stopped the run, writing nothing. It is skipped as a damaged video's
    frame is, listed and warned about; in the annotated video, at a constant rate, the frame
    drawn before it holds its place (the first frame read holds the first places)."""
    paths = write_frames(tmp_path / "frames", 6)
    for index in (0, 3, 5):
        truncate(paths[index])
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = [tmp_path / "frames", "--fps", "6", "--output", output, "--save-images", drawn]
    with caplog.at_level(logging.WARNING):
        assert run_predict(unclipped_model_file, *args, "--score-threshold", "1") == 0
    assert "on 3 frames of 1 video written to" in capsys.readouterr().out
    (listed,) = json.loads((tmp_path / "preds.frames.json").read_text())["videos"]
    assert [frame["frame_index"] for frame in listed["frames"]] == [1, 2, 4]
    assert listed["skipped_frames"] == [0, 3, 5]
    (warning,) = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert warning.startswith(
        f"frame folder {tmp_path / 'frames'}: skipped 3 frames that could not be read, numbered "
        f"0, 3, 5 (the frames after them keep their numbers): {paths[0]} (the file is truncated"
    )
    frames, fps, _ = decode(drawn / "frames.mp4")
    assert len(frames) == 6 and fps == 6
    # Where each frame's red box is: the frame drawn in each place.
    red = [np.flatnonzero((f[RED_BOX_Y[0] + 2, :, 0] > 180) & (f[RED_BOX_Y[0] + 2, :, 1] < 80))
           for f in frames]  # fmt: skip
    assert [int(columns[0]) for columns in red] == [red_box_x(i)[0] for i in (1, 1, 2, 2, 4, 4)]


def test_a_frame_folder_leaves_out_the_drawings_below_it(
    unclipped_model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Drawings of an image given beside a frame folder, drawn into a folder below it, are not
    frames of the next run (they were read as a 4th frame)."""
    write_frames(tmp_path / "frames", 3)
    photo = tmp_path / "photo.png"
    Image.fromarray(clip_frame(0)).save(photo)
    drawn, other = tmp_path / "frames" / "drawn", tmp_path / "frames" / "other"
    for target in (drawn, other, other):  # the second run into "other" reads "drawn" too
        args = [tmp_path / "frames", photo, "--fps", "5", "--output", tmp_path / "p.json"]
        assert run_predict(unclipped_model_file, *args, "--save-images", target) == 0
        assert "on 1 image and 3 frames of 1 video" in capsys.readouterr().out
        assert len(decode(target / "frames.mp4")[0]) == 3


def test_a_progress_bar_counts_frames_on_a_terminal(
    unclipped_model_file: Path,
    clip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = [clip, "--every", "6", "--output", tmp_path / "p.json"]
    assert run_predict(unclipped_model_file, *args) == 0
    err = capsys.readouterr().err
    assert "predict" in err and "4/4" in err
    one_frame = [clip, "--every", "24", "--output", tmp_path / "one.json"]
    assert run_predict(unclipped_model_file, *one_frame) == 0
    assert "on 1 frame of 1 video written to" in capsys.readouterr().out


def test_a_failure_part_way_writes_nothing(
    unclipped_model_file: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad frame in the second input: no records, and not even the first input's video."""
    write_frames(tmp_path / "frames", 3)
    bad = tmp_path / "frames" / "frame_3.png"
    Image.fromarray(clip_frame(3, (32, 48))).save(bad)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    output.write_text("[]")
    args = [clip, tmp_path / "frames", "--fps", "5", "--output", output, "--save-images", drawn]
    assert run_predict(unclipped_model_file, *args) == 2
    assert str(bad) in error_line(capsys)
    assert output.read_text() == "[]"
    assert [p for p in drawn.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("source", ["video", "frames"])
def test_a_non_finite_detection_is_refused_naming_its_frame(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Was refused as "draw_detections: ...", naming neither the video nor the frame."""
    sequence: video.FrameSequence
    if source == "video":
        sequence, name = video.VideoFile(clip), f"video {clip} frame 0"
    else:
        first = write_frames(tmp_path / "frames", 3)[0]
        sequence, name = video.FrameFolder(tmp_path / "frames", fps=4), str(first)

    def diverged(
        predictor: object, frames: video.FrameSequence, every: int
    ) -> Iterator[tuple[video.Frame, Prediction]]:
        for frame in frames.frames(every):
            yield (
                frame,
                Prediction(
                    boxes=torch.tensor([[1.0, 1.0, float("inf"), 5.0]]),
                    scores=torch.tensor([0.9]),
                    labels=torch.tensor([0]),
                    class_names=["cat"],
                    category_ids=[3],
                    image_size=(64, 96),
                    source=str(frames.path),
                ),
            )

    predictor: Any = SimpleNamespace(categories=CategoryMap([3], ["cat"]))  # what it reads
    monkeypatch.setattr(video, "predict_video", diverged)
    args = argparse.Namespace(every=2, score_threshold=0.3)
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: its only detection has"):
        writer = video.VideoWriter(tmp_path / "out.mp4", 2)
        predict_sequences.predict_sequence(
            predictor, sequence, args, writer, [], PredictionProgress([], 1)
        )


def test_bad_videos_are_named(
    model_file: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 50)
    assert run_predict(model_file, clip, garbage) == 2
    assert f"video {garbage} could not be read" in error_line(capsys)
    audio = write_audio_only(tmp_path / "audio.m4v")
    assert run_predict(model_file, audio) == 2
    assert f"video {audio} has no video stream" in error_line(capsys)
    assert not (tmp_path / "predictions.json").exists()


@pytest.mark.parametrize(
    ("too_high", "every", "frame_folder", "advice"),
    [
        (True, 1, True, "raise --every or lower --fps"),
        (True, 1, False, "raise --every"),
        (False, 10, True, "lower --every or raise --fps"),
        (False, 10, False, "lower --every"),
        (False, 1, True, "raise --fps"),
    ],
)
def test_rate_advice_points_the_right_way(
    too_high: bool, every: int, frame_folder: bool, advice: str
) -> None:
    """Only a frame folder's rate is --fps; a video's rate divided by --every."""
    assert predict_sequences._rate_advice(too_high, every, frame_folder) == advice


def test_bad_flags_are_named(
    model_file: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag, value in [("--every", "0"), ("--fps", "0"), ("--fps", "nan")]:
        with pytest.raises(SystemExit) as exit_info:
            run_predict(model_file, clip, flag, value)
        assert exit_info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
    assert run_predict(model_file, clip, "--fps", "25") == 2
    assert "--fps reads folders as frame sequences" in error_line(capsys)
    write_frames(tmp_path / "frames", 2)
    args = [tmp_path / "frames", "--fps", "1e-3", "--every", "1000", "--save-images", tmp_path]
    assert run_predict(model_file, *args) == 2
    line = error_line(capsys)
    assert "--save-images: the annotated video of" in line
    assert line.endswith("; lower --every or raise --fps")
    # Too fast for a video file: the advice goes the other way.
    args = [tmp_path / "frames", "--fps", "70000", "--save-images", tmp_path / "drawn"]
    assert run_predict(model_file, *args) == 2
    line = error_line(capsys)
    assert "70000 frames per second is above 65535" in line
    assert line.endswith("; raise --every or lower --fps")
    assert run_predict(model_file, args[0], "--fps", "1e-5", *args[3:]) == 2
    assert error_line(capsys).endswith("a video file holds; raise --fps")
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    assert run_predict(model_file, clip, "--save-images", a_file) == 2
    assert f"--save-images {a_file} is a file" in error_line(capsys)
    assert run_predict(model_file, clip, "--output", a_file / "p.json") == 2
    assert str(a_file) in error_line(capsys)
    # The results JSON was written as drawn.mp4, replacing a video there with a warning.
    drawn = write_clip(tmp_path / "drawn.mp4", 2)
    assert run_predict(model_file, clip, "--output", drawn) == 2
    assert f"--output {drawn} names an image or video file, but --output is the results JSON" in (
        error_line(capsys)
    )
    assert decode(drawn)[0]


def test_drawings_that_would_collide_or_replace_an_input_are_refused(
    model_file: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_clip(tmp_path / "clip.mov", 2)
    assert run_predict(model_file, clip, other, "--save-images", tmp_path / "drawn") == 2
    line = error_line(capsys)
    assert "would both be drawn to" in line and "into separate --save-images folders" in line
    assert run_predict(model_file, clip, "--save-images", tmp_path) == 2
    assert f"would replace the input {clip} with its annotated video" in error_line(capsys)
    assert not (tmp_path / "drawn").exists()


def test_an_annotated_video_never_replaces_a_file_no_run_drew(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The video the frames came from sits beside their folder, or an .mp4 beside a .mov.
    frames = tmp_path / "frames"
    write_frames(frames, 2)
    source = write_clip(tmp_path / "frames.mp4", 2)
    mov = write_clip(frames / "clip.mov", 2)
    original = source.read_bytes()
    users = frames / "clip.mp4"
    users.write_bytes(b"the user's video")
    assert run_predict(model_file, frames, "--fps", "5", "--save-images", tmp_path) == 2
    assert f"would replace {source}, which no earlier run drew" in error_line(capsys)
    assert run_predict(model_file, mov, "--save-images", frames) == 2
    assert f"would replace {users}, which no earlier run drew" in error_line(capsys)
    assert source.read_bytes() == original and users.read_bytes() == b"the user's video"
    # A drawings folder's earlier annotated video is replaced, with a note.
    drawn = tmp_path / "drawn"
    output = tmp_path / "p.json"  # not predictions.json in the working folder
    for _ in range(2):
        assert run_predict(model_file, mov, "--save-images", drawn, "--output", output) == 0
    assert "(1 earlier drawing replaced)" in capsys.readouterr().out


def test_without_pyav_a_video_says_how_to_install_it(
    model_file: Path,
    clip: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    assert run_predict(model_file, clip) == 2
    assert "pip install 'sparsercnn[video]'" in error_line(capsys)


def test_help_lists_the_video_suffixes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(VIDEO_SUFFIXES) in text


@pytest.mark.parametrize(
    ("name", "start_ms"), [("vfr.mp4", 0), ("late.mp4", 2500), ("late.mkv", 2500)]
)
def test_a_variable_frame_rate_video_keeps_its_frame_times(
    unclipped_model_file: Path, tmp_path: Path, name: str, start_ms: int
) -> None:
    """Records and the annotated video give each frame its own presentation time, not
    ``index / average rate``, counted from the first frame: a clip cut from a longer recording
    (its first frame at 2.5 s) has the same times in both, from 0."""
    import av

    times_ms = [start_ms + t for t in (0, 100, 250, 300, 700, 1500, 1540)]
    clip = write_clip(tmp_path / name, times_ms=times_ms)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = [clip, "--every", "2", "--output", output, "--save-images", drawn]
    assert run_predict(unclipped_model_file, *args) == 0
    kept = {index: (times_ms[index] - start_ms) / 1000 for index in range(0, 7, 2)}
    records = json.loads(output.read_text())
    assert {(r["frame_index"], r["timestamp"]) for r in records} == set(kept.items())
    with av.open(str(drawn / clip.with_suffix(".mp4").name)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    assert times == pytest.approx(list(kept.values()), abs=1e-4)


@pytest.mark.parametrize("suffix", [".ts", ".mts", ".mpg", ".3gp"])
def test_camcorder_and_broadcast_recordings_are_videos(tmp_path: Path, suffix: str) -> None:
    """Were taken as images: "cannot read image 'clip.ts': not an image, or a damaged one"."""
    clip = write_clip(tmp_path / f"clip{suffix}", 4)
    (group,) = predict_inputs.input_groups([clip], None)
    assert isinstance(group, video.VideoFile) and group.size == (64, 96)
    (found,) = predict_inputs.input_groups([tmp_path], None)
    assert isinstance(found, video.VideoFile) and found.path == clip


def test_a_video_changing_size_part_way_is_drawn_at_its_first_size(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream that lowers its resolution after frame 1: its drawings are scaled into the
    annotated video with a warning. Was refused after the whole run, naming the hidden staged
    file ("video drawn/.clip.partial.mp4: frame 2 is 48x32, the video is 96x64")."""
    sizes = [(64, 96), (64, 96), (32, 48), (32, 48)]

    def shrinking(
        predictor: object, frames: video.FrameSequence, every: int
    ) -> Iterator[tuple[video.Frame, Prediction]]:
        for index, size in enumerate(sizes):
            frame = video.Frame(clip_frame(index, size), index, index / 12)
            prediction = Prediction(
                boxes=torch.tensor([[4.0, 4.0, 20.0, 20.0]]),
                scores=torch.tensor([0.9]),
                labels=torch.tensor([0]),
                class_names=["cat"],
                category_ids=[3],
                image_size=size,
                source=str(frames.path),
            )
            yield frame, prediction

    predictor: Any = SimpleNamespace(categories=CategoryMap([3], ["cat"]))  # what it reads
    monkeypatch.setattr(video, "predict_video", shrinking)
    args = argparse.Namespace(every=1, score_threshold=0.3)
    target = tmp_path / "out.mp4"
    listed = predict_sequences.predict_sequence(
        predictor,
        video.VideoFile(clip),
        args,
        video.VideoWriter(target, 12),
        [],
        PredictionProgress([], 1),
    )
    frames, _, _ = decode(target)
    assert len(listed["frames"]) == 4 and [frame.shape for frame in frames] == [(64, 96, 3)] * 4
    assert f"video {clip}: frame 2 is 48x32 where its first frame is 96x64" in caplog.text
    assert caplog.text.count("where its first frame is") == 1


def test_frames_without_detections_are_listed_beside_the_results(
    unclipped_model_file: Path,
    clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Frame 8 has no detections, so no records: the frame list tells it was predicted. Was
    indistinguishable from a frame never predicted."""
    real = video.predict_video

    def nothing_on_frame_8(
        predictor: Any, frames: video.FrameSequence, every: int
    ) -> Iterator[tuple[video.Frame, Prediction]]:
        for frame, prediction in real(predictor, frames, every=every):
            yield frame, prediction.top(0) if frame.index == 8 else prediction

    monkeypatch.setattr(video, "predict_video", nothing_on_frame_8)
    output = tmp_path / "preds.json"
    assert run_predict(unclipped_model_file, clip, "--every", "8", "--output", output) == 0
    frame_list = tmp_path / "preds.frames.json"
    assert f"(every frame predicted listed in {frame_list})" in capsys.readouterr().out
    records = json.loads(output.read_text())
    assert sorted({r["frame_index"] for r in records}) == [0, 16]
    listed = json.loads(frame_list.read_text())
    assert listed["results"] == "preds.json"
    (sequence,) = listed["videos"]
    assert sequence["file_name"] == str(clip)
    counts = [sum(r["frame_index"] == i for r in records) for i in (0, 8, 16)]
    assert counts[1] == 0
    assert sequence["frames"] == [
        {"frame_index": i, "timestamp": round(i / 12, 6), "num_detections": n}
        for i, n in zip((0, 8, 16), counts, strict=True)
    ]
    # A run on images only replaces the results: the frame list of the earlier ones goes.
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0)).save(image)
    assert run_predict(unclipped_model_file, image, "--output", output) == 0
    assert not frame_list.exists()


def test_a_failed_results_write_keeps_the_earlier_frame_list(
    model_file: Path,
    clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output, frame_list = tmp_path / "preds.json", tmp_path / "preds.frames.json"
    output.write_text("[]")
    frame_list.write_text("{}")

    def full_disk(records: object, path: Path) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("sparsercnn.evaluation.results.write_results_json", full_disk)
    assert run_predict(model_file, clip, "--every", "12", "--output", output) == 1
    assert f"{output}: No space left on device" in capsys.readouterr().err
    assert output.read_text() == "[]" and frame_list.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_input_given_twice_is_refused_saying_to_give_it_once(
    model_file: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was "a.mp4 and a.mp4 would both be drawn to ...; give them separately or rename one"
    with --save-images, and every record written twice without."""
    drawn = tmp_path / "drawn"
    assert run_predict(model_file, clip, clip, "--save-images", drawn) == 2
    assert error_line(capsys).endswith(f"input {clip} is given twice; give it once")
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    assert run_predict(model_file, clip, link) == 2
    assert f"inputs {clip} and {link} are the same file, given twice" in error_line(capsys)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(clip_frame(0)).save(photos / "a.png")
    assert run_predict(model_file, photos, photos / "a.png") == 2
    line = error_line(capsys)
    assert f"{photos / 'a.png'} (in folder {photos}) and {photos / 'a.png'} are the same" in line
    assert not drawn.exists() and not (tmp_path / "predictions.json").exists()


def test_files_are_told_apart_where_the_file_system_numbers_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some Windows file systems give every file the number 0: identity alone would call any
    two inputs the same file."""
    import os

    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(b"a")
    second.write_bytes(b"b")
    stat = os.stat

    def unnumbered(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = list(stat(path, *args, **kwargs))
        result[1] = 0  # st_ino
        return os.stat_result(result)

    monkeypatch.setattr(os, "stat", unnumbered)
    predict_inputs.refuse_repeated_inputs([(first, first), (second, second)])
    with pytest.raises(ValueError, match=r"a\.png is given twice; give it once"):
        predict_inputs.refuse_repeated_inputs([(first, first), (first, first)])


def test_the_annotated_videos_warnings_name_it_and_its_video(
    unclipped_model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame whose time goes back (a damaged source): the warning named the hidden staged
    file (drawn/.vfr.partial.mp4), neither the video drawn nor the annotated video."""
    clip = write_clip(tmp_path / "vfr.mkv", times_ms=[0, 100, 100, 250])
    drawn = tmp_path / "drawn"
    args = [clip, "--output", tmp_path / "p.json", "--save-images", drawn]
    assert run_predict(unclipped_model_file, *args) == 0
    (warning,) = [r.getMessage() for r in caplog.records if "does not come after" in r.getMessage()]
    assert warning.startswith(f"video {drawn / 'vfr.mp4'} (drawn from {clip}): frame 2 at 0.1")
    assert ".partial" not in warning


def test_a_damaged_videos_frames_keep_their_numbers_and_the_skipped_are_listed(
    unclipped_model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Frames 11 and 12 do not decode. frame_index counted decoded frames (frame 14 was 12,
    at 14/12 s) and the frame list did not say which were missing."""
    clip = write_clip(tmp_path / "clip.mp4", 30, size=(48, 64), faststart=True)
    damaged = damage_packets(clip, tmp_path / "damaged.mp4", [11, 12])
    output = tmp_path / "preds.json"
    assert run_predict(unclipped_model_file, damaged, "--every", "4", "--output", output) == 0
    assert "on 7 frames of 1 video" in capsys.readouterr().out
    kept = [0, 4, 8, 16, 20, 24, 28]
    records = json.loads(output.read_text())
    assert sorted({r["frame_index"] for r in records}) == kept
    assert all(r["timestamp"] == round(r["frame_index"] / 12, 6) for r in records)
    (listed,) = json.loads((tmp_path / "preds.frames.json").read_text())["videos"]
    assert [frame["frame_index"] for frame in listed["frames"]] == kept
    assert listed["skipped_frames"] == [11, 12]


def test_a_video_whose_first_frame_does_not_decode_is_drawn_at_its_records_times(
    unclipped_model_file: Path, tmp_path: Path
) -> None:
    """Frame 0 does not decode: the annotated video started at the first frame drawn, so each
    drawing was shown one kept frame earlier than its records' timestamp (frame 2, at 1/6 s in
    its records, at 0 s)."""
    import av

    clip = write_clip(
        tmp_path / "clip.mp4", 8, size=(48, 64), faststart=True, x264_params="keyint=1"
    )
    damaged = damage_packets(clip, tmp_path / "damaged.mp4", [0])
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = [damaged, "--every", "2", "--output", output, "--save-images", drawn]
    assert run_predict(unclipped_model_file, *args) == 0
    listed = json.loads((tmp_path / "preds.frames.json").read_text())["videos"][0]
    assert [frame["frame_index"] for frame in listed["frames"]] == [2, 4, 6]
    with av.open(str(drawn / "damaged.mp4")) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    # The first drawing is shown from 0 s, in the place of frame 0, then every one at its time.
    timestamps = [frame["timestamp"] for frame in listed["frames"]]
    assert times == pytest.approx([0.0, *timestamps], abs=1e-4)


def bar_states(err: str) -> list[tuple[int, int | None]]:
    """Each ``n/total`` (or ``n`` without a total) a progress bar showed."""
    states = []
    for line in err.replace("\r", "\n").splitlines():
        shown = re.search(r"\| (\d+)/(\d+) \[|: (\d+)image \[", line)
        if shown:
            n, total, alone = shown.groups()
            states.append((int(n), int(total)) if alone is None else (int(alone), None))
    return states


@pytest.mark.parametrize("announced", [14, 6, None])
def test_a_progress_bar_ends_at_its_total_whatever_the_video_announces(
    unclipped_model_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    announced: int | None,
) -> None:
    """A header announcing 14 frames of 10 left the bar at 73% (a damaged or cut video); one
    announcing 6 showed 100% with frames still to come; without a frame count there was no
    total, for the image either."""
    clip = write_clip(tmp_path / "clip.mkv", 10, size=(48, 64))
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0, (48, 64))).save(image)
    opened = video.VideoFile(clip)
    opened.num_frames = announced  # Matroska gives no count: its duration tells 10
    monkeypatch.setattr(predict, "input_groups", lambda *args, **kwargs: [opened, [image]])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert run_predict(unclipped_model_file, clip, image, "--output", tmp_path / "p.json") == 0
    states = bar_states(capsys.readouterr().err)
    assert states[-1] == (11, 11)
    assert all(total is not None and n < total for n, total in states if n < 11)


def test_a_video_whose_reading_fails_part_way_keeps_its_frames_and_the_other_inputs(
    unclipped_model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reading the first video fails at a frame part-way: the run stopped there ("reading failed
    after N frames"), writing no records, frame list or drawing of any input. Now the frames
    before it keep their records and drawings, the other inputs are predicted, the frame list
    says where it failed, and the run exits 2, as for an image that cannot be read."""
    good = write_clip(tmp_path / "good.mp4", 6)
    failing = fail_reading_at(write_clip(tmp_path / "clip.mp4"), tmp_path / "failing.mp4", 12)
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0)).save(image)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = [failing, good, image, "--every", "2", "--output", output, "--save-images", drawn]
    with caplog.at_level(logging.WARNING):
        assert run_predict(unclipped_model_file, *args, "--score-threshold", "0") == 2
    frame_list = tmp_path / "preds.frames.json"
    listed_failing, listed_good = json.loads(frame_list.read_text())["videos"]
    failure = listed_failing["read_failure"]
    failed_at = failure["frame_index"]
    assert failure["reason"] == "Cannot allocate memory" and 4 <= failed_at <= 12
    kept = list(range(0, failed_at, 2))
    assert [frame["frame_index"] for frame in listed_failing["frames"]] == kept
    assert [frame["frame_index"] for frame in listed_good["frames"]] == [0, 2, 4]
    assert "read_failure" not in listed_good
    records = frames_of(json.loads(output.read_text()))
    expected = [(str(failing), i) for i in kept] + [(str(good), i) for i in (0, 2, 4)]
    assert set(records) == {*expected, (str(image), None)}
    assert len(decode(drawn / "failing.mp4")[0]) == len(kept)
    assert len(decode(drawn / "good.mp4")[0]) == 3 and (drawn / "a.png").is_file()
    (warning,) = [r.getMessage() for r in caplog.records if "reading failed" in r.getMessage()]
    assert warning == (
        f"video {failing}: reading failed at frame {failed_at} (Cannot allocate memory); the "
        f"file is damaged, and no frame from {failed_at} on could be read; the "
        f"{len(kept)} frames predicted before it are kept and drawn, the rest of the video left "
        "out"
    )
    out = capsys.readouterr().out
    assert f"on 1 image and {len(kept) + 3} frames of 2 videos written to {output}" in out
    assert f"; 1 video could be read only up to a damaged frame (named in {frame_list})" in out


def test_a_video_whose_reading_fails_before_a_frame_kept_is_left_out_as_an_image_is(
    unclipped_model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Frame 0 does not decode and reading fails at frame 4, before frame 8 that --every keeps:
    the video was told "could be read only up to a damaged frame", its "0 frames predicted
    before it ... kept and drawn", and the run failed with "no frames to write" (its annotated
    video); alone, it wrote an empty --output. Now it is an input lost, as a frame folder none
    of whose frames reads: named, its earlier drawing removed, and alone an error."""
    clip = write_clip(tmp_path / "clip.mp4", 12, x264_params="keyint=1")
    failing = tmp_path / "failing.mp4"
    failing.write_bytes(clip.read_bytes())
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0)).save(image)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = ["--every", "8", "--output", output, "--save-images", drawn]
    assert run_predict(unclipped_model_file, failing, image, *args) == 0
    damaged = damage_packets(clip, tmp_path / "damaged.mp4", [0])
    fail_reading_at(damaged, failing, 4)
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert run_predict(unclipped_model_file, failing, image, *args) == 2
    assert (
        f"video {failing}: reading failed at frame 4 (Cannot allocate memory); the file is "
        "damaged, and no frame from 4 on could be read; no frame to predict came before it: "
        "the video is left out"
    ) in caplog.text
    assert "predicted before it" not in caplog.text
    frame_list = tmp_path / "preds.frames.json"
    (listed,) = json.loads(frame_list.read_text())["videos"]
    assert listed["frames"] == [] and listed["read_failure"]["frame_index"] == 4
    out = capsys.readouterr().out
    assert f"on 1 image written to {output}; run on " in out
    assert f"; 1 video could not be read (listed in {frame_list})" in out
    assert "only up to a damaged frame" not in out
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "a.png"]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    output.unlink()
    for inputs in ([failing], [failing, bad]):
        assert run_predict(unclipped_model_file, *inputs, *args) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"sparsercnn predict: error: none of the inputs could be read: video {failing} (no "
            "frame of it read, as warned)"
            + (
                f", {bad} (the file is empty (0 bytes): copy or export it again)"
                if bad in inputs
                else ""
            )
        )
        assert not output.exists()


def test_a_damaged_video_none_of_whose_frames_kept_decodes_is_left_out_as_an_image_is(
    unclipped_model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Frames 0 and 8, those --every 8 keeps, do not decode, and reading does not fail: the
    video was told "1 frame folder could not be read", and with --save-images the run failed
    with "no frames to write" (its annotated video), writing nothing of the image. The error
    is predict_video's (ImageReadError), as for a frame folder none of whose frames reads."""
    clip = write_clip(tmp_path / "clip.mp4", 12, x264_params="keyint=1")
    damaged = damage_packets(clip, tmp_path / "damaged.mp4", [0, 8])
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0)).save(image)
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    args = ["--every", "8", "--output", output, "--save-images", drawn]
    with caplog.at_level(logging.WARNING):
        assert run_predict(unclipped_model_file, damaged, image, *args) == 2
    assert (
        f"video {damaged}: none of the frames to predict decoded (the file is damaged); it is "
        "left out"
    ) in caplog.text
    frame_list = tmp_path / "preds.frames.json"
    (listed,) = json.loads(frame_list.read_text())["videos"]
    assert listed == {"file_name": str(damaged), "frames": [], "skipped_frames": [0, 8]}
    out = capsys.readouterr().out
    assert f"on 1 image written to {output}; run on " in out
    assert f"; 1 video could not be read (listed in {frame_list})" in out
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "a.png"]


def test_a_video_none_of_whose_frames_decodes_or_reads_is_left_out_as_an_image_is(
    unclipped_model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --every 1, a video none of whose frames decodes, or whose reading fails at its first
    frame, was refused when opened ("holds no frame that can be decoded", "reading failed at
    frame 0"): the run exited 2 and wrote nothing of the other inputs. Now each is an input
    lost, as when none of the frames --every keeps decodes: named, listed, alone an error."""
    clip = write_clip(tmp_path / "clip.mp4", 6, x264_params="keyint=1")
    undecodable = damage_packets(clip, tmp_path / "undecodable.mp4", list(range(6)))
    failing = fail_reading_at(clip, tmp_path / "failing.mp4", 0)
    image = tmp_path / "a.png"
    Image.fromarray(clip_frame(0)).save(image)
    output = tmp_path / "preds.json"
    with caplog.at_level(logging.WARNING):
        assert (
            run_predict(unclipped_model_file, undecodable, failing, image, "--output", output) == 2
        )
    assert (
        f"video {undecodable}: none of the frames to predict decoded (the file is damaged); it "
        "is left out"
    ) in caplog.text
    assert (
        f"video {failing}: reading failed at frame 0 (Cannot allocate memory); the file is "
        "damaged, and no frame from 0 on could be read; no frame to predict came before it: "
        "the video is left out"
    ) in caplog.text
    assert caplog.text.count(f"video {undecodable}: skipped 6 frames that did not decode") == 1
    frame_list = tmp_path / "preds.frames.json"
    listed_undecodable, listed_failing = json.loads(frame_list.read_text())["videos"]
    assert listed_undecodable == {
        "file_name": str(undecodable),
        "frames": [],
        "skipped_frames": list(range(6)),
    }
    assert listed_failing["frames"] == [] and listed_failing["read_failure"]["frame_index"] == 0
    assert set(frames_of(json.loads(output.read_text()))) == {(str(image), None)}
    out = capsys.readouterr().out
    assert f"on 1 image written to {output}; run on " in out
    assert f"; 2 videos could not be read (listed in {frame_list})" in out
    output.unlink()
    assert run_predict(unclipped_model_file, undecodable, failing, "--output", output) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"sparsercnn predict: error: none of the inputs could be read: video {undecodable} (no "
        f"frame of it read, as warned), video {failing} (no frame of it read, as warned)"
    )
    assert not output.exists()

"""predict_video: one prediction per kept frame, through the predictor's own batching."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import ImageReadError
from sparsercnn.predictor import BatchPredictor, Predictor
from sparsercnn.structures import Detections
from sparsercnn.video import (
    Frame,
    FrameFolder,
    VideoFile,
    VideoReadError,
    frame_records,
    predict_video,
)
from tests.synthetic_coco import truncate
from tests.video.clips import write_clip
from tests.video.test_reader import damage_packets, fail_reading_at, write_frames


@pytest.fixture
def predictor(model_file: Path) -> Predictor:
    return Predictor.from_file(model_file, batch_size=4)


@pytest.mark.parametrize("every", [1, 4])
def test_every_kept_frame_gets_a_prediction_in_frame_order(
    unclipped_model_file: Path, tmp_path: Path, every: int
) -> None:
    predictor = Predictor.from_file(unclipped_model_file, batch_size=4)
    clip = write_clip(tmp_path / "short.mp4", 10)
    results = list(predict_video(predictor, clip, every=every))
    assert [frame.index for frame, _ in results] == list(range(0, 10, every))
    for _, prediction in results:
        assert prediction.source == str(clip) and prediction.image_size == (64, 96)
        assert len(prediction.scores) > 0
        assert torch.isfinite(prediction.boxes).all()


def test_frames_get_the_detections_of_the_same_images(predictor: Predictor, clip: Path) -> None:
    results = list(predict_video(predictor, clip, every=5))
    as_images = predictor([frame.image for frame, _ in results])
    for (_, prediction), expected in zip(results, as_images, strict=True):
        torch.testing.assert_close(prediction.boxes, expected.boxes)
        torch.testing.assert_close(prediction.scores, expected.scores)
        assert prediction.class_names == expected.class_names


def test_a_frame_folder_gets_the_detections_of_its_files_as_images(
    predictor: Predictor, tmp_path: Path
) -> None:
    """Large JPEG frames are read as image files are (decoded at a reduced scale), so a frame
    gets the detections its file gets as an image, and is decoded in full only when drawn."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)
    results = list(predict_video(predictor, folder, fps=5))
    as_images = predictor(sorted(folder.glob("*.jpg")))
    for (frame, prediction), expected in zip(results, as_images, strict=True):
        assert frame._image is None  # not decoded in full for the model
        assert prediction.image_size == expected.image_size == (1200, 1600)
        torch.testing.assert_close(prediction.boxes, expected.boxes, rtol=0, atol=0)
        torch.testing.assert_close(prediction.scores, expected.scores, rtol=0, atol=0)
        assert frame.image.shape == (1200, 1600, 3)


class RecordingPredictor(BatchPredictor):
    """Any BatchPredictor (the ONNX one included) works: this one records its batches and
    "detects" one box whose score encodes the frame's mean brightness."""

    def __init__(self, transform: object, batch_size: int) -> None:
        self.transform = transform  # type: ignore[assignment]
        self.batch_size = batch_size
        self.size_divisibility = 32
        self.categories = CategoryMap([3, 7], ["cat", "dog"])
        self.batches: list[int] = []

    def detect(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        self.batches.append(len(images))
        return [
            Detections(
                boxes=torch.tensor([[0.0, 0.0, w / 2, h / 2]]),
                scores=torch.tensor([image.float().mean().item() / 255]),
                labels=torch.tensor([1]),
            )
            for image, (h, w) in zip(images, original_sizes, strict=True)
        ]


def test_frames_are_batched_batch_size_at_a_time(predictor: Predictor, clip: Path) -> None:
    recording = RecordingPredictor(predictor.transform, batch_size=3)
    results = list(predict_video(recording, VideoFile(clip), every=2))
    assert recording.batches == [3, 3, 3, 3]  # 12 kept frames
    assert [frame.index for frame, _ in results] == list(range(0, 24, 2))


def test_a_video_whose_reading_fails_part_way_keeps_every_frame_read_before_it(
    predictor: Predictor, tmp_path: Path
) -> None:
    """The frames read but not yet batched (up to ``batch_size - 1``) were lost with the
    error."""
    failing = fail_reading_at(write_clip(tmp_path / "clip.mp4"), tmp_path / "failing.mp4", 12)
    results: list[int] = []
    with pytest.raises(VideoReadError) as raised:
        results.extend(frame.index for frame, _ in predict_video(predictor, failing))
    assert raised.value.frame_index % predictor.batch_size  # a batch was pending
    assert results == list(range(raised.value.frame_index))


def test_a_damaged_video_none_of_whose_frames_kept_decodes_is_an_error_naming_it(
    predictor: Predictor, tmp_path: Path
) -> None:
    """Frames 0 and 8, those ``every=8`` keeps, do not decode: nothing was yielded, without an
    error, where a frame folder none of whose frames kept reads raises ImageReadError."""
    clip = write_clip(tmp_path / "clip.mp4", 12, x264_params="keyint=1")
    damaged = damage_packets(clip, tmp_path / "damaged.mp4", [0, 8])
    with pytest.raises(ImageReadError) as raised:
        list(predict_video(predictor, damaged, every=8))
    assert str(raised.value) == (
        f"video {damaged}: none of the frames to predict decoded (the file is damaged)"
    )
    assert raised.value.path == str(damaged)
    assert [frame.index for frame, _ in predict_video(predictor, damaged, every=3)] == [3, 6, 9]


class _EmptySequence:
    """A caller's frame sequence (the Python API) that yields no frame, and says it skipped
    two."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fps = Fraction(10)
        self.num_frames: int | None = None
        self.skipped_frames = [0, 1]

    def frames(self, every: int = 1) -> Iterator[Frame]:
        return iter([])


def test_a_callers_sequence_that_yields_no_frame_is_not_called_a_damaged_video_file(
    predictor: Predictor, tmp_path: Path
) -> None:
    """Any sequence that had skipped frames and yielded none was "video X: none of the frames
    to predict decoded (the file is damaged)": there may be no file, and nothing is known of
    damage. It says what is known; a video file keeps its wording (above)."""
    sequence = _EmptySequence(tmp_path / "camera-0")
    with pytest.raises(ImageReadError) as raised:
        list(predict_video(predictor, sequence, every=2))
    assert str(raised.value) == (
        f"frame sequence {sequence.path} (_EmptySequence): it yielded no frame of those every=2 "
        "keeps, and lists 2 frames as skipped"
    )
    assert raised.value.path == str(sequence.path)
    assert "damaged" not in raised.value.reason


def test_frame_records_carry_the_frame_position(predictor: Predictor, tmp_path: Path) -> None:
    write_frames(tmp_path / "frames", 5)
    results = list(predict_video(predictor, tmp_path / "frames", fps=2, every=2))
    assert [(frame.index, frame.timestamp) for frame, _ in results] == [(0, 0), (2, 1), (4, 2)]
    frame, prediction = results[1]
    records = frame_records(frame, prediction)
    assert len(records) == len(prediction.scores) > 0
    for record, box in zip(records, prediction.boxes.tolist(), strict=True):
        assert list(record)[:4] == ["file_name", "frame_index", "timestamp", "frame_file"]
        assert record["file_name"] == str(tmp_path / "frames")
        assert (record["frame_index"], record["timestamp"]) == (2, 1.0)
        assert record["frame_file"] == str(tmp_path / "frames" / "frame_2.png")
        assert record["category_id"] in (3, 7) and record["category_name"] in ("cat", "dog")
        x, y, w, h = record["bbox"]
        assert [x, y, x + w, y + h] == pytest.approx(box, abs=0.01)


def test_video_records_have_no_frame_file(predictor: Predictor, clip: Path) -> None:
    frame, prediction = next(predict_video(predictor, clip, every=12))
    (record, *_) = frame_records(frame, prediction)
    assert "frame_file" not in record and record["file_name"] == str(clip)


def test_a_folder_sequence_can_be_given_opened(predictor: Predictor, tmp_path: Path) -> None:
    write_frames(tmp_path / "frames", 3)
    results = list(predict_video(predictor, FrameFolder(tmp_path / "frames", fps=30)))
    assert [frame.index for frame, _ in results] == [0, 1, 2]


def test_a_frame_folder_s_unreadable_frames_are_skipped_and_listed(
    predictor: Predictor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated frame raised, losing every prediction after it; now it is skipped as a
    damaged video's frame is (those ``every`` leaves out are not read, nor listed). A folder of
    which no frame kept can be read is an error naming each."""
    paths = write_frames(tmp_path / "frames", 7)
    for index in (2, 3, 6):
        truncate(paths[index])
    folder = FrameFolder(tmp_path / "frames", fps=5)
    with caplog.at_level(logging.WARNING):
        results = list(predict_video(predictor, folder, every=2))
    assert [frame.index for frame, _ in results] == [0, 4]
    assert [prediction.source for _, prediction in results] == [str(folder.path)] * 2
    assert folder.skipped_frames == [2, 6]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert f"numbered 2, 6 (the frames after them keep their numbers): {paths[2]} (the " in warning
    assert f", {paths[6]} (the file is truncated" in warning
    assert list(predict_video(predictor, folder, every=3))  # 0, 3, 6: 0 is read
    assert folder.skipped_frames == [3, 6]
    truncate(paths[0])
    with pytest.raises(ImageReadError) as info:
        list(predict_video(predictor, folder, every=3))
    assert str(info.value).startswith(
        f"none of the 3 frames to predict in frame folder {folder.path} could be read: "
        f"{paths[0]} (the file is truncated"
    )

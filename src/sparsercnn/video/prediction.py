"""Detections on the frames of a video or frame folder, through a predictor's own batching.

Frames go to :meth:`~sparsercnn.predictor.BatchPredictor.iter_predictions` ``batch_size`` at a
time as arrays, so video inference uses the same resize, batching and post-processing as images,
with :class:`~sparsercnn.predictor.Predictor` and the ONNX predictor alike.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from sparsercnn.data.image_io import ImageReadError, none_read_error, unreadable_listing
from sparsercnn.prediction import Prediction
from sparsercnn.predictor import BatchPredictor
from sparsercnn.text import counted, listing
from sparsercnn.video.reader import (
    Frame,
    FrameFolder,
    FrameSequence,
    VideoFile,
    VideoReadError,
    check_every,
)

logger = logging.getLogger(__name__)


def open_sequence(path: str | Path, fps: float | Fraction | None = None) -> FrameSequence:
    """A video file, or with ``fps`` a folder of frames, as a :class:`FrameSequence`.

    Raises:
        FileNotFoundError, ValueError, ImportError: see :class:`VideoFile` and
            :class:`FrameFolder`; a folder without ``fps`` is a ValueError.
    """
    path = Path(path)
    if path.is_dir():
        if fps is None:
            raise ValueError(f"{path} is a folder: give its frame rate (fps, --fps) to read it")
        return FrameFolder(path, fps)
    return VideoFile(path)


def predict_video(
    predictor: BatchPredictor,
    video: str | Path | FrameSequence,
    *,
    every: int = 1,
    fps: float | Fraction | None = None,
) -> Iterator[tuple[Frame, Prediction]]:
    """Detect objects in every ``every``-th frame of a video, in frame order.

    Args:
        predictor: a :class:`~sparsercnn.predictor.Predictor` or
            :class:`~sparsercnn.export.onnx_runtime.OnnxPredictor`; its ``batch_size`` frames
            share a forward pass.
        video: a video file, a frame folder (with ``fps``) or an opened sequence.
        every: keep frames ``0, every, 2 * every, ...``.
        fps: frame rate of a frame folder.

    Yields:
        ``(frame, prediction)``: the frame (pixels, index, timestamp) and its detections in
        frame pixels, whose ``source`` is the video's path. A frame that does not decode is
        skipped with a warning, as :meth:`VideoFile.frames` skips a damaged video's: a frame
        folder's image that cannot be read (a truncated JPEG) too, listed, once the read is
        complete, in the folder's ``skipped_frames`` (:func:`_skip_unreadable`).

    Raises:
        ImageReadError: no frame kept by ``every`` could be read: a frame folder's files
            (each named), or a damaged video's frames, none of which decoded (a video holding
            none, or a caller's sequence yielding none, is said to be so); nothing is yielded.
        VideoReadError: reading a video file failed part-way, once every frame kept before
            it is yielded.
    """
    check_every(every)
    sequence = video if not isinstance(video, str | Path) else open_sequence(video, fps)
    source = str(sequence.path)
    batch: list[Frame] = []
    unreadable: list[tuple[Frame, ImageReadError]] = []
    num_kept = 0
    try:
        for frame in sequence.frames(every):
            num_kept += 1
            batch.append(frame)
            if len(batch) == predictor.batch_size:
                yield from _predict_batch(predictor, batch, source, unreadable)
                batch = []
    except VideoReadError:
        # The frames read before the failure keep their detections.
        yield from _predict_batch(predictor, batch, source, unreadable)
        raise
    yield from _predict_batch(predictor, batch, source, unreadable)
    if num_kept == 0:
        raise _no_frame_error(sequence, every)
    if isinstance(sequence, FrameFolder):
        _skip_unreadable(sequence, unreadable, num_kept)


def _no_frame_error(sequence: FrameSequence, every: int) -> ImageReadError:
    """The error of ``sequence`` yielding no frame that ``every`` keeps. A frame folder keeps
    frame 0 whatever its files hold; a video file says what is known of it (its frames did not
    decode: it is damaged; or it holds none); any other sequence (a caller's) only that it
    yielded none."""
    source = str(sequence.path)
    if isinstance(sequence, VideoFile):
        reason = (
            "none of the frames to predict decoded (the file is damaged)"
            if sequence.skipped_frames
            else "it holds no frame"
        )
        return ImageReadError(f"video {source}: {reason}", path=source, reason=reason)
    kept = "" if every == 1 else f" of those every={every} keeps"
    skipped = sequence.skipped_frames
    said = f", and lists {counted(len(skipped), 'frame')} as skipped" if skipped else ""
    reason = f"it yielded no frame{kept}{said}"
    return ImageReadError(
        f"frame sequence {source} ({type(sequence).__name__}): {reason}", path=source, reason=reason
    )


def _predict_batch(
    predictor: BatchPredictor,
    frames: list[Frame],
    source: str,
    unreadable: list[tuple[Frame, ImageReadError]],
) -> Iterator[tuple[Frame, Prediction]]:
    """The predictions of ``frames``; those whose image file cannot be read are added to
    ``unreadable`` instead."""
    if not frames:
        return
    errors: list[ImageReadError] = []
    inputs = [frame.model_input for frame in frames]
    predictions = iter(list(predictor.iter_predictions(inputs, on_unreadable=errors.append)))
    # An error names the file it could not read; a video frame's pixels always read.
    unread = {error.path: error for error in errors}
    for frame in frames:
        if frame.file is not None and str(frame.file) in unread:
            unreadable.append((frame, unread[str(frame.file)]))
        else:
            yield frame, dataclasses.replace(next(predictions), source=source)


def _skip_unreadable(
    folder: FrameFolder, unreadable: list[tuple[Frame, ImageReadError]], num_kept: int
) -> None:
    """Set the ``skipped_frames`` of ``folder``'s complete read to the frames that could not be
    read, named in one warning.

    Raises:
        ImageReadError: none of the ``num_kept`` frames that ``every`` keeps could be read.
    """
    folder.skipped_frames = [frame.index for frame, _ in unreadable]
    if not unreadable:
        return
    errors = [error for _, error in unreadable]
    if len(unreadable) == num_kept:
        raise none_read_error(
            f"{counted(num_kept, 'frame')} to predict in frame folder {folder.path}", errors
        )
    logger.warning(
        "frame folder %s: skipped %s that could not be read, numbered %s (the frames after "
        "them keep their numbers): %s",
        folder.path,
        counted(len(unreadable), "frame"),
        listing([str(index) for index in folder.skipped_frames]),
        unreadable_listing(errors),
    )


def frame_position(frame: Frame) -> dict[str, Any]:
    """Where a frame's records place it: ``frame_index``, ``timestamp`` (seconds after the
    first frame, to the microsecond: the frame's time in its annotated video;
    :attr:`Frame.timestamp`) and ``frame_file`` (frame folders only)."""
    position: dict[str, Any] = {"frame_index": frame.index, "timestamp": round(frame.timestamp, 6)}
    if frame.file is not None:
        position["frame_file"] = str(frame.file)
    return position


def frame_records(frame: Frame, prediction: Prediction) -> list[dict[str, Any]]:
    """COCO result records of one frame: ``file_name`` (the video), its
    :func:`frame_position`, then ``category_id``, ``category_name``, ``bbox`` ``[x, y, w, h]``
    in frame pixels and ``score``. A frame without detections has none: :func:`frame_summary`
    tells it from a frame not predicted."""
    position = {"file_name": prediction.source, **frame_position(frame)}
    return [{**position, **record} for record in prediction.to_coco_results()]


def frame_summary(frame: Frame, prediction: Prediction) -> dict[str, Any]:
    """A predicted frame, with or without detections: its :func:`frame_position` and
    ``num_detections``, the number of its :func:`frame_records`."""
    return {**frame_position(frame), "num_detections": len(prediction.scores)}

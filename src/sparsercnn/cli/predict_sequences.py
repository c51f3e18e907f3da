"""The videos and frame folders of ``sparsercnn predict``: each sequence's records through
:func:`sparsercnn.video.predict_video` (:func:`predict_sequence`), its annotated video
(:func:`annotated_video_targets`, :func:`video_writer`), and the frame list written beside the
results (:func:`write_outputs`, at
:func:`~sparsercnn.evaluation.results_file.frame_list_path`), which names every frame predicted,
with or without detections, every image that could not be read, and where a video's reading
failed.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsercnn.text import counted, verb

if TYPE_CHECKING:
    from PIL import Image

    from sparsercnn.cli.predict_inputs import InputGroup
    from sparsercnn.cli.predict_progress import PredictionProgress
    from sparsercnn.drawing_writer import DrawingWriter
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.prediction import Prediction
    from sparsercnn.predictor import Predictor
    from sparsercnn.video import Frame, FrameSequence, VideoWriter

logger = logging.getLogger(__name__)


def _rate_advice(too_high: bool, every: int, frame_folder: bool) -> str:
    """How to bring an annotated video's rate (the sequence's / ``--every``) into range: only a
    frame folder's rate is ``--fps``; a video's is its own."""
    if too_high:
        return "raise --every or lower --fps" if frame_folder else "raise --every"
    if every > 1:
        return "lower --every or raise --fps" if frame_folder else "lower --every"
    return "raise --fps" if frame_folder else "leave out --save-images for this video"


def annotated_video_targets(
    drawings: DrawingWriter, groups: list[InputGroup], every: int
) -> dict[Path, Path]:
    """Where each sequence's annotated video goes
    (:meth:`~sparsercnn.drawing_writer.DrawingWriter.video_target`).

    Raises:
        ValueError: two sequences would share a video, a video would replace a file that is
            no earlier drawing (:meth:`~sparsercnn.drawing_writer.DrawingWriter.check_target`), or
            its frame rate (the sequence's / ``every``) is too low or too high for a video file.
    """
    from sparsercnn.video import FrameFolder, video_rate

    targets: dict[Path, Path] = {}
    for group in groups:
        if isinstance(group, list):
            continue
        path = group.path
        try:
            video_rate(group.fps / every)
        except ValueError as error:
            advice = _rate_advice(group.fps / every > 1, every, isinstance(group, FrameFolder))
            raise ValueError(
                f"--save-images: the annotated video of {path} ({float(group.fps):g} frames/s, "
                f"--every {every}) cannot be written: {error}; {advice}"
            ) from None
        target = drawings.video_target(path)
        clash = next((p for p, t in targets.items() if t == target), None)
        if clash is not None:
            raise ValueError(
                f"--save-images: {clash} and {path} would both be drawn to {target}; "
                "predict them in separate runs into separate --save-images folders, or rename "
                "one"
            )
        # The .mp4 there may be the user's: the video the frames came from, or one beside a .mov.
        drawings.check_target(target, path, "annotated video")
        targets[path] = target
    return targets


def video_writer(
    drawings: DrawingWriter | None, target: Path | None, sequence: FrameSequence, every: int
) -> VideoWriter | None:
    """The writer of ``sequence``'s annotated video, to a file ``drawings`` stages until the run
    ends (:meth:`~sparsercnn.drawing_writer.DrawingWriter.stage`), whose messages name ``target``
    (:func:`annotated_video_targets`) and the sequence; None without ``--save-images``."""
    from sparsercnn.video import VideoWriter

    if drawings is None or target is None:
        return None
    staged = drawings.stage(target, sequence.path)
    return VideoWriter(staged, sequence.fps / every, name=f"{target} (drawn from {sequence.path})")


def predict_sequence(
    predictor: Predictor | OnnxPredictor,
    sequence: FrameSequence,
    args: argparse.Namespace,
    writer: VideoWriter | None,
    records: list[Mapping[str, Any]],
    progress: PredictionProgress,
) -> dict[str, Any]:
    """Add the records of every ``--every``-th frame of ``sequence`` to ``records`` and, with a
    ``writer`` (:func:`video_writer`), write its annotated video. A frame folder of which no
    frame kept can be read is left out with a warning: it has no frame predicted, no annotated
    video, and every frame kept is listed as skipped (:func:`lost_sequences`). A video whose
    reading fails part-way (:class:`~sparsercnn.video.VideoReadError`) keeps the frames
    predicted before it, records and annotated video alike, and is named in a warning and in
    its frame list's ``read_failure`` (:func:`partly_read_sequences`); where that is before its
    first frame kept, it is left out as such a frame folder is (:func:`lost_sequences`), and so
    is a damaged video none of whose frames kept decoded.

    Every drawn frame sits at its records' ``timestamp`` in the annotated video
    (:func:`_draw_frame`).

    Returns:
        The sequence's frame list: ``file_name`` (as in its records), ``frames``, each
        predicted frame's :func:`~sparsercnn.video.frame_summary` (its detections counted;
        empty where none of the sequence was predicted, an input lost), and
        ``skipped_frames``, the indices of its frames that did not decode
        (:attr:`~sparsercnn.video.FrameSequence.skipped_frames`): a damaged video's, all of
        them whatever ``--every`` keeps (those before a read failure); a frame folder's, those
        kept that could not be read; and for a video whose reading failed (part-way, or before
        its first frame kept), ``read_failure``: ``{"frame_index"``, the first frame not read,
        ``"reason"}``.
    """
    from contextlib import nullcontext

    from sparsercnn.data.image_io import ImageReadError
    from sparsercnn.video import (
        FrameFolder,
        VideoReadError,
        frame_records,
        frame_summary,
        predict_video,
    )

    frames: list[dict[str, Any]] = []
    drawn: Image.Image | None = None  # the last frame drawn
    resized = False
    failure: VideoReadError | None = None
    try:
        with writer if writer is not None else nullcontext():
            try:
                for frame, prediction in predict_video(predictor, sequence, every=args.every):
                    records.extend(frame_records(frame, prediction))
                    frames.append(frame_summary(frame, prediction))
                    if writer is not None:
                        names = predictor.categories.distinct_names
                        drawn, resized = _draw_frame(
                            writer, sequence, frame, prediction, names, args, drawn, resized
                        )
                    progress.count()
            except VideoReadError as error:
                failure = error
                if not frames:
                    raise  # the whole video lost: its writer leaves no file
            if writer is not None and drawn is not None and isinstance(sequence, FrameFolder):
                hold(writer, drawn, len(range(0, sequence.num_frames or 0, args.every)))
    except ImageReadError as error:
        if frames:  # a frame read for its detections, and not when drawn
            raise
        # None of the frames kept could be read (a frame folder's files) or decoded (a damaged
        # video's): an input lost, as an image. Its writer leaves no file.
        logger.warning("%s; it is left out", error)
    except VideoReadError as error:
        # Its reading failed before the first frame kept: an input lost, as an image.
        logger.warning("%s; no frame to predict came before it: the video is left out", error)
    listed: dict[str, Any] = {
        "file_name": str(sequence.path),
        "frames": frames,
        "skipped_frames": sequence.skipped_frames,
    }
    if failure is not None:
        listed["read_failure"] = {"frame_index": failure.frame_index, "reason": failure.reason}
        if frames:
            logger.warning(
                "%s; the %s predicted before it %s kept%s, the rest of the video left out",
                failure,
                counted(len(frames), "frame"),
                verb(len(frames), "is"),
                " and drawn" if writer is not None else "",
            )
    return listed


def _draw_frame(
    writer: VideoWriter,
    sequence: FrameSequence,
    frame: Frame,
    prediction: Prediction,
    names: Sequence[str],
    args: argparse.Namespace,
    drawn: Image.Image | None,
    resized: bool,
) -> tuple[Image.Image, bool]:
    """Write the drawing of ``frame``'s detections (``prediction``, above
    ``args.score_threshold``) to ``sequence``'s annotated video at its records' ``timestamp``,
    after ``drawn``, the frame drawn before it (None for the first); ``resized`` says whether an
    earlier frame's drawing was scaled to the video's size (:func:`warn_resized`, once).

    A frame folder's video is at a constant rate: a frame that could not be read is drawn as
    the frame before it (the first frames, as the first frame read). A video's frames keep
    their own times, and where its first frames did not decode (a damaged file) its first
    drawn frame is also shown from 0 s, where the writer's clock starts.

    Returns:
        The drawing as written, and whether this or an earlier frame's was scaled.
    """
    from PIL import Image, ImageOps

    from sparsercnn.video import FrameFolder
    from sparsercnn.visualization.draw import draw_detections

    drawing = draw_detections(
        Image.fromarray(frame.image),
        prediction.boxes,
        prediction.labels,
        prediction.scores,
        names,
        score_threshold=args.score_threshold,
        image_name=frame_name(sequence, frame),
    )
    if writer.size is not None and drawing.size[::-1] != writer.size:
        if not resized:
            warn_resized(sequence, frame, writer.size)
        resized = True
        drawing = ImageOps.pad(drawing, writer.size[::-1])
    if isinstance(sequence, FrameFolder):
        # At a constant rate: frames before this one that could not be read hold their places.
        hold(writer, drawing if drawn is None else drawn, frame.index // args.every)
        writer.write(drawing)
        return drawing, resized
    # A video's frames keep their own times (a variable frame rate stays variable).
    if drawn is None and frame.timestamp > 0:
        # Frame 0 did not decode: the writer counts time from its first frame, which would
        # move every frame one place earlier than its records say.
        writer.write(drawing, 0.0)
    writer.write(drawing, frame.timestamp)
    return drawing, resized


def lost_sequences(
    sequences: Sequence[FrameSequence], videos: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """The sequences of which no frame was predicted, from their frame lists ``videos``
    (:func:`predict_sequence`, in the order of ``sequences``), each a whole input lost, as an
    image that cannot be read is: ``("frame folder", file_name)`` for a frame folder none of
    whose frames kept could be read, ``("video", file_name)`` for a video whose reading failed
    before its first frame kept, or none of whose frames kept decoded."""
    from sparsercnn.video import FrameFolder

    return [
        ("frame folder" if isinstance(sequence, FrameFolder) else "video", video["file_name"])
        for sequence, video in zip(sequences, videos, strict=True)
        if not video["frames"]
    ]


def partly_read_sequences(videos: list[dict[str, Any]]) -> list[str]:
    """The videos of the frame lists ``videos`` (:func:`predict_sequence`) whose reading failed
    part-way, after a frame was predicted, by ``file_name``: the rest of each is an input
    lost."""
    return [video["file_name"] for video in videos if "read_failure" in video and video["frames"]]


def hold(writer: VideoWriter, drawing: Image.Image, num_frames: int) -> None:
    """Write ``drawing`` until the constant-rate ``writer`` holds ``num_frames`` frames: in the
    places of a frame folder's frames that could not be read."""
    for _ in range(num_frames - writer.num_frames):
        writer.write(drawing)


def warn_resized(sequence: FrameSequence, frame: Frame, size: tuple[int, int]) -> None:
    """Warn that ``frame`` of a video whose resolution changes part-way (a stream that adapts
    its quality) is drawn scaled to fit the annotated video's ``size`` ``(h, w)``, its first
    frame's, and padded."""
    height, width = frame.image.shape[:2]
    logger.warning(
        "video %s: frame %d is %dx%d where its first frame is %dx%d; its drawing, and any later "
        "such, is scaled to fit the annotated video's %dx%d (the records keep each frame's pixels)",
        sequence.path,
        frame.index,
        width,
        height,
        size[1],
        size[0],
        size[1],
        size[0],
    )


def frame_name(sequence: FrameSequence, frame: Frame) -> str:
    """How errors name ``frame``: its file in a frame folder, else the video and its index."""
    return (
        str(frame.file) if frame.file is not None else f"video {sequence.path} frame {frame.index}"
    )


def write_outputs(
    records: list[Mapping[str, Any]],
    videos: list[dict[str, Any]],
    unreadable: list[dict[str, str]],
    output: Path,
) -> Path | None:
    """Write the COCO results ``records`` to ``output`` and, when videos or frame folders were
    predicted or images could not be read, the frame list to
    :func:`~sparsercnn.evaluation.results_file.frame_list_path` (which ``eval --detections``
    reads, :func:`~sparsercnn.evaluation.results_file.listed_unreadable_images`): a JSON
    object ``{"results": output's name, "videos": [{"file_name", "frames": [{"frame_index",
    "timestamp", "frame_file" (frame folders only), "num_detections"}, ...] (empty: none of it
    predicted, an input lost), "skipped_frames": [frame_index, ...], "read_failure" (a video
    whose reading failed): {"frame_index", "reason"}}, ...], "unreadable_images": [{"file_name",
    "reason"}, ...]}``
    (:func:`predict_sequence`, :func:`~sparsercnn.cli.predict_inputs.unreadable_images`), which
    tells a frame predicted without detections (no records) from one never predicted, one that
    did not decode from one ``--every`` left out, the end of a video from where its reading
    failed, and an image without detections from one that could not be read.

    Each is written atomically, the frame list staged until the results are in place: a failed
    write leaves both as they were. A frame list an earlier run left is removed when this run
    has none to write: it described the results now replaced.

    Returns:
        The frame list's path, or None when none was written.
    """
    from sparsercnn.atomic_file import AtomicFile
    from sparsercnn.evaluation.results import write_results_json
    from sparsercnn.evaluation.results_file import frame_list_path

    frame_list = frame_list_path(output)
    if not videos and not unreadable:
        write_results_json(records, output)
        if frame_list.is_file():
            logger.warning(
                "removing %s, the frame list of the earlier %s (this run predicted no video, "
                "and read every image)",
                frame_list,
                output,
            )
            frame_list.unlink()
        return None
    listed = {"results": output.name, "videos": videos, "unreadable_images": unreadable}
    text = json.dumps(listed, separators=(",", ":"))
    # Under a temporary name until the results are written: the two change together (an error
    # writing the results names the results).
    with AtomicFile(frame_list) as staged:
        staged.write_text(text)
        write_results_json(records, output)
    return frame_list

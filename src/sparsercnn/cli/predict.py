"""``sparsercnn predict``: detections for images, videos and folders, as COCO JSON and drawings.

Inputs run in the order given: consecutive images share batches, and each video (or, with
``--fps``, each folder of frames) runs through :func:`sparsercnn.video.predict_video`; the
frames predicted are listed beside the results (:func:`frame_list_path`), with or without
detections.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsercnn.cli.common import (
    add_batch_arguments,
    add_cuda_graphs_argument,
    add_device_argument,
    add_model_argument,
    add_precision_argument,
    check_model_paths,
    check_output_path,
    fraction,
    int_at_least,
    positive_number,
    refuse_model_flags_with_onnx,
    resolve_device,
    user_path,
    warn_replacing,
)
from sparsercnn.text import counted
from sparsercnn.video.suffixes import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from sparsercnn.cli.predict_progress import PredictionProgress
    from sparsercnn.drawing_writer import DrawingWriter
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import Predictor
    from sparsercnn.video import Frame, FrameSequence, VideoWriter

    InputGroup = list[Path] | FrameSequence


logger = logging.getLogger(__name__)

# Least score of a drawn detection unless --score-threshold says otherwise.
DEFAULT_DRAWING_THRESHOLD = 0.3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images, videos or folders",
        description="Write COCO result records (file_name, category_id, category_name, bbox "
        "[x,y,w,h] in original pixels, score) for every image and video frame; frame records "
        "also carry frame_index and timestamp (seconds after the first frame, as in the annotated "
        "video), and file_name is the video; every frame predicted, with or without detections, "
        "is listed in OUTPUT.frames.json. Optionally draw the detections: images keep their "
        "relative paths and formats below the inputs' common folder, videos and frame folders "
        "become annotated .mp4 videos there.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    add_model_argument(model, required=False)
    model.add_argument("--onnx", type=user_path, help="ONNX file from `sparsercnn export`")
    parser.add_argument(
        "paths",
        nargs="+",
        type=user_path,
        metavar="PATH",
        help=f"images, videos ({' '.join(VIDEO_SUFFIXES)}; needs pip install 'sparsercnn[video]') "
        "or folders of them",
    )
    parser.add_argument(
        "--output",
        type=user_path,
        default=Path("predictions.json"),
        help="the COCO results JSON to write (default %(default)s; a file there is replaced, "
        "with a warning). With videos or frame folders, every frame predicted is also listed, "
        "with its number of detections, in the same name with suffix .frames.json "
        "(predictions.frames.json), with the frames of a damaged video that did not decode "
        "(images are listed by their records alone)",
    )
    parser.add_argument(
        "--save-images",
        type=user_path,
        metavar="DIR",
        help="draw detections here: images as images, each video or frame folder as one "
        "annotated video DIR/<relative path>.mp4 (H.264, or MPEG-4 for odd sizes): a video's "
        "kept frames at their own times (a variable frame rate stays variable), a frame "
        "folder's at --fps / --every. DIR is new, holds no image or video, or holds an "
        "earlier run's drawings (which are replaced)",
    )
    parser.add_argument(
        "--every",
        type=int_at_least(1),
        default=1,
        metavar="N",
        help="predict frames 0, N, 2N, ... of each video or frame folder (default 1: every frame)",
    )
    parser.add_argument(
        "--fps",
        type=positive_number,
        metavar="F",
        help="read each folder as one video: its images are frames at F per second, sorted by "
        "name (numbers compared as numbers), with timestamps index / F",
    )
    parser.add_argument(
        "--score-threshold",
        type=fraction,
        help="least score of a drawn detection (--save-images; default "
        f"{DEFAULT_DRAWING_THRESHOLD}); the --output JSON keeps every detection",
    )
    parser.add_argument("--stages", type=int_at_least(1), help="use only the first k stages")
    add_batch_arguments(parser, default_batch_size=4)
    add_device_argument(parser, onnx=True)
    add_precision_argument(parser)
    add_cuda_graphs_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from tqdm.contrib.logging import logging_redirect_tqdm

    from sparsercnn.cli.predict_progress import PredictionProgress
    from sparsercnn.drawing_writer import DrawingWriter

    check_model_paths(args)
    check_output_path(args.output, "--output", inputs={"--model": args.model, "--onnx": args.onnx})
    if args.save_images is not None:
        check_output_path(args.save_images, "--save-images", folder=True)
    elif args.score_threshold is not None:
        raise ValueError(
            f"--score-threshold {args.score_threshold} chooses which detections are drawn, but "
            f"no --save-images was given; {args.output} keeps every detection with its score "
            "(filter them by score there, or add --save-images DIR)"
        )
    if args.onnx is not None:
        refuse_model_flags_with_onnx(args)
    if args.score_threshold is None:
        args.score_threshold = DEFAULT_DRAWING_THRESHOLD
    predictor = build_predictor(args)
    # Opens every video: bad ones fail before work. Drawings of an earlier run in a folder below
    # an input folder are outputs, not inputs.
    groups = input_groups(args.paths, args.fps, skip=args.save_images)
    if args.every != 1 and all(isinstance(group, list) for group in groups):
        raise ValueError(
            f"--every {args.every} keeps every N-th frame of a video or frame folder (--fps), "
            "but only images were given"
        )
    drawings = None
    video_targets: dict[Path, Path] = {}
    if args.save_images is not None:
        drawings = DrawingWriter(
            args.save_images, args.paths, args.score_threshold, flag="--save-images"
        )
        video_targets = annotated_video_targets(drawings, groups, args.every)
    refuse_writing_over_inputs(groups, args.output, drawings)
    # Not before the flags and paths are refused (--precision against an ONNX graph's once it
    # is loaded, an --output that is an input): a refused command has nothing to replace.
    warn_replacing(args.output, "--output")
    # Folders are made by the writes themselves (checked writable above): a failed run leaves
    # none behind.
    records: list[Mapping[str, Any]] = []
    videos: list[dict[str, Any]] = []  # each sequence's frame list
    num_images = 0
    progress = PredictionProgress(groups, args.every)
    # The drawings take their places once the JSON is written; an error leaves neither.
    with progress, logging_redirect_tqdm(), drawings if drawings is not None else nullcontext():
        for i, group in enumerate(groups):
            if isinstance(group, list):
                for prediction in predictor.iter_predictions(group):
                    records.extend(prediction.to_coco_results(predictor.categories))
                    if drawings is not None:
                        drawings.write(prediction, predictor.categories.distinct_names)
                    progress.count()
                num_images += len(group)
            else:
                writer = video_writer(drawings, video_targets.get(group.path), group, args.every)
                videos.append(predict_sequence(predictor, group, args, writer, records, progress))
            progress.input_done(i)
        frame_list = write_outputs(records, videos, args.output)
    num_frames = sum(len(video["frames"]) for video in videos)
    print(
        f"{len(records)} detections on {describe(groups, num_images, num_frames)} written to "
        f"{args.output}"
        + (f" (every frame predicted listed in {frame_list})" if frame_list else "")
        + f"; run on {runs_on(predictor)}"
    )
    if drawings is not None:
        replaced = drawings.overwritten
        print(
            f"drawn detections (score >= {args.score_threshold}) in {args.save_images}"
            + (f" ({len(replaced)} earlier drawings replaced)" if replaced else "")
        )
    return 0


def build_predictor(args: argparse.Namespace) -> Predictor | OnnxPredictor:
    from sparsercnn.export.onnx_runtime import OnnxPredictor, check_graph_precision
    from sparsercnn.predictor import Predictor

    if args.onnx is not None:
        onnx = OnnxPredictor(
            args.onnx,
            device=args.device,
            batch_size=args.batch_size,
            batch_invariant=not args.padded_batches,
        )
        check_graph_precision(onnx, args.precision)
        return onnx
    return Predictor.from_file(
        args.model,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        num_stages=args.stages,
        batch_invariant=not args.padded_batches,
        precision=args.precision or "fp32",
        cuda_graphs=args.cuda_graphs,
    )


def runs_on(predictor: Predictor | OnnxPredictor) -> str:
    """Where the predictions ran, as ``eval`` names it: ``cpu``, ``cuda:0``, or for an ONNX file
    its device and execution provider (``cuda:0 (onnxruntime CUDAExecutionProvider)``)."""
    from sparsercnn.export.onnx_runtime import OnnxPredictor

    return predictor.runs_on if isinstance(predictor, OnnxPredictor) else str(predictor.device)


def input_groups(
    paths: list[Path], fps: float | None, skip: Path | None = None
) -> list[InputGroup]:
    """The inputs in order as runs of consecutive image files and opened frame sequences
    (videos, and with ``fps`` folders); a folder otherwise stands for its images and videos,
    sorted by path, leaving out those below the folder ``skip`` and below folders of drawings
    an earlier run made (:data:`~sparsercnn.image_inputs.DRAWINGS_MARKER`).

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no input.
        ValueError: a file is an input twice (:func:`refuse_repeated_inputs`), a video cannot
            be read (:class:`~sparsercnn.video.VideoFile`), or ``fps`` is given without a folder.
    """
    from sparsercnn.video import FrameFolder, VideoFile

    items: list[Path | FrameSequence] = []
    given: list[tuple[Path, Path]] = []  # (input, the path the user gave for it)
    for path in paths:
        if path.is_dir() and fps is None:
            given.extend((found, path) for found in folder_inputs(path, skip))
        elif not path.exists():
            raise FileNotFoundError(f"input {path} does not exist")
        else:
            given.append((path, path))
    refuse_repeated_inputs(given)
    for path, _ in given:
        if fps is not None and path.is_dir():
            items.append(FrameFolder(path, fps, skip=skip))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            items.append(VideoFile(path))
        else:
            items.append(path)
    if fps is not None and not any(isinstance(item, FrameFolder) for item in items):
        raise ValueError("--fps reads folders as frame sequences, but no folder was given")
    groups: list[InputGroup] = []
    for item in items:
        if not isinstance(item, Path):
            groups.append(item)
        elif groups and isinstance(groups[-1], list):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def refuse_repeated_inputs(given: list[tuple[Path, Path]]) -> None:
    """Fail before any work when one file (or frame folder) is an input twice: given twice,
    under two names (``./a.mp4``, a link) or inside a folder also given; its records would be
    written twice.

    Args:
        given: each input and the path the user gave for it (itself, or its folder).

    Raises:
        ValueError: naming both ways it was given.
    """
    from sparsercnn.paths import file_identity

    seen: dict[object, str] = {}
    for path, argument in given:
        # By file identity; where the file system numbers no files, by the resolved path.
        key = file_identity(path) or os.path.realpath(path)
        named = str(path) if path == argument else f"{path} (in folder {argument})"
        if key not in seen:
            seen[key] = named
        elif seen[key] == named:
            raise ValueError(f"input {named} is given twice; give it once")
        else:
            raise ValueError(
                f"inputs {seen[key]} and {named} are the same file, given twice; give it once"
            )


def folder_inputs(folder: Path, skip: Path | None) -> list[Path]:
    """The image and video files below ``folder``, sorted, but for drawings
    (:func:`~sparsercnn.image_inputs.folder_files`).

    Raises:
        FileNotFoundError: none is left.
    """
    from sparsercnn.image_inputs import IMAGE_SUFFIXES, folder_files

    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    found = folder_files(folder, suffixes, skip)
    if not found:
        raise FileNotFoundError(
            f"folder {folder} contains no image or video files ({' '.join(suffixes)})"
        )
    return found


def refuse_writing_over_inputs(
    groups: list[InputGroup], output: Path, drawings: DrawingWriter | None
) -> None:
    """Fail before any work when ``--output`` is one of the input files, when an image's
    drawing would replace a file that is no earlier drawing
    (:meth:`~sparsercnn.drawing_writer.DrawingWriter.check_target`): the image itself
    (``--save-images`` naming the images' folder), another input, or a file of the user's; or
    when ``--save-images`` holds the user's images or videos
    (:meth:`~sparsercnn.drawing_writer.DrawingWriter.check_folder`)."""
    from sparsercnn.image_inputs import IMAGE_SUFFIXES
    from sparsercnn.video import FrameFolder

    images = [path for group in groups if isinstance(group, list) for path in group]
    files = images + [
        file
        for group in groups
        if not isinstance(group, list)
        for file in (group.files if isinstance(group, FrameFolder) else [group.path])
    ]
    if output.exists() and any(output.samefile(file) for file in files):
        raise ValueError(f"--output {output} is one of the inputs; give another file name")
    if drawings is None:
        return
    for image in images:
        drawings.check_image(image)
    drawings.check_folder(IMAGE_SUFFIXES + VIDEO_SUFFIXES)


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
    """Where each sequence's annotated video goes: its drawing path with suffix ``.mp4``
    (a folder ``f`` gives ``f.mp4``).

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
        target = drawings.target(path)
        if not path.is_dir():
            target = target.with_suffix(".mp4")
        elif target == drawings.output_dir:  # the folder is the inputs' common folder
            target = target / f"{Path(os.path.abspath(path)).name}.mp4"
        else:
            target = target.with_name(f"{target.name}.mp4")
        clash = next((p for p, t in targets.items() if t == target), None)
        if clash is not None:
            raise ValueError(
                f"--save-images: {clash} and {path} would both be drawn to {target}; "
                "predict them in separate runs, or rename one"
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
    staged = drawings.stage(target)
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
    ``writer`` (:func:`video_writer`), write its annotated video.

    Returns:
        The sequence's frame list: ``file_name`` (as in its records), ``frames``, each
        predicted frame's :func:`~sparsercnn.video.frame_summary` (its detections counted), and
        ``skipped_frames``, the indices of its frames that did not decode (a damaged video;
        :attr:`~sparsercnn.video.FrameSequence.skipped_frames`), all of them whatever
        ``--every`` keeps.
    """
    from contextlib import nullcontext

    from PIL import Image, ImageOps

    from sparsercnn.video import FrameFolder, frame_records, frame_summary, predict_video
    from sparsercnn.visualization.draw import draw_detections

    # A video's frames keep their own times (a variable frame rate stays variable); a frame
    # folder's are index / fps, the writer's constant rate.
    timed = not isinstance(sequence, FrameFolder)
    frames: list[dict[str, Any]] = []
    resized = False
    with writer if writer is not None else nullcontext():
        for frame, prediction in predict_video(predictor, sequence, every=args.every):
            records.extend(frame_records(frame, prediction, predictor.categories))
            frames.append(frame_summary(frame, prediction))
            if writer is not None:
                drawing = draw_detections(
                    Image.fromarray(frame.image),
                    prediction.boxes,
                    prediction.labels,
                    prediction.scores,
                    predictor.categories.distinct_names,
                    score_threshold=args.score_threshold,
                    image_name=frame_name(sequence, frame),
                )
                if writer.size is not None and drawing.size[::-1] != writer.size:
                    if not resized:
                        warn_resized(sequence, frame, writer.size)
                    resized = True
                    drawing = ImageOps.pad(drawing, writer.size[::-1])
                writer.write(drawing, frame.timestamp if timed else None)
            progress.count()
    return {
        "file_name": str(sequence.path),
        "frames": frames,
        "skipped_frames": sequence.skipped_frames,
    }


def frame_list_path(output: Path) -> Path:
    """Where ``predict`` lists the frames it predicted, beside its results JSON ``output``:
    ``predictions.json`` gives ``predictions.frames.json``."""
    return output.with_suffix(".frames.json")


def write_outputs(
    records: list[Mapping[str, Any]], videos: list[dict[str, Any]], output: Path
) -> Path | None:
    """Write the COCO results ``records`` to ``output`` and, when videos or frame folders were
    predicted, their frame lists (:func:`predict_sequence`) to :func:`frame_list_path`: a JSON
    object ``{"results": output's name, "videos": [{"file_name", "frames": [{"frame_index",
    "timestamp", "frame_file" (frame folders only), "num_detections"}, ...], "skipped_frames":
    [frame_index, ...]}, ...]}``, which tells a frame predicted without detections (no
    records) from one never predicted, and one that did not decode from one ``--every`` left
    out.

    Each is written atomically, the frame list staged until the results are in place: a failed
    write leaves both as they were. A frame list an earlier run left is removed when this run
    predicted no frame: it described the results now replaced.

    Returns:
        The frame list's path, or None when none was written.
    """
    from sparsercnn.atomic_file import atomic_write_text
    from sparsercnn.evaluation.results import write_results_json

    frame_list = frame_list_path(output)
    if not videos:
        write_results_json(records, output)
        if frame_list.is_file():
            logger.warning(
                "removing %s, the frame list of the earlier %s (this run predicted no video)",
                frame_list,
                output,
            )
            frame_list.unlink()
        return None
    text = json.dumps({"results": output.name, "videos": videos}, separators=(",", ":"))
    # Under a temporary name until the results are written: the two change together.
    staged = atomic_write_text(frame_list.with_name(f".{frame_list.name}.staged.tmp"), text)
    try:
        write_results_json(records, output)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, frame_list)
    return frame_list


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


def describe(groups: list[InputGroup], num_images: int, num_frames: int) -> str:
    """What a run predicted, e.g. ``1 image and 30 frames of 2 videos``."""
    num_sequences = sum(not isinstance(group, list) for group in groups)
    images = counted(num_images, "image")
    if num_sequences == 0:
        return images
    videos = f"{counted(num_frames, 'frame')} of {counted(num_sequences, 'video')}"
    return f"{images} and {videos}" if num_images else videos

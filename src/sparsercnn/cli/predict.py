"""``sparsercnn predict``: detections for images, videos and folders, as COCO JSON and drawings.

Inputs run in the order given (:func:`~sparsercnn.cli.predict_inputs.input_groups`):
consecutive images share batches, and each video (or, with ``--fps``, each folder of frames)
runs through :func:`~sparsercnn.cli.predict_sequences.predict_sequence`; the frames predicted are
listed beside the results (:func:`~sparsercnn.evaluation.results_file.frame_list_path`), with or
without detections. An image that cannot be read is left out, the others written
(:func:`~sparsercnn.cli.predict_inputs.unreadable_images`), and the exit status is 2: a whole
input lost; so is the rest of a video whose reading fails part-way, its frames before that kept.
A frame skipped (a damaged video's, an ``--fps`` folder's unreadable file) is one part of an
input: a warning, and the exit status stays 0.
"""

from __future__ import annotations

import argparse
from collections import Counter
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
    output_file,
    positive_number,
    refuse_model_flags_with_onnx,
    resolve_device,
    user_path,
    warn_replacing,
)
from sparsercnn.cli.predict_inputs import (
    input_groups,
    refuse_media_output,
    refuse_writing_over_inputs,
    unreadable_images,
    warn_unreadable,
)
from sparsercnn.cli.predict_sequences import (
    annotated_video_targets,
    lost_sequences,
    partly_read_sequences,
    predict_sequence,
    video_writer,
    write_outputs,
)
from sparsercnn.text import counted
from sparsercnn.video.suffixes import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from sparsercnn.data.image_io import ImageReadError
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import Predictor

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
        "become annotated .mp4 videos there. An image that cannot be read (a truncated "
        "JPEG, an empty PNG) is left out and the others are predicted and written; a frame "
        "of a damaged video or of an --fps folder that cannot be read is skipped; a warning "
        "names each, and OUTPUT.frames.json lists it; a run that reads no input at all is an "
        "error that writes nothing; an --fps folder none of whose frames can be read, or a "
        "damaged video none of whose frames kept decode, is left out as an image is; a video "
        "whose reading fails part-way keeps the frames before that frame (if none was kept, "
        "it is left out as an image is), and the frame list names where it failed. Exit "
        "status: 2 when an image (or every frame kept of an --fps folder or video, or the rest "
        "of a video) could not be read, 0 when only frames were skipped, as an image is a whole "
        "input lost and a frame one part of an input whose other frames are written.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    add_model_argument(model, required=False)
    model.add_argument("--onnx", type=user_path, help="ONNX file from `sparsercnn export`")
    parser.add_argument(
        "paths",
        nargs="+",
        type=user_path,
        metavar="PATH",
        help=f"images, videos ({' '.join(VIDEO_SUFFIXES)}, and animated .gif and .png; needs pip "
        "install 'sparsercnn[video]') or folders of them; an animated .webp or a multi-page .tif "
        "is read as its first frame, with a warning",
    )
    parser.add_argument(
        "--output",
        type=output_file,
        default=Path("predictions.json"),
        help="the COCO results JSON to write (default %(default)s; a file there is replaced, "
        "with a warning). With videos or frame folders, every frame predicted is also listed, "
        "with its number of detections, in the same name with suffix .frames.json "
        "(predictions.frames.json), with the frames of a damaged video that did not decode "
        "(and a frame folder's that could not be read); "
        "so are the images that could not be read (images are otherwise listed by their "
        "records alone)",
    )
    parser.add_argument(
        "--save-images",
        type=user_path,
        metavar="DIR",
        help="draw detections here: images as images, each video or frame folder as one "
        "annotated video DIR/<relative path>.mp4 (H.264, or MPEG-4 for odd sizes): a video's "
        "kept frames at their own times (a variable frame rate stays variable), a frame "
        "folder's at --fps / --every. DIR is new, holds no image or video, or holds earlier "
        "runs' drawings: those this run draws again are replaced, and those it does not "
        "removed where it is given their input or a folder above it (an image deleted or that "
        "can no longer be read, a folder drawn without --fps where it is now given or the "
        "other way round); the drawings of other inputs stay (predicting images one at a time "
        "into DIR keeps them all), and a file no run drew is never replaced nor removed",
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
        help="least score of a drawn detection, as the --output JSON writes it (--save-images; "
        f"default {DEFAULT_DRAWING_THRESHOLD}); the --output JSON keeps every detection",
    )
    parser.add_argument("--stages", type=int_at_least(1), help="use only the first k stages")
    add_batch_arguments(parser, default_batch_size=4)
    add_device_argument(parser, onnx=True)
    add_precision_argument(parser)
    add_cuda_graphs_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Predict every input and write the outputs.

    Returns:
        0, or 2 (:data:`~sparsercnn.cli.main.EXIT_BAD_INPUT`) when inputs were left out, the
        others' outputs written (:func:`~sparsercnn.cli.predict_inputs.unreadable_images`):
        images that could not be read, frame folders none of whose frames kept could be read,
        videos none of whose frames kept decoded or whose reading failed before their first
        frame kept (:func:`~sparsercnn.cli.predict_sequences.lost_sequences`); or when videos
        could be read only up to a frame
        (:func:`~sparsercnn.cli.predict_sequences.partly_read_sequences`).
    """
    from contextlib import nullcontext

    from tqdm.contrib.logging import logging_redirect_tqdm

    from sparsercnn.cli.main import EXIT_BAD_INPUT
    from sparsercnn.cli.predict_progress import PredictionProgress
    from sparsercnn.drawing_writer import DrawingWriter

    check_model_paths(args)
    check_output_path(args.output, "--output", inputs={"--model": args.model, "--onnx": args.onnx})
    refuse_media_output(args.output, args.paths)
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
    # Opens every video: a file that is none fails before work (one none of whose frames reads
    # is an input lost once predicted). Drawings of an earlier run in a folder below an input
    # folder are outputs, not inputs.
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
    errors: list[ImageReadError] = []  # of the images that could not be read, left out
    # Counts the images and frames predicted; one that cannot be read is left out of the
    # total once its input is done (input_done).
    progress = PredictionProgress(groups, args.every)
    # The drawings take their places once the JSON is written; an error leaves neither.
    with progress, logging_redirect_tqdm(), drawings if drawings is not None else nullcontext():
        for i, group in enumerate(groups):
            if isinstance(group, list):
                for prediction in predictor.iter_predictions(group, on_unreadable=errors.append):
                    records.extend(prediction.to_coco_results())
                    if drawings is not None:
                        drawings.write(prediction, predictor.categories.distinct_names)
                    progress.count()
                    num_images += 1
            else:
                writer = video_writer(drawings, video_targets.get(group.path), group, args.every)
                videos.append(predict_sequence(predictor, group, args, writer, records, progress))
            progress.input_done(i)
        num_frames = sum(len(video["frames"]) for video in videos)
        lost = lost_sequences([g for g in groups if not isinstance(g, list)], videos)
        partly_read = partly_read_sequences(videos)
        unreadable = unreadable_images(errors, num_images + num_frames, lost)
        frame_list = write_outputs(records, videos, unreadable, args.output)
    if errors:
        assert frame_list is not None  # it lists them
        warn_unreadable(errors, frame_list)
    print(
        f"{counted(len(records), 'detection')} on "
        f"{describe(num_images, num_frames, len(videos) - len(lost))} written to {args.output}"
        + (f" (every frame predicted listed in {frame_list})" if len(videos) > len(lost) else "")
        + f"; run on {predictor.runs_on}"
        + (
            f"; {lost_inputs(len(unreadable), lost)} could not be read (listed in {frame_list})"
            if unreadable or lost
            else ""
        )
        + (
            f"; {counted(len(partly_read), 'video')} could be read only up to a damaged frame "
            f"(named in {frame_list})"
            if partly_read
            else ""
        )
    )
    if drawings is not None:
        # Removed: earlier drawings of inputs given this run (or below a folder given) not drawn
        # this time (an unreadable or deleted image, an image folder now drawn as one video
        # with --fps).
        earlier = [
            f"{counted(len(changed), 'earlier drawing')} {what}"
            for changed, what in ((drawings.overwritten, "replaced"), (drawings.removed, "removed"))
            if changed
        ]
        print(
            f"drawn detections (score >= {args.score_threshold}) in {args.save_images}"
            + (f" ({', '.join(earlier)})" if earlier else "")
        )
    return EXIT_BAD_INPUT if unreadable or lost or partly_read else 0


def lost_inputs(num_images: int, lost: list[tuple[str, str]]) -> str:
    """The inputs lost, e.g. ``1 image and 1 frame folder``: images that could not be read, and
    the frame folders and videos of which no frame was predicted
    (:func:`~sparsercnn.cli.predict_sequences.lost_sequences`)."""
    kinds = Counter(kind for kind, _ in lost)  # in the order the inputs were given
    counts = [(num_images, "image"), *((n, kind) for kind, n in kinds.items())]
    return " and ".join(counted(n, what) for n, what in counts if n)


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


def describe(num_images: int, num_frames: int, num_sequences: int) -> str:
    """What a run predicted, e.g. ``1 image and 30 frames of 2 videos``: ``num_sequences``
    counts the videos and frame folders of which a frame was predicted."""
    images = counted(num_images, "image")
    if num_sequences == 0:
        return images
    videos = f"{counted(num_frames, 'frame')} of {counted(num_sequences, 'video')}"
    return f"{images} and {videos}" if num_images else videos

"""``sparsercnn diagnose``: per-stage accuracy and latency, proposal-slot statistics, the
evaluation plots and the FPN reads of a model file on a COCO-format dataset."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

from sparsercnn.cli.common import (
    add_model_dataset_arguments,
    check_output_path,
    fraction,
    int_at_least,
    naming_input_flags,
    refuse_overwriting,
    resolve_device,
    user_path,
    warn_replacing,
)
from sparsercnn.cli.evaluate import REPORT_FILES, check_report_dir

# The files each diagnosis writes into --output-dir (the report's samples/ folder aside).
OUTPUT_FILES = {
    "stages": ("stages.json", "stages.png"),
    "slots": ("slots.json", "slot_matches.png", "slot_centres.png", "slot_sizes.png"),
    "report": REPORT_FILES,
    "reads": ("feature_reads.json",),
}


def _add_common(parser: argparse.ArgumentParser, *, batches: bool = True) -> None:
    add_model_dataset_arguments(parser, batches=batches)
    parser.add_argument(
        "--output-dir",
        type=user_path,
        default=Path("diagnostics"),
        help="where files are written (default %(default)s; the files of an earlier diagnosis "
        "there are replaced, with a warning)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="per-stage AP and latency, proposal-slot statistics, evaluation plots",
        description="Look inside a model file on a COCO-format dataset.",
    )
    kinds = parser.add_subparsers(dest="diagnosis", metavar="DIAGNOSIS", required=True)

    stages = kinds.add_parser(
        "stages",
        help="AP of every stage's output and latency of running only the first k",
        description="Evaluates every stage's detections in one pass (deep supervision makes "
        "each stage a full detector) and times the model stopped after k stages. Writes "
        "stages.json and stages.png.",
    )
    _add_common(stages)
    stages.add_argument(
        "--latency-images",
        type=int_at_least(0),
        default=5,
        help="images timed per k (default %(default)s; 0: no timing)",
    )
    stages.set_defaults(handler=run_stages)

    slots = kinds.add_parser(
        "slots",
        help="what each proposal slot matches: counts, classes, sizes, positions, dead slots",
        description="Matches the last stage to the ground truth with the model's Hungarian "
        "matcher. Writes slots.json, slot_matches.png, slot_centres.png and slot_sizes.png.",
    )
    _add_common(slots)
    slots.add_argument(
        "--score-threshold",
        type=fraction,
        default=0.3,
        help="least score of a confident slot (default %(default)s)",
    )
    slots.set_defaults(handler=run_slots)

    report = kinds.add_parser(
        "report",
        help="precision-recall curves, confusion matrix, sample images, label summary",
        description="Writes precision_recall.png, confusion_matrix.png/.json, "
        "dataset_labels.png and samples/<image id>.png.",
    )
    _add_common(report)
    report.add_argument(
        "--score-threshold",
        type=fraction,
        default=0.3,
        help="least score of a detection in the confusion matrix and the samples (default "
        "%(default)s; the PR curves use every detection)",
    )
    report.add_argument(
        "--samples",
        type=int_at_least(0),
        default=4,
        help="images drawn with their ground truth and detections (default %(default)s)",
    )
    report.set_defaults(handler=run_report)

    reads = kinds.add_parser(
        "reads",
        help="which part of each FPN level (P2-P5) the stages' RoIAlign reads",
        description="Runs the model image by image and counts, per FPN level, the feature "
        "pixels and 8/16/32-pixel tiles that some stage samples: what an FPN computed only "
        "where it is read would compute (no ground truth needed: the JSON may list images "
        "without annotations). Writes feature_reads.json.",
    )
    _add_common(reads, batches=False)
    reads.add_argument(
        "--max-images", type=int_at_least(1), help="stop after this many images (default all)"
    )
    reads.set_defaults(handler=run_reads)


def check_output_dir(args: argparse.Namespace) -> None:
    """Fail before the model runs when ``--output-dir`` cannot be written, or when one of the
    diagnosis' files would replace the model, the JSON or a file of the image folder (the
    report's ``samples/`` drawings included: :func:`~sparsercnn.cli.evaluate.check_report_dir`,
    shared with ``eval --report-dir``)."""
    inputs = {"--model": args.model, "--json": args.json, "--images": args.images}
    if args.diagnosis == "report":
        check_report_dir(args.output_dir, "--output-dir", inputs, images=args.images)
    else:
        check_output_path(args.output_dir, "--output-dir", folder=True)
        for name in OUTPUT_FILES[args.diagnosis]:
            refuse_overwriting(args.output_dir / name, "--output-dir", inputs)
    warn_replacing(args.output_dir, "--output-dir", files=OUTPUT_FILES[args.diagnosis])


def _naming_images(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """``handler`` with a refused image folder or annotation file named by the one flag it came
    from, ``--images`` or ``--json`` (as ``eval`` names them), not by every flag it can come
    from."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with naming_input_flags({"--images": args.images}, annotation_files={"--json": args.json}):
            return handler(args)

    return run


@_naming_images
def run_stages(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics.stage_evaluation import (
        evaluate_model_file_stages,
        write_stage_evaluation,
    )

    check_output_dir(args)
    evaluation = evaluate_model_file_stages(
        args.model,
        args.json,
        args.images,
        device=resolve_device(args.device),
        num_latency_images=args.latency_images,
        batch_size=args.batch_size,
        num_workers=args.workers,
        skip_invalid=args.skip_invalid,
        batch_invariant=not args.padded_batches,
    )
    print(evaluation.format_table())
    paths = write_stage_evaluation(evaluation, args.output_dir)
    print(f"written: {paths['json']}, {paths['plot']}")
    return 0


@_naming_images
def run_slots(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics.slot_statistics import (
        slot_statistics_of_model_file,
        write_slot_statistics,
    )

    check_output_dir(args)
    statistics = slot_statistics_of_model_file(
        args.model,
        args.json,
        args.images,
        device=resolve_device(args.device),
        score_threshold=args.score_threshold,
        batch_size=args.batch_size,
        num_workers=args.workers,
        skip_invalid=args.skip_invalid,
        batch_invariant=not args.padded_batches,
    )
    print(statistics.format())
    paths = write_slot_statistics(statistics, args.output_dir)
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


@_naming_images
def run_reads(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics.feature_reads import collect_feature_reads, write_feature_reads

    check_output_dir(args)
    reads = collect_feature_reads(
        args.model,
        args.json,
        args.images,
        device=resolve_device(args.device),
        max_images=args.max_images,
        num_workers=args.workers,
        skip_invalid=args.skip_invalid,
    )
    print(reads.format_table())
    print(f"written: {write_feature_reads(reads, args.output_dir)}")
    return 0


@_naming_images
def run_report(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics.evaluation_plots import write_evaluation_report
    from sparsercnn.engine.model_evaluation import evaluate_model_file

    check_output_dir(args)
    report = evaluate_model_file(
        args.model,
        args.json,
        args.images,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        num_workers=args.workers,
        skip_invalid=args.skip_invalid,
        batch_invariant=not args.padded_batches,
    )
    paths = write_evaluation_report(
        report, args.output_dir, score_threshold=args.score_threshold, num_samples=args.samples
    )
    print(f"{len(paths)} files written to {args.output_dir}")
    return 0

"""``sparsercnn train``: train on a COCO-format dataset (single process or under torchrun)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.cli.common import (
    add_config_arguments,
    add_device_argument,
    checkpoint_source,
    naming_input_flags,
    positive_number,
    user_path,
)
from sparsercnn.cli.config_options import check_config_arguments
from sparsercnn.cli.training_setup import (
    REPORT_DIR,
    check_run_to_start,
    check_training_data,
    held_run_folder,
    remaining_budget,
    starting_weights,
    training_config,
)
from sparsercnn.paths import missing_folders, remove_empty_folders
from sparsercnn.run_files import MODEL_BEST_FILE

if TYPE_CHECKING:
    from sparsercnn.engine.evaluation_report import EvaluationReport

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector on COCO-format data",
        description="Train Sparse R-CNN. Launch with `torchrun --nproc-per-node N -m sparsercnn "
        "train ...` to train with DDP on several GPUs or machines.",
    )
    parser.add_argument("--train-json", type=user_path, required=True, help="COCO instances JSON")
    parser.add_argument(
        "--train-images", type=user_path, required=True, help="training image folder"
    )
    parser.add_argument(
        "--val-json", type=user_path, help="validation COCO JSON (enables evaluation)"
    )
    parser.add_argument("--val-images", type=user_path, help="validation image folder")
    parser.add_argument("--output-dir", type=user_path, required=True, help="run folder")
    add_config_arguments(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        type=user_path,
        metavar="CHECKPOINT",
        help="continue the run in --output-dir from its newest readable checkpoint, or from "
        "CHECKPOINT (a checkpoint_*.pt of a run with the same model and classes)",
    )
    parser.add_argument(
        "--time-budget",
        type=positive_number,
        metavar="MINUTES",
        help="fit the schedule to this wall-clock budget and stop gracefully when it is spent",
    )
    parser.add_argument(
        "--init-from",
        type=checkpoint_source,
        metavar="CHECKPOINT",
        help="start from a detector checkpoint (ours, official or mmdetection; path, URL or "
        "published name); with a different class set only the class logits are re-initialised, "
        "those of classes of the same name copied",
    )
    parser.add_argument(
        "--backbone-weights",
        type=checkpoint_source,
        metavar="RESNET",
        help="ImageNet ResNet weights (torchvision .pth, path or URL) for the backbone",
    )
    parser.add_argument(
        "--freeze",
        choices=["none", "backbone", "all_but_class_logits"],
        help="train only the head (backbone) or only the class logits, for very small datasets",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="drop the images and annotations `sparsercnn validate` reports as errors, up front "
        "with one summary line, and replace images that fail to load later (counted as "
        "skipped_images in metrics.jsonl); without it such data is refused",
    )
    add_device_argument(parser)
    parser.set_defaults(handler=run)


# Loggers whose warnings are the same on every rank: the data policy's (rank 0 checks the data
# and builds the datasets for all; a Python caller's ranks may each read the whole JSON), the
# resumed checkpoint's and the time budget's (rank 0 decides for all), and the starting weights'
# conversion (every rank reads the same file).
RANK_0_WARNINGS = (
    "sparsercnn.data.policy",
    "sparsercnn.engine.checkpoint",
    "sparsercnn.engine.resume",
    "sparsercnn.engine.resume_changes",
    "sparsercnn.engine.time_budget",
    "sparsercnn.weights.convert",
)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.engine.distributed import cleanup, computed_on_main, init_distributed
    from sparsercnn.engine.pipeline import train_from_coco
    from sparsercnn.evaluation.units import format_percent

    if (args.val_json is None) != (args.val_images is None):
        raise ValueError("give both --val-json and --val-images, or neither")
    given = check_config_arguments(args)
    dist_info = init_distributed(args.device, argument="--device")
    if not dist_info.is_main:
        # One copy of the run's log (rank 0's): the other ranks report their own warnings (an
        # image replaced) and errors, not those every rank finds alike and rank 0 reports.
        logging.getLogger("sparsercnn").setLevel(logging.WARNING)
        for name in RANK_0_WARNINGS:
            logging.getLogger(name).setLevel(logging.ERROR)
    # Another run into the folder is refused first; one refused before its first step leaves
    # no run folder behind (rank 0 made it).
    folder = held_run_folder(
        args.output_dir, make=args.resume is not True, is_main=dist_info.is_main
    )
    try:
        with folder:
            # What is cheap to refuse, then what a resume changes, comes before the data's check
            # (every image decoded).
            checked_resume = check_run_to_start(
                args,
                args.output_dir,
                is_main=dist_info.is_main,
                world_size=dist_info.world_size,
            )
            weights = starting_weights(args, given)
            val = (args.val_json, args.val_images) if args.val_json is not None else None
            folders = {"--train-images": args.train_images, "--val-images": args.val_images}
            files = {"--train-json": args.train_json, "--val-json": args.val_json}
            with naming_input_flags(folders, annotation_files=files):
                checked = check_training_data(
                    (args.train_json, args.train_images), val, args.skip_invalid
                )
            # The budget starts after the data's check, as for a dataset built by the trainer.
            start = time.perf_counter()
            cfg = training_config(
                args,
                given,
                checked_resume,
                args.train_json,
                args.train_images,
                args.output_dir,
                dist_info,
                weights,
                checked,
            )
            # Rank 0's clock decides, so that a spent budget stops every rank alike.
            budget = computed_on_main(lambda: remaining_budget(args.time_budget, start))
            result = train_from_coco(
                cfg,
                train_json=args.train_json,
                train_images=args.train_images,
                val_json=args.val_json,
                val_images=args.val_images,
                output_dir=args.output_dir,
                # The checkpoint --resume names, as checked before the data (check_run_to_start).
                resume=checked_resume or False,
                # The recipe's timing counts against the budget.
                time_budget_minutes=budget,
                budget_spent_minutes=0.0 if budget is None else args.time_budget - budget,
                skip_invalid=args.skip_invalid,
                dist_info=dist_info,
                starting_weights=weights,
                # Rank 0's check of the sets: the datasets take it, not reading them again.
                train_inspection=None if checked is None else checked.train,
                val_inspection=None if checked is None else checked.val,
            )
            # The run-folder diagnostics (PR curves, confusion matrix, samples, label summary)
            # from the evaluation training ran, written while the folder is held: another run
            # into it is refused until they are.
            report = result.evaluation_report
            if dist_info.is_main and report is not None:
                _write_report(report, args.output_dir / REPORT_DIR)
    finally:
        cleanup()
    if not dist_info.is_main:
        return 0
    # An interrupt raises instead: only the time budget stops a run that returns early.
    ended = "stopped by its time budget" if result.stopped_early else "ended"
    print(f"training {ended} at iteration {result.iteration}; outputs in {result.output_dir}")
    aps = []
    if result.final_evaluation is not None:
        aps.append(f"final AP {format_percent(result.final_evaluation.result.AP)}")
    # The last evaluation is of the last iteration's model; model_best (what report/ draws)
    # is another's, or that evaluation predates this invocation (a resumed finished run).
    if result.best_ap is not None and (
        result.final_evaluation is None or result.best_iteration != result.iteration
    ):
        aps.append(
            f"best AP {format_percent(result.best_ap)} at iteration {result.best_iteration} "
            f"({MODEL_BEST_FILE})"
        )
    if aps:
        print("; ".join(aps))
    # The table of the model report/ draws, once (training logged each evaluation on one line).
    if report is not None:
        assert report.model_file is not None  # training evaluates its model files
        print(f"evaluation of {report.model_file.name}:\n{report.format()}")
        print(f"evaluation plots of {report.model_file.name} in {args.output_dir / REPORT_DIR}")
    return 0


def _write_report(report: EvaluationReport, folder: Path) -> None:
    """Draw the evaluation plots of the run's best model into ``folder`` (``report/``); when
    that stops (Ctrl-C, a full disk), say that ``--resume`` draws them, and leave no empty
    ``folder`` behind."""
    from sparsercnn.diagnostics import write_evaluation_report

    made = missing_folders(folder)
    try:
        write_evaluation_report(report, folder)
    except BaseException:
        remove_empty_folders(made)
        logger.warning(
            "stopped drawing the evaluation plots; the run is trained: the same command with "
            "--resume draws them in %s",
            folder,
        )
        raise

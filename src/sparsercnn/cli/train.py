"""``sparsercnn train``: train on a COCO-format dataset (single process or under torchrun)."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.cli.common import (
    AUTO_PRESET,
    add_config_arguments,
    add_device_argument,
    load_config_file,
    resolve_config,
)

if TYPE_CHECKING:
    from sparsercnn.config import Config
    from sparsercnn.engine.distributed import DistInfo

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector on COCO-format data",
        description="Train Sparse R-CNN. Launch with `torchrun --nproc-per-node N -m sparsercnn "
        "train ...` to train with DDP on several GPUs or machines.",
    )
    parser.add_argument("--train-json", type=Path, required=True, help="COCO instances JSON")
    parser.add_argument("--train-images", type=Path, required=True, help="training image folder")
    parser.add_argument("--val-json", type=Path, help="validation COCO JSON (enables evaluation)")
    parser.add_argument("--val-images", type=Path, help="validation image folder")
    parser.add_argument("--output-dir", type=Path, required=True, help="run folder")
    add_config_arguments(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        type=Path,
        metavar="CHECKPOINT",
        help="continue the run in --output-dir from its newest readable checkpoint, or from "
        "CHECKPOINT (a checkpoint_*.pt of a run with the same model and classes)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="fit the schedule to this wall-clock budget and stop gracefully when it is spent",
    )
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from a detector checkpoint (ours, official or mmdetection; path, URL or "
        "published name); a different class set re-initialises only the class logits",
    )
    parser.add_argument(
        "--backbone-weights",
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


def run(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics import write_evaluation_report
    from sparsercnn.engine.distributed import cleanup, init_distributed
    from sparsercnn.engine.pipeline import train_from_coco
    from sparsercnn.evaluation.units import format_percent

    if (args.val_json is None) != (args.val_images is None):
        raise ValueError("give both --val-json and --val-images, or neither")
    start = time.perf_counter()
    dist_info = init_distributed(args.device)
    try:
        cfg = training_config(args, dist_info)
        # The recipe's timing counts against the budget.
        spent = (time.perf_counter() - start) / 60
        result = train_from_coco(
            cfg,
            train_json=args.train_json,
            train_images=args.train_images,
            val_json=args.val_json,
            val_images=args.val_images,
            output_dir=args.output_dir,
            resume=args.resume,
            time_budget_minutes=None if args.time_budget is None else args.time_budget - spent,
            skip_invalid=args.skip_invalid,
            dist_info=dist_info,
        )
    finally:
        cleanup()
    if not dist_info.is_main:
        return 0
    print(f"training stopped at iteration {result.iteration}; outputs in {result.output_dir}")
    if result.final_evaluation is not None:
        print(f"final AP {format_percent(result.final_evaluation.result.AP)}")
    # Run-folder diagnostics (PR curves, confusion matrix, samples, label summary) from the
    # evaluation training ran.
    report = result.evaluation_report
    if report is not None:
        write_evaluation_report(report, args.output_dir / "report")
        print(f"evaluation plots of {report.model_file.name} in {args.output_dir / 'report'}")
    return 0


def training_config(args: argparse.Namespace, dist_info: DistInfo) -> Config:
    """The run's config: a fixed preset or ``--config``; with ``--preset auto``, the recipe
    chosen from the data (rank 0 chooses, every rank trains with it), or on ``--resume`` the
    run's own ``config.json``. ``--set`` overrides apply last."""
    from sparsercnn.config import Config
    from sparsercnn.engine.distributed import all_gather_object

    if args.config or args.preset != AUTO_PRESET:
        cfg = resolve_config(args)
    elif args.resume:
        cfg = load_config_file(args.output_dir / "config.json", "--resume: the run's config")
        cfg = cfg.apply_overrides(list(args.overrides))
    else:
        chosen = _auto_config(args, dist_info).to_dict() if dist_info.is_main else None
        cfg = Config.from_dict(all_gather_object(chosen)[0])
    # Typed values go into the config as they are (a checkpoint named "2024" stays a string).
    weights = {
        "init_from": args.init_from,
        "backbone_weights": args.backbone_weights,
        "freeze": args.freeze,
    }
    given = {name: value for name, value in weights.items() if value}
    return replace(cfg, train=replace(cfg.train, **given))


def _auto_config(args: argparse.Namespace, dist_info: DistInfo) -> Config:
    """Choose the recipe for the training set, print it and save it as ``recipe.json``."""
    import json

    from sparsercnn.atomic_file import atomic_write
    from sparsercnn.engine.checkpoint import check_run_folder
    from sparsercnn.recipe import recipe_for_dataset

    check_run_folder(args.output_dir, False, is_main=True)
    overrides = list(args.overrides)
    max_iter = _overridden_max_iter(overrides)
    recipe = recipe_for_dataset(
        args.train_json,
        args.train_images,
        dist_info.device,
        time_budget_minutes=args.time_budget,
        max_iter=max_iter,
        init_from=args.init_from or "",
        backbone_weights=args.backbone_weights or "",
    )
    print(recipe.format(), flush=True)
    text = json.dumps(recipe.to_dict(), indent=2)
    atomic_write(args.output_dir / "recipe.json", lambda tmp: tmp.write_text(text))
    return recipe.config.apply_overrides(overrides)


def _overridden_max_iter(overrides: list[str]) -> int | None:
    """``N`` of a ``train.max_iter=N`` override: the step budget the recipe fits its schedule to."""
    from sparsercnn.config import Config

    keys = [item.partition("=")[0].strip() for item in overrides]
    if "train.max_iter" not in keys:
        return None
    return Config().apply_overrides(overrides).train.max_iter

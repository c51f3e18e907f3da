"""Whole jobs from files on disk: train on COCO-format data, evaluate a model file.

These are what the CLI's ``train``, ``eval`` and ``demo`` call; each builds the datasets with the
config's transforms, checks that label maps agree, and runs the engine.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sparsercnn.atomic_file import atomic_write, ensure_writable_dir
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import build_test_transform, build_train_transform
from sparsercnn.engine.distributed import DistInfo
from sparsercnn.engine.inference import Timing, evaluate
from sparsercnn.engine.train_result import TrainResult
from sparsercnn.engine.trainer import Trainer
from sparsercnn.evaluation.coco_evaluator import EvaluationResult
from sparsercnn.model import build_postprocessor
from sparsercnn.model_file import load_model_file

logger = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    """COCO metrics of a model file plus its measured speed."""

    result: EvaluationResult
    timing: Timing
    checkpoint: Path
    device: str

    def to_dict(self) -> dict[str, Any]:
        """The metrics (0-1 floats under AP, AP50, AP75, APs, APm, APl, per_class) and speed."""
        return {
            **self.result.to_dict(),
            "checkpoint": str(self.checkpoint),
            "device": self.device,
            "model_images_per_second": 1.0 / max(self.timing.model_seconds_per_image, 1e-12),
            "end_to_end_images_per_second": 1.0 / max(self.timing.total_seconds_per_image, 1e-12),
        }

    def format(self) -> str:
        """The COCO table followed by the speed, saying what each figure measures."""
        return (
            f"{self.result.format_table()}\n"
            f"speed on {self.device}: {1.0 / max(self.timing.model_seconds_per_image, 1e-12):.2f} "
            f"images/s model only (forward pass), "
            f"{1.0 / max(self.timing.total_seconds_per_image, 1e-12):.2f} images/s end to end "
            f"(decode, resize, forward, post-processing) over {self.timing.num_images} images"
        )


def check_same_categories(expected: CategoryMap, found: CategoryMap, what: str) -> None:
    """Raise when two label maps differ: labels would silently mean other classes."""
    if expected.category_ids != found.category_ids or expected.names != found.names:
        found_pairs = list(zip(found.category_ids, found.names, strict=True))
        expected_pairs = list(zip(expected.category_ids, expected.names, strict=True))
        raise ValueError(
            f"{what} has categories {found_pairs[:10]} but the model was trained on "
            f"{expected_pairs[:10]}; "
            "use a dataset with the same COCO 'categories' list"
        )


def train_from_coco(
    cfg: Config,
    *,
    train_json: Path,
    train_images: Path,
    output_dir: Path,
    val_json: Path | None = None,
    val_images: Path | None = None,
    resume: bool | Path = False,
    time_budget_minutes: float | None = None,
    skip_invalid: bool = False,
    dist_info: DistInfo | None = None,
) -> TrainResult:
    """Train on a COCO-format dataset; ``model.num_classes`` is taken from the dataset.

    ``resume``: ``True`` continues the run in ``output_dir``, a path from that checkpoint (see
    :class:`~sparsercnn.engine.trainer.Trainer`). The output folder is checked before the data
    are read.
    """
    if dist_info is None or dist_info.is_main:
        ensure_writable_dir(output_dir)
    train_set = CocoDataset(
        train_json,
        train_images,
        transform=build_train_transform(cfg.input),
        skip_invalid=skip_invalid,
    )
    num_classes = train_set.category_map.num_classes
    if cfg.model.num_classes != num_classes:
        logger.info(
            "model.num_classes set to %d from %s (was %d)",
            num_classes,
            train_json,
            cfg.model.num_classes,
        )
        cfg = replace(cfg, model=replace(cfg.model, num_classes=num_classes))
    val_set = None
    if val_json is not None and val_images is not None:
        val_set = CocoDataset(
            val_json,
            val_images,
            transform=build_test_transform(cfg.input),
            skip_invalid=skip_invalid,
            skip_unreadable=False,
        )
        check_same_categories(train_set.category_map, val_set.category_map, str(val_json))
    trainer = Trainer(
        cfg,
        train_set,
        output_dir,
        val_dataset=val_set,
        resume=resume,
        time_budget_minutes=time_budget_minutes,
        dist_info=dist_info,
    )
    return trainer.train()


def evaluate_model_file(
    checkpoint: Path,
    json_path: Path,
    image_dir: Path,
    *,
    device: torch.device | str = "cpu",
    num_stages: int | None = None,
    batch_size: int = 1,
    num_workers: int = 2,
    results_path: Path | None = None,
    metrics_path: Path | None = None,
) -> EvaluationReport:
    """COCO evaluation of a model file on a dataset, optionally writing results and metrics."""
    loaded = load_model_file(checkpoint, device=device)
    dataset = CocoDataset(
        json_path,
        image_dir,
        transform=build_test_transform(loaded.config.input),
        skip_unreadable=False,
    )
    check_same_categories(loaded.categories, dataset.category_map, str(json_path))
    evaluation = evaluate(
        loaded.model.eval(),
        build_postprocessor(loaded.config),
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        dist_info=DistInfo(device=torch.device(device)),
        num_stages=num_stages,
        results_path=results_path,
    )
    assert evaluation is not None  # single process: rank 0
    report = EvaluationReport(evaluation.result, evaluation.timing, checkpoint, str(device))
    if metrics_path is not None:
        text = json.dumps(report.to_dict(), indent=2)
        atomic_write(metrics_path, lambda tmp: tmp.write_text(text))
    return report

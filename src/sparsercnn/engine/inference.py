"""Inference over a data loader and COCO evaluation of a model, single- or multi-process.

:func:`run_inference` runs the model and the post-processor over a loader of
:class:`~sparsercnn.structures.Batch` and returns per-image detections in original-image pixels
with timings. :func:`evaluate` does that on this process's shard of a data set, gathers the
COCO result records on rank 0 and scores them with
:class:`~sparsercnn.evaluation.CocoEvaluator`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from sparsercnn.data.loader import build_test_loader
from sparsercnn.engine.distributed import DistInfo, all_gather_object
from sparsercnn.evaluation import (
    CocoEvaluator,
    CocoResult,
    EvaluationResult,
    detections_to_coco_results,
    write_results_json,
)
from sparsercnn.model import PostProcessor
from sparsercnn.structures import Batch, Detections, Sample

logger = logging.getLogger(__name__)


class LabelMap(Protocol):
    """The part of :class:`~sparsercnn.data.categories.CategoryMap` evaluation needs."""

    @property
    def category_ids(self) -> list[int]: ...

    @property
    def names(self) -> list[str]: ...


class EvaluationDataset(Protocol):
    """A data set with COCO ground truth, like :class:`~sparsercnn.data.coco.CocoDataset`."""

    @property
    def category_map(self) -> LabelMap: ...

    def gt_dict(self) -> dict[str, Any]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


@dataclass
class Timing:
    """Wall-clock seconds of an inference pass.

    Attributes:
        num_images: images processed.
        model_seconds: the model's forward pass only (the device is synchronised around it);
            excludes data loading, host-to-device copies and post-processing.
        total_seconds: end to end, from asking the loader for the first batch to the last
            detections on the CPU: loading, transfer, forward and post-processing.
    """

    num_images: int = 0
    model_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def model_seconds_per_image(self) -> float:
        return self.model_seconds / max(self.num_images, 1)

    @property
    def total_seconds_per_image(self) -> float:
        return self.total_seconds / max(self.num_images, 1)


@dataclass
class Evaluation:
    """What :func:`evaluate` returns on rank 0: the COCO metrics and the slowest rank's timing."""

    result: EvaluationResult
    timing: Timing


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def run_inference(
    model: nn.Module,
    postprocessor: PostProcessor,
    loader: Iterable[Batch],
    num_stages: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[list[int], list[Detections], Timing]:
    """Detect objects in every batch of ``loader``.

    The model runs in eval mode under ``torch.no_grad`` (its previous mode is restored after).
    A DDP wrapper is unwrapped: inference needs no gradient synchronisation, and the ranks'
    shards may differ in length.

    Args:
        model: a :class:`~sparsercnn.model.SparseRCNN` (or a DDP wrapper of one).
        postprocessor: turns the model output into detections.
        loader: batches of input images with their ``original_sizes``.
        num_stages: run only the first k refinement stages (default all).
        device: where the images go; default the model's device.

    Returns:
        ``(image_ids, detections, timing)``: one entry per image in loader order; detections
        on the CPU with boxes in absolute xyxy pixels of the *original* image.
    """
    module: nn.Module = getattr(model, "module", model)
    target = torch.device(device) if device is not None else _model_device(module)
    was_training = module.training
    module.eval()
    image_ids: list[int] = []
    detections: list[Detections] = []
    timing = Timing()
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for batch in loader:
                images = [image.to(target, non_blocking=True) for image in batch.images]
                _synchronize(target)
                model_start = time.perf_counter()
                output = module(images, num_stages=num_stages)
                _synchronize(target)
                timing.model_seconds += time.perf_counter() - model_start
                results = postprocessor(output, batch.original_sizes)
                detections.extend(_to_cpu(result) for result in results)
                image_ids.extend(int(i) for i in batch.image_ids)
                timing.num_images += len(batch)
    finally:
        module.train(was_training)
    timing.total_seconds = time.perf_counter() - start
    return image_ids, detections, timing


def _to_cpu(detections: Detections) -> Detections:
    return Detections(
        boxes=detections["boxes"].cpu(),
        scores=detections["scores"].cpu(),
        labels=detections["labels"].cpu(),
    )


def evaluate(
    model: nn.Module,
    postprocessor: PostProcessor,
    dataset: EvaluationDataset,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    dist_info: DistInfo | None = None,
    num_stages: int | None = None,
    results_path: str | Path | None = None,
) -> Evaluation | None:
    """COCO bbox evaluation of ``model`` on ``dataset`` (test transform already in the dataset).

    Every rank runs its contiguous shard of the data set (``InferenceSampler``); the COCO result
    records are all-gathered to rank 0, which evaluates them. All ranks must call this function.

    Args:
        model: the detector (a DDP wrapper is unwrapped).
        postprocessor: turns model outputs into detections.
        dataset: images with COCO ground truth (``gt_dict()``) and a label map (``category_map``).
        batch_size: images per forward pass.
        num_workers: data-loading processes.
        dist_info: this process's place in the run (default: single process on the model's
            device).
        num_stages: evaluate the output of the first k stages (default all).
        results_path: when given, rank 0 also writes the COCO results JSON there.

    Returns:
        The metrics and timing on rank 0, ``None`` on the other ranks.
    """
    rank, world_size = (dist_info.rank, dist_info.world_size) if dist_info else (0, 1)
    device = dist_info.device if dist_info else None
    loader = build_test_loader(_as_dataset(dataset), batch_size, num_workers, rank, world_size)
    image_ids, detections, timing = run_inference(
        model, postprocessor, loader, num_stages=num_stages, device=device
    )
    category_ids = dataset.category_map.category_ids
    records = [
        detections_to_coco_results(image_id, det, category_ids)
        for image_id, det in zip(image_ids, detections, strict=True)
    ]
    gathered = all_gather_object((image_ids, records, timing))
    if rank != 0:
        return None
    evaluator = CocoEvaluator(dataset.gt_dict(), category_ids, dataset.category_map.names)
    for ids, results, _ in gathered:
        evaluator.extend(ids, results)
    timing = _log_timing([t for _, _, t in gathered])
    if results_path is not None:
        flat: list[CocoResult] = [
            r for _, results, _ in gathered for image in results for r in image
        ]
        write_results_json(flat, results_path)
        logger.info("wrote %d COCO result records to %s", len(flat), results_path)
    return Evaluation(result=evaluator.evaluate(), timing=timing)


def _as_dataset(dataset: EvaluationDataset) -> Dataset[Sample]:
    if not isinstance(dataset, Dataset) or not isinstance(dataset, Sized):
        raise TypeError(
            f"{type(dataset).__name__} must be a torch Dataset with __len__ (e.g. CocoDataset)"
        )
    return dataset


def _log_timing(timings: list[Timing]) -> Timing:
    """Log and return the slowest rank's per-image times (what bounds the wall clock)."""
    slowest = max(timings, key=lambda t: t.total_seconds)
    logger.info(
        "inference on %d images: %.4f s/image end to end, %.4f s/image in the model "
        "(slowest of %d processes)",
        sum(t.num_images for t in timings),
        slowest.total_seconds_per_image,
        slowest.model_seconds_per_image,
        len(timings),
    )
    return slowest

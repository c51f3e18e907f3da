"""Accuracy of every refinement stage, and the latency of stopping after the first k.

Deep supervision trains every stage to be a full detector, so one pass of the model with all
stages gives, through ``PostProcessor(..., stage=s)``, the COCO metrics of each stage's output
(:func:`evaluate_every_stage`); the last equals ordinary evaluation. The speed side is
:func:`measure_stage_latency`, which times ``model(images, num_stages=k)``. Together they say
how many stages a deployment needs (``--stages k`` in ``eval`` and ``predict``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.config import DEFAULT_NUM_WORKERS
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.loader import build_test_loader
from sparsercnn.engine.inference import evaluation_ground_truth
from sparsercnn.engine.model_evaluation import load_model_and_dataset
from sparsercnn.evaluation import CocoEvaluator, EvaluationResult
from sparsercnn.evaluation.units import format_percent
from sparsercnn.model import PostProcessor, SparseRCNN, build_postprocessor
from sparsercnn.model.inference import evaluating, model_device, run_model, synchronize
from sparsercnn.structures import detections_to_cpu
from sparsercnn.text import counted
from sparsercnn.visualization.diagnostic_plots import plot_stage_metrics

logger = logging.getLogger(__name__)


@dataclass
class StageMetrics:
    """COCO metrics (in [0, 1]) of one stage's output and the speed of stopping there.

    Attributes:
        stage: 1-based stage number ``k``.
        AP, AP50, AP75: COCO bbox AP@[.5:.95], AP50 and AP75 of stage ``k``'s detections.
        seconds_per_image: model time per image when running only the first ``k`` stages
            (batch of one), ``None`` when not measured.
    """

    stage: int
    AP: float
    AP50: float
    AP75: float
    seconds_per_image: float | None = None


@dataclass
class StageEvaluation:
    """What :func:`evaluate_stages` returns: one row per stage, first to last."""

    stages: list[StageMetrics]
    num_images: int
    num_latency_images: int
    device: str
    results: list[EvaluationResult] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every row, the image counts and the device."""
        return {
            "stages": [asdict(row) for row in self.stages],
            "num_images": self.num_images,
            "num_latency_images": self.num_latency_images,
            "device": self.device,
        }

    def format_table(self) -> str:
        """The rows as a table, AP values in percent, latency in ms per image."""
        lines = [
            f"per-stage COCO bbox evaluation on {counted(self.num_images, 'image')}; latency of "
            f"running only the first k stages on {self.device} "
            f"({counted(self.num_latency_images, 'image')})",
            f"  {'stage':>5} {'AP':>7} {'AP50':>7} {'AP75':>7} {'ms/image':>9}",
        ]
        for row in self.stages:
            ms = "-" if row.seconds_per_image is None else f"{1000 * row.seconds_per_image:.1f}"
            lines.append(
                f"  {row.stage:>5} {format_percent(row.AP):>7} {format_percent(row.AP50):>7} "
                f"{format_percent(row.AP75):>7} {ms:>9}"
            )
        return "\n".join(lines)


def evaluate_every_stage(
    model: SparseRCNN,
    postprocessor: PostProcessor,
    dataset: CocoDataset,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    batch_invariant: bool = True,
) -> list[EvaluationResult]:
    """COCO metrics of every stage's output, from one pass of the model with all stages.

    Args:
        model: the detector (eval mode during the pass, its mode restored after).
        postprocessor: applied to each stage (``stage=s``).
        dataset: images with the test transform and COCO ground truth.
        batch_size: images per forward pass.
        num_workers: data-loading processes.
        batch_invariant: only images of the same padded size share a forward pass.

    Returns:
        One :class:`EvaluationResult` per stage, first to last.
    """
    device = model_device(model)
    # One ground truth, prepared once, that every stage's evaluator scores against.
    ground_truth = evaluation_ground_truth(dataset)
    evaluators = [CocoEvaluator(ground_truth) for _ in range(model.num_stages)]
    with evaluating(model):
        for batch in build_test_loader(dataset, batch_size, num_workers):
            images = [image.to(device) for image in batch.images]
            output = run_model(model, images, batch_invariant=batch_invariant)
            for stage, evaluator in enumerate(evaluators):
                # As run_inference: a reduced JPEG's detections go by its pixel map.
                detections = postprocessor(output, batch.rescale_sizes, stage=stage)
                on_cpu = [detections_to_cpu(d) for d in detections]
                evaluator.update(
                    batch.image_ids, batch.to_original(on_cpu, postprocessor.clip_boxes)
                )
    return [evaluator.evaluate() for evaluator in evaluators]


def measure_stage_latency(
    model: SparseRCNN, images: Sequence[Tensor], *, warmup: int = 1
) -> list[float]:
    """Mean model time per image of ``model([image], num_stages=k)`` for ``k = 1 .. S``.

    Every image is run ``warmup`` times with all stages before any timing: each input size
    then has its kernels chosen and its memory allocated through every stage, so no ``k`` is
    timed with a cold cache (warming only the first image's size left the other sizes cold
    for ``k = 1`` alone, the first timed, which made stopping early look slower).

    Args:
        model: the detector (eval mode during timing, its mode restored after).
        images: ``(3, h, w)`` uint8 images after the test transform, run one at a time.
        warmup: untimed passes over every image, with all stages, before timing.

    Returns:
        ``S`` seconds per image (forward pass only; the device is synchronised around it).
    """
    if not images:
        raise ValueError("measure_stage_latency needs at least one image")
    device = model_device(model)
    inputs = [image.to(device) for image in images]
    seconds = []
    with evaluating(model):
        for _ in range(warmup):
            for image in inputs:
                model([image], num_stages=model.num_stages)
        for k in range(1, model.num_stages + 1):
            synchronize(device)
            start = time.perf_counter()
            for image in inputs:
                model([image], num_stages=k)
            synchronize(device)
            seconds.append((time.perf_counter() - start) / len(inputs))
    return seconds


def evaluate_stages(
    model: SparseRCNN,
    postprocessor: PostProcessor,
    dataset: CocoDataset,
    *,
    num_latency_images: int = 5,
    batch_size: int = 1,
    num_workers: int = 0,
    batch_invariant: bool = True,
) -> StageEvaluation:
    """Per-stage metrics (:func:`evaluate_every_stage`) and latency on the first images.

    Args:
        num_latency_images: images timed per ``k`` (0: no timing).
        See :func:`evaluate_every_stage` for the rest.
    """
    results = evaluate_every_stage(
        model,
        postprocessor,
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        batch_invariant=batch_invariant,
    )
    num_timed = min(num_latency_images, len(dataset))
    latency: list[float | None] = [None] * len(results)
    if num_timed > 0:
        images = [dataset[i].image for i in range(num_timed)]
        latency = list(measure_stage_latency(model, images))
    rows = [
        StageMetrics(stage=s + 1, AP=r.AP, AP50=r.AP50, AP75=r.AP75, seconds_per_image=t)
        for s, (r, t) in enumerate(zip(results, latency, strict=True))
    ]
    evaluation = StageEvaluation(
        stages=rows,
        num_images=results[-1].num_images if results else 0,
        num_latency_images=num_timed,
        device=str(model_device(model)),
        results=results,
    )
    logger.debug("%s", evaluation.format_table())
    return evaluation


def evaluate_model_file_stages(
    model_file: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    num_latency_images: int = 5,
    batch_size: int | None = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
    batch_invariant: bool = True,
    skip_invalid: bool = False,
) -> StageEvaluation:
    """:func:`evaluate_stages` of a model file on a COCO dataset (test transform of the model)."""
    loaded, dataset = load_model_and_dataset(
        model_file, json_path, image_dir, device, skip_invalid=skip_invalid
    )
    return evaluate_stages(
        loaded.model,
        build_postprocessor(loaded.config),
        dataset,
        num_latency_images=num_latency_images,
        batch_size=batch_size or loaded.config.input.test_batch_size,
        num_workers=num_workers,
        batch_invariant=batch_invariant,
    )


def write_stage_evaluation(evaluation: StageEvaluation, output_dir: str | Path) -> dict[str, Path]:
    """Write ``stages.json`` (:meth:`StageEvaluation.to_dict`) and ``stages.png`` (AP and
    latency against the number of stages) into ``output_dir``.

    Returns:
        ``{"json": ..., "plot": ...}``.
    """
    output_dir = Path(output_dir)
    rows = evaluation.stages
    times = [r.seconds_per_image for r in rows]
    plot = plot_stage_metrics(
        [r.stage for r in rows],
        [r.AP for r in rows],
        [r.AP50 for r in rows],
        [r.AP75 for r in rows],
        None if any(t is None for t in times) else [float(t or 0.0) for t in times],
        output_dir / "stages.png",
    )
    text = json.dumps(evaluation.to_dict(), indent=2)
    return {"json": atomic_write_text(output_dir / "stages.json", text), "plot": plot}

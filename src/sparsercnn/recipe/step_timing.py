"""A short timing of training steps, for the recipe's budget arithmetic.

:func:`measure_step_seconds` runs a few real optimiser steps (:class:`TrainStep`: forward,
set loss, backward, clipping, AdamW, autocast as configured) of a freshly built model on random
images of one size, and :class:`StepCost` fits ``seconds = fixed + per_pixel * pixels`` through
two such timings, so the recipe can price every candidate input size without timing each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from sparsercnn.config import Config
from sparsercnn.engine.train_step import TrainStep, autocast_dtype, build_adamw
from sparsercnn.loss import build_criterion
from sparsercnn.model import build_model
from sparsercnn.structures import Batch, Target

# Steps timed after the first, which pays for allocations and kernel selection. The fastest is
# kept: other work on the machine only ever slows a step down.
TIMED_STEPS = 3


def synthetic_batch(
    batch_size: int, size: tuple[int, int], num_classes: int, num_boxes: int, seed: int = 0
) -> Batch:
    """Random ``(3, h, w)`` uint8 images with ``num_boxes`` random boxes each."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    images, targets = [], []
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    for _ in range(batch_size):
        images.append(
            torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
        )
        corners = torch.rand(num_boxes, 2, 2, generator=generator).sort(dim=1).values
        boxes = corners.transpose(1, 2).reshape(num_boxes, 4)[:, [0, 2, 1, 3]] * scale
        labels = torch.randint(0, num_classes, (num_boxes,), generator=generator)
        targets.append(Target(boxes=boxes, labels=labels))
    return Batch(
        images=images,
        targets=targets,
        image_ids=list(range(batch_size)),
        original_sizes=[size] * batch_size,
    )


def measure_step_seconds(
    cfg: Config, size: tuple[int, int], device: torch.device, num_boxes: int = 8
) -> float:
    """Seconds of a training step of ``cfg``'s model at ``cfg.train.batch_size`` images of
    ``size`` ``(h, w)`` on ``device``: the fastest of ``TIMED_STEPS`` steps after a first one.

    The model starts from random weights; the timing does not depend on them.
    """
    model = build_model(cfg).to(device)
    batch = synthetic_batch(cfg.train.batch_size, size, cfg.model.num_classes, num_boxes)
    params = [p for p in model.parameters() if p.requires_grad]
    step = TrainStep(
        model,
        build_criterion(cfg),
        build_adamw(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay),
        None,
        device=device,
        amp_dtype=autocast_dtype(device, cfg.train.amp),
        grad_accum_steps=1,
        clip_grad_norm=cfg.train.clip_grad_norm,
        max_nonfinite_steps=cfg.train.max_nonfinite_steps,
        distributed=False,
    )

    def batches() -> Iterator[Batch]:
        while True:
            yield batch

    loader = batches()
    seconds = []
    for iteration in range(TIMED_STEPS + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step(loader, lr=cfg.train.lr, iteration=iteration)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return min(seconds[1:])


@dataclass(frozen=True)
class StepCost:
    """Seconds of one training step as a function of the input size:
    ``fixed + per_pixel * h * w`` (the head's cost does not grow with the image, the
    backbone's and FPN's grow with its pixels)."""

    fixed: float
    per_pixel: float

    @staticmethod
    def fit(small: tuple[int, float], large: tuple[int, float]) -> StepCost:
        """Through two ``(pixels, seconds)`` timings, ``small`` with fewer pixels.

        A larger input never costs less; when the timings say so (the machine was busier during
        the first), the larger one is taken as all pixel cost: pessimistic for large inputs,
        which is the safe side.
        """
        (p0, s0), (p1, s1) = small, large
        if not 0 < p0 < p1:
            raise ValueError(f"need 0 < small pixels < large pixels, got {p0} and {p1}")
        if s1 <= s0:
            return StepCost(fixed=0.0, per_pixel=s1 / p1)
        per_pixel = (s1 - s0) / (p1 - p0)
        return StepCost(fixed=max(s0 - per_pixel * p0, 0.0), per_pixel=per_pixel)

    def seconds(self, pixels: float) -> float:
        """Seconds of a step whose (padded) images have ``pixels`` pixels each."""
        return self.fixed + self.per_pixel * pixels

"""Timing of real training steps on a fixed batch, for benchmarks and the recipe's arithmetic.

:func:`time_train_steps` builds a fresh model from a config and runs optimiser steps through
:class:`~sparsercnn.engine.train_step.TrainStep` (forward, set loss, backward, clipping, AdamW,
autocast as configured), so that what is timed is what ``sparsercnn train`` runs.
:func:`synthetic_batch` makes the random images and boxes such timings need.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch import Tensor

from sparsercnn.config import Config
from sparsercnn.engine.train_step import TrainStep, autocast_dtype, build_adamw
from sparsercnn.loss import build_criterion
from sparsercnn.model import build_model
from sparsercnn.model.inference import synchronize
from sparsercnn.structures import Batch, Target


def synthetic_batch(
    batch_size: int,
    size: tuple[int, int],
    num_classes: int,
    num_boxes: int,
    seed: int = 0,
    boxes: Tensor | None = None,
) -> Batch:
    """Random ``(3, h, w)`` uint8 images of ``size`` ``(h, w)``, each with ``num_boxes`` random
    boxes and labels, or with the given ``boxes`` (``(M, 4)`` xyxy pixels, the same in every
    image; ``num_boxes`` is then ignored)."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    images, targets = [], []
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    for _ in range(batch_size):
        images.append(
            torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
        )
        if boxes is None:
            corners = torch.rand(num_boxes, 2, 2, generator=generator).sort(dim=1).values
            image_boxes = corners.transpose(1, 2).reshape(num_boxes, 4)[:, [0, 2, 1, 3]] * scale
        else:
            image_boxes = boxes.to(torch.float32)
        labels = torch.randint(0, num_classes, (len(image_boxes),), generator=generator)
        targets.append(Target(boxes=image_boxes, labels=labels))
    return Batch(
        images=images,
        targets=targets,
        image_ids=list(range(batch_size)),
        original_sizes=[size] * batch_size,
    )


def time_train_steps(
    cfg: Config, batch: Batch, device: torch.device, num_steps: int
) -> list[float]:
    """Seconds of each of ``num_steps`` training steps of ``cfg``'s model on ``batch``.

    The model starts from random weights (the timing does not depend on them) and trains in
    fp32, or under bf16 autocast where ``cfg.train.amp`` asks for it and the device runs bf16
    natively. The first step pays for allocations and kernel selection: callers drop it.
    """
    model = build_model(cfg).to(device)
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
    for iteration in range(num_steps):
        synchronize(device)
        start = time.perf_counter()
        step(loader, lr=cfg.train.lr, iteration=iteration)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds

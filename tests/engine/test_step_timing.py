"""Tests for the timing of real training steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from sparsercnn.engine.step_timing import synthetic_batch, time_train_steps
from sparsercnn.presets import get_preset


def test_synthetic_batch_has_valid_boxes_inside_the_images() -> None:
    batch = synthetic_batch(3, (40, 60), num_classes=4, num_boxes=5)
    assert [tuple(image.shape) for image in batch.images] == [(3, 40, 60)] * 3
    for target in batch.targets:
        boxes = target.boxes
        assert boxes.shape == (5, 4) and target.labels.max() < 4
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert boxes[:, 0::2].max() <= 60 and boxes[:, 1::2].max() <= 40


def test_synthetic_batch_takes_given_boxes_for_every_image() -> None:
    boxes = torch.tensor([[10.0, 20, 30, 40], [0, 0, 5, 5]])
    batch = synthetic_batch(2, (50, 60), num_classes=3, num_boxes=9, boxes=boxes)
    for target in batch.targets:
        assert torch.equal(target.boxes, boxes) and len(target.labels) == 2


def test_time_train_steps_times_each_step() -> None:
    cfg = get_preset("tiny")
    cfg.model.num_classes = 3
    batch = synthetic_batch(2, (64, 96), num_classes=3, num_boxes=2)
    seconds = time_train_steps(cfg, batch, torch.device("cpu"), num_steps=3)
    assert len(seconds) == 3 and all(0 < s < 60 for s in seconds)


def test_time_train_steps_makes_no_collective_call_in_a_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torchrun, rank 0 times steps for the recipe while the other ranks wait for its
    choice: a collective call there (the loss normaliser's all-reduce) hung the run."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 3
    batch = synthetic_batch(2, (64, 96), num_classes=3, num_boxes=2)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)

    def collective(*args: object, **kwargs: object) -> None:
        raise AssertionError("a collective call: the other ranks are not there to answer")

    for name in ("all_reduce", "all_gather", "broadcast", "barrier"):
        monkeypatch.setattr(dist, name, collective)
    try:
        assert len(time_train_steps(cfg, batch, torch.device("cpu"), num_steps=2)) == 2
    finally:
        monkeypatch.undo()
        dist.destroy_process_group()

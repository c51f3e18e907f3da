"""One training step under fp16 autocast with a gradient scaler, on the CPU.

The fp16 path is taken on CUDA GPUs without bf16; ``torch.amp.GradScaler("cpu")`` lets it run
here: the loss is scaled for backward, gradients are unscaled before they are clipped, and a
step whose gradients overflow is skipped by the scaler, which lowers its scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from sparsercnn.cli.main import report_error
from sparsercnn.engine.train_step import (
    NonFiniteLossError,
    TrainStep,
    build_adamw,
    grad_scaler_for,
)
from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.loss import SetLoss
from sparsercnn.structures import Batch

INIT_SCALE = 1024.0


class LinearDetector(nn.Module):
    """Stands in for the detector: one linear layer, its output as the only stage's logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)

    def forward(self, images: list[Tensor]) -> Any:
        logits = self.linear(torch.stack([image.flatten()[:4] for image in images]))
        return SimpleNamespace(stages=[SimpleNamespace(logits=logits, boxes=logits)])


class SquareCriterion:
    """Mean square of the logits, in fp32; remembers the dtype the model computed them in."""

    def __init__(self) -> None:
        self.logits_dtypes: list[torch.dtype] = []

    def __call__(self, output: Any, targets: list[Any]) -> SetLoss:
        logits = output.stages[0].logits
        self.logits_dtypes.append(logits.dtype)
        total = logits.float().pow(2).mean()
        return SetLoss(total=total, terms={"loss_cls/stage0": total}, indices=[])


def batches() -> Iterator[Batch]:
    generator = torch.Generator().manual_seed(1)
    while True:
        images = [torch.randn(3, 2, 2, generator=generator) * 4 for _ in range(2)]
        yield Batch(images=images, targets=[], image_ids=[1, 2], original_sizes=[(2, 2)] * 2)


def fp16_step(
    model: nn.Module, clip_grad_norm: float, max_nonfinite_steps: int = 10
) -> tuple[TrainStep, SquareCriterion, torch.amp.GradScaler]:
    criterion = SquareCriterion()
    scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE)
    step = TrainStep(
        model,
        criterion,
        build_adamw(list(model.parameters()), lr=0.1, weight_decay=0.0),
        scaler,
        device=torch.device("cpu"),
        amp_dtype=torch.float16,
        grad_accum_steps=1,
        clip_grad_norm=clip_grad_norm,
        max_nonfinite_steps=max_nonfinite_steps,
        distributed=False,
    )
    return step, criterion, scaler


def reference_grad_norm() -> float:
    """The fp32 gradient norm of the first batch's loss, without autocast or scaling."""
    model = LinearDetector()
    SquareCriterion()(model(next(batches()).images), []).total.backward()
    return float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())


def test_fp16_needs_a_scaler_and_bf16_or_fp32_do_not() -> None:
    scaler = grad_scaler_for(torch.float16, torch.device("cpu"))
    assert scaler is not None and scaler.is_enabled()
    assert grad_scaler_for(torch.bfloat16, torch.device("cpu")) is None
    assert grad_scaler_for(None, torch.device("cpu")) is None


def test_fp16_step_scales_the_loss_and_unscales_before_clipping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = LinearDetector()
    before = [p.detach().clone() for p in model.parameters()]
    expected_norm = reference_grad_norm()
    clip = expected_norm / 10
    step, criterion, scaler = fp16_step(model, clip_grad_norm=clip)
    seen: dict[str, float] = {}
    unscale = scaler.unscale_

    def recording_unscale(optimizer: torch.optim.Optimizer) -> None:
        seen["scaled"] = float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
        unscale(optimizer)

    optimizer_step = step.optimizer.step

    def recording_step(*args: Any, **kwargs: Any) -> Any:
        seen["applied"] = float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
        return optimizer_step(*args, **kwargs)

    monkeypatch.setattr(scaler, "unscale_", recording_unscale)
    monkeypatch.setattr(step.optimizer, "step", recording_step)

    stats = step(batches(), lr=0.1, iteration=0)

    assert criterion.logits_dtypes == [torch.float16]  # the model ran under fp16 autocast
    assert seen["scaled"] == pytest.approx(INIT_SCALE * expected_norm, rel=1e-2)
    # The reported norm is the true one, and the update sees it clipped: unscaled first.
    assert stats.grad_norm == pytest.approx(expected_norm, rel=1e-2)
    assert seen["applied"] == pytest.approx(clip, rel=1e-3)
    assert stats.applied and math.isfinite(stats.loss)
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert scaler.get_scale() == INIT_SCALE  # no overflow: the scale is kept


def test_overflowing_gradients_are_skipped_by_the_scaler() -> None:
    model = LinearDetector()
    model.linear.weight.register_hook(lambda grad: torch.full_like(grad, math.inf))
    before = [p.detach().clone() for p in model.parameters()]
    step, _, scaler = fp16_step(model, clip_grad_norm=1.0, max_nonfinite_steps=2)
    loader = batches()
    for iteration in range(3):  # more than max_nonfinite_steps: overflow is not a failure
        stats = step(loader, lr=0.1, iteration=iteration)
        assert math.isfinite(stats.loss) and not math.isfinite(stats.grad_norm)
        assert not stats.applied  # the scaler skipped the update
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert scaler.get_scale() == INIT_SCALE / 8  # halved at each skipped step
    assert step.skipped_steps == 3 and step.consecutive_nonfinite == 0


class NaNCriterion:
    """A loss that is NaN at every step."""

    def __call__(self, output: Any, targets: list[Any]) -> SetLoss:
        total = output.stages[0].logits.float().mean() * math.nan
        return SetLoss(total=total, terms={"loss_cls/stage0": total}, indices=[])


def test_repeated_nonfinite_losses_stop_training_with_advice_and_no_crash_report() -> None:
    """Was: "sparsercnn train: failed: NonFiniteLossError: ... resume from the last good
    checkpoint of the run." and the --debug hint, as for a crash, though the message says what
    to change. Now an ExplainedFailure: its message alone (still a RuntimeError)."""
    model = LinearDetector()
    step = TrainStep(
        model,
        NaNCriterion(),
        build_adamw(list(model.parameters()), lr=0.1, weight_decay=0.0),
        None,
        device=torch.device("cpu"),
        amp_dtype=None,
        grad_accum_steps=1,
        clip_grad_norm=1.0,
        max_nonfinite_steps=2,
        distributed=False,
    )
    loader = batches()
    assert not step(loader, lr=0.1, iteration=0).applied
    with pytest.raises(NonFiniteLossError) as info:
        step(loader, lr=0.1, iteration=1)
    assert isinstance(info.value, ExplainedFailure) and isinstance(info.value, RuntimeError)
    assert report_error("train", info.value) == (
        "sparsercnn train: failed: 2 consecutive steps with a non-finite loss or gradient norm "
        "(train.max_nonfinite_steps=2), the last at iteration 1. Lower the learning rate "
        "(train.lr), check the annotations for degenerate boxes, or turn off train.amp, then "
        "resume from the last good checkpoint of the run."
    )

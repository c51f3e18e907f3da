"""One optimiser step of training: micro-batches, mixed precision, clipping, non-finite guard.

:class:`TrainStep` takes ``grad_accum_steps`` batches from the training loader, runs the model
(under autocast when mixed precision is on) and the criterion (always fp32), back-propagates the
averaged loss, clips the whole-model gradient norm (spec 9: L2, max 1.0) and applies AdamW,
unless the loss or the gradient norm is not finite on some rank; then the step is skipped, and
after ``max_nonfinite_steps`` skipped steps in a row training stops with an error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from sparsercnn.engine.metrics_log import StepStats
from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.loss import NonFiniteCostError, SetLoss
from sparsercnn.runtime import fast_bf16_supported
from sparsercnn.structures import Batch, ModelOutput, Target

logger = logging.getLogger(__name__)

Criterion = Callable[[ModelOutput, list[Target]], SetLoss]


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype: bf16 where the device runs it natively, fp16 on older GPUs, and
    ``None`` (fp32) on CPUs that would only emulate bf16 (ten times slower than fp32)."""
    if not enabled:
        return None
    if fast_bf16_supported(device):
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16
    logger.warning(
        "mixed precision asked for, but %s has no native bf16 (on CPUs: AVX-512 or ARM BF16); "
        "training in fp32, which is faster here",
        device,
    )
    return None


def grad_scaler_for(
    amp_dtype: torch.dtype | None, device: torch.device
) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None


def build_adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (spec 9) with its fused kernel where this torch has one for the parameters' device
    (CUDA; CPU since torch 2.4): one update op per step instead of about ten per parameter,
    which on a CPU was 5% of a demo training step. Elsewhere the multi-tensor version."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


class NonFiniteLossError(ExplainedFailure, RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient norm; the message says what
    to change before resuming."""


class TrainStep:
    """Runs optimiser steps for the trainer.

    Args:
        model: the detector, or its ``DistributedDataParallel`` wrapper.
        criterion: ``criterion(output, targets) -> SetLoss``.
        optimizer: the optimiser; its learning rate is set on every call.
        scaler: fp16 gradient scaler, or ``None``.
        device: where the batches go.
        amp_dtype: autocast dtype for the model's forward pass; ``None`` trains in fp32.
        grad_accum_steps: micro-batches per step (gradients summed, loss averaged).
        clip_grad_norm: max whole-model gradient L2 norm; ``<= 0`` disables clipping.
        max_nonfinite_steps: consecutive skipped steps after which :class:`NonFiniteLossError`
            is raised.
        distributed: agree with the other ranks on skipping (one all-reduce per step).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Criterion,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        *,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        grad_accum_steps: int,
        clip_grad_norm: float,
        max_nonfinite_steps: int,
        distributed: bool,
    ) -> None:
        if grad_accum_steps < 1:
            raise ValueError(f"train.grad_accum_steps must be >= 1, got {grad_accum_steps}")
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.scaler = scaler
        self.device = device
        self.amp_dtype = amp_dtype
        self.grad_accum_steps = grad_accum_steps
        self.clip_grad_norm = clip_grad_norm
        self.max_nonfinite_steps = max_nonfinite_steps
        self.distributed = distributed
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.skipped_steps = 0
        self.consecutive_nonfinite = 0

    def __call__(self, loader: Iterator[Batch], lr: float, iteration: int) -> StepStats:
        """Take step ``iteration`` (0-based) with learning rate ``lr``.

        Raises:
            NonFiniteLossError: after ``max_nonfinite_steps`` skipped steps in a row.
        """
        start = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        data_seconds = 0.0
        skipped_images = 0
        totals: list[Tensor] = []
        terms: dict[str, Tensor] = {}
        for micro in range(self.grad_accum_steps):
            data_start = time.perf_counter()
            batch = next(loader)
            data_seconds += time.perf_counter() - data_start
            skipped_images += len(batch.replaced_files)
            with self._sync_context(last=micro == self.grad_accum_steps - 1):
                loss = self._forward_backward(batch)
            if loss is None:  # non-finite matching cost: the step will be skipped
                totals.append(torch.tensor(math.nan))
                continue
            totals.append(loss.total.detach().cpu())
            for key, value in loss.terms.items():
                share = value.detach() / self.grad_accum_steps
                terms[key] = terms[key] + share if key in terms else share
        grad_norm = self._unscale_and_clip()
        mean_loss = float(torch.stack(totals).mean())
        applied = self._apply(mean_loss, grad_norm, iteration)
        self.optimizer.zero_grad(set_to_none=True)
        return StepStats(
            terms={key: float(value) for key, value in terms.items()},
            loss=mean_loss,
            grad_norm=grad_norm,
            lr=lr,
            seconds=time.perf_counter() - start,
            data_seconds=data_seconds,
            applied=applied,
            skipped_images=skipped_images,
        )

    def _sync_context(self, last: bool) -> AbstractContextManager[Any]:
        """DDP all-reduces gradients on the last micro-batch of a step only."""
        if last or not isinstance(self.model, DistributedDataParallel):
            return nullcontext()
        return self.model.no_sync()

    def _forward_backward(self, batch: Batch) -> SetLoss | None:
        """Forward, loss and backward of one micro-batch; ``None`` when matching found
        non-finite costs (diverged predictions), in which case the step must be skipped."""
        images = [image.to(self.device, non_blocking=True) for image in batch.images]
        use_amp = self.amp_dtype is not None
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=use_amp):
            output = self.model(images)
        try:
            loss = self.criterion(output, batch.targets)  # fp32 inside, whatever the autocast
        except NonFiniteCostError as error:
            logger.warning("%s", error)
            # Backpropagate zero through every output so this rank still joins DDP's gradient
            # all-reduce; the non-finite loss then makes every rank skip the step.
            zero = sum(stage.logits.sum() + stage.boxes.sum() for stage in output.stages)
            (zero * 0.0).backward()
            return None
        scaled = loss.total / self.grad_accum_steps
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()
        return loss

    def _unscale_and_clip(self) -> float:
        """Whole-model L2 gradient norm before clipping; gradients clipped at clip_grad_norm."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.clip_grad_norm if self.clip_grad_norm > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm, error_if_nonfinite=False)
        return float(norm)

    def _apply(self, loss: float, grad_norm: float, iteration: int) -> bool:
        """Step unless the loss or gradient norm is non-finite on any rank; True if stepped.

        With an fp16 scaler, overflowing gradients are the scaler's business (it skips the
        update and lowers the scale); only a non-finite loss counts as a failure then.
        """
        finite = math.isfinite(loss) and (self.scaler is not None or math.isfinite(grad_norm))
        if self.distributed:
            flag = torch.tensor([float(finite)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item() > 0)
        if finite:
            self.consecutive_nonfinite = 0
            if self.scaler is None:
                self.optimizer.step()
                return True
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            # The scaler skips the update and lowers the scale when gradients overflowed.
            if self.scaler.get_scale() < scale:
                self.skipped_steps += 1
                logger.debug("iteration %d: fp16 gradients overflowed; step skipped", iteration)
                return False
            return True
        if self.scaler is not None:
            self.scaler.update()
        self._count_skipped(loss, grad_norm, iteration)
        return False

    def _count_skipped(self, loss: float, grad_norm: float, iteration: int) -> None:
        self.skipped_steps += 1
        self.consecutive_nonfinite += 1
        logger.warning(
            "iteration %d: non-finite loss (%s) or gradient norm (%s); step skipped (%d in a row)",
            iteration,
            loss,
            grad_norm,
            self.consecutive_nonfinite,
        )
        if self.consecutive_nonfinite >= self.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"{self.consecutive_nonfinite} consecutive steps with a non-finite loss or "
                f"gradient norm (train.max_nonfinite_steps={self.max_nonfinite_steps}), the "
                f"last at iteration {iteration}. Lower the learning rate (train.lr), check the "
                "annotations for degenerate boxes, or turn off train.amp, then resume from the "
                "last good checkpoint of the run."
            )

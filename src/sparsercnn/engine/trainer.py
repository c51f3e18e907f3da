"""The iteration-based training loop of Sparse R-CNN (spec 9), single- or multi-process.

:class:`Trainer` builds the model, the criterion and AdamW from a
:class:`~sparsercnn.config.Config`, then :meth:`Trainer.train` runs ``max_iter`` optimiser steps
(each one a :class:`~sparsercnn.engine.train_step.TrainStep`: accumulation, mixed precision,
clipping, non-finite guard) with warm-up and step decay of the learning rate, periodic
checkpoints and evaluation, an optional wall-clock budget, metrics in ``metrics.jsonl`` and model
files at the end. A run resumed from its last checkpoint continues bit-identically on the CPU.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sparsercnn.atomic_file import atomic_write
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.loader import build_train_loader
from sparsercnn.engine.checkpoint import (
    list_checkpoints,
    load_training_checkpoint,
    restore_rng_states,
    rng_states,
    save_training_checkpoint,
)
from sparsercnn.engine.distributed import DistInfo, all_gather_object, barrier, default_device
from sparsercnn.engine.inference import Evaluation, EvaluationDataset, evaluate
from sparsercnn.engine.lr_schedule import Schedule, fit_schedule_to_budget, lr_factor, scaled_lr
from sparsercnn.engine.metrics_log import LogWindow, MetricsLog
from sparsercnn.engine.model_init import prepare_model
from sparsercnn.engine.time_budget import FINISH_OVERHEAD_S, TimeBudget, estimate_eval_seconds
from sparsercnn.engine.train_step import (
    TrainStep,
    autocast_dtype,
    build_adamw,
    grad_scaler_for,
)
from sparsercnn.evaluation.units import format_ap
from sparsercnn.loss import build_criterion
from sparsercnn.model import build_model, build_postprocessor
from sparsercnn.model_file import load_state_dict_strict, save_model_file
from sparsercnn.structures import Sample

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` did and wrote (paths are ``None`` where nothing was written,
    e.g. on ranks other than 0).

    Attributes:
        iteration: optimiser steps taken when training ended.
        stopped_early: the time budget ended training before the configured ``max_iter``.
        last_losses: ``loss``, every term and ``grad_norm`` of the last log window.
        final_metrics: the last evaluation (``EvaluationResult.to_dict()``), rank 0 only.
        best_metrics: the evaluation with the highest AP in this invocation, rank 0 only.
        final_evaluation: the last evaluation with its detections, rank 0 only.
        best_evaluation: the evaluation of ``model_best`` with its detections, rank 0 only
            (``None`` when this invocation wrote no ``model_best``).
        best_iteration: the iteration of the best AP (also across a resume).
        skipped_steps: steps skipped for a non-finite loss or gradient norm.
    """

    iteration: int
    stopped_early: bool
    last_losses: dict[str, float]
    final_metrics: dict[str, Any] | None
    best_metrics: dict[str, Any] | None
    best_iteration: int | None
    skipped_steps: int
    output_dir: Path
    final_evaluation: Evaluation | None = None
    best_evaluation: Evaluation | None = None
    checkpoint_path: Path | None = None
    config_path: Path | None = None
    metrics_path: Path | None = None
    model_final_path: Path | None = None
    model_best_path: Path | None = None
    curves_path: Path | None = None


def _due(iteration: int, period: int) -> bool:
    return period > 0 and iteration % period == 0


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python ``random`` and NumPy's global generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


class Trainer:
    """Trains a Sparse R-CNN with the recipe of ``cfg.train`` (spec 9).

    AdamW over every trainable parameter in one group (weight decay on all of them, spec 9);
    ``lr = scaled_lr(...) * lr_factor(iteration)`` set before each step.

    Args:
        cfg: the resolved configuration (copied; the caller's object is never modified).
        train_dataset: map-style dataset of training samples whose ``__getitem__`` accepts
            ``(index, sample_seed)`` (``CocoDataset`` with the training transform).
        output_dir: where ``config.json``, ``metrics.jsonl``, checkpoints, the model files and
            ``curves.png`` go.
        val_dataset: evaluated every ``cfg.train.eval_period`` iterations and at the end
            (``CocoDataset`` with the test transform); ``None`` skips evaluation.
        device: where to train when ``dist_info`` is not given (default: GPU 0 if present).
        resume: continue from the last checkpoint in ``output_dir``; a ``cfg`` with a larger
            ``max_iter`` or other ``steps`` changes the schedule from there on.
        time_budget_minutes: wall-clock limit of this invocation (from construction, the final
            checkpoint and evaluation included): the schedule is shortened to fit after a few
            measured iterations, and training stops early if time still runs out.
        dist_info: this process's place in a multi-process run (``init_distributed()``).
        categories: the label map saved with checkpoints and models; default
            ``train_dataset.category_map``.
        progress: show a progress bar (rank 0 only).
    """

    def __init__(
        self,
        cfg: Config,
        train_dataset: Dataset[Sample],
        output_dir: str | Path,
        val_dataset: EvaluationDataset | None = None,
        device: torch.device | str | None = None,
        resume: bool = False,
        time_budget_minutes: float | None = None,
        dist_info: DistInfo | None = None,
        categories: CategoryMap | None = None,
        progress: bool = True,
    ) -> None:
        start = time.perf_counter()
        self.cfg = copy.deepcopy(cfg)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.output_dir = Path(output_dir)
        self.dist = dist_info or DistInfo(device=torch.device(device or default_device()))
        self.device = self.dist.device
        self.progress = progress
        self.budget = None
        if time_budget_minutes is not None:
            self.budget = TimeBudget(60.0 * time_budget_minutes, start)
        self.categories = self._resolve_categories(categories)
        if not resume and list_checkpoints(self.output_dir):
            raise FileExistsError(
                f"{self.output_dir} already holds training checkpoints; resume that run or "
                "choose another output folder"
            )
        self.metrics = MetricsLog(self.output_dir / "metrics.jsonl")

        # Denormal floats (tiny Adam second moments, tiny gradients) make CPU arithmetic tens of
        # times slower; flushing them to zero changes nothing measurable in training.
        torch.set_flush_denormal(True)
        seed_everything(self.cfg.train.seed)
        self.model = build_model(self.cfg)
        prepare_model(self.model, self.cfg, load_weights=not resume)
        self.model.to(self.device)
        self.postprocessor = build_postprocessor(self.cfg)
        self.optimizer = build_adamw(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=self.cfg.train.lr,
            weight_decay=self.cfg.train.weight_decay,
        )
        self.amp_dtype = autocast_dtype(self.device, self.cfg.train.amp)
        self.scaler = grad_scaler_for(self.amp_dtype, self.device)
        # Each rank sees different data; it also gets its own dropout masks.
        seed_everything(self.cfg.train.seed + self.dist.rank)

        self.iteration = 0
        self.best_ap: float | None = None
        self.best_iteration: int | None = None
        self.best_metrics: dict[str, Any] | None = None
        self.final_metrics: dict[str, Any] | None = None
        self.final_evaluation: Evaluation | None = None
        self.best_evaluation: Evaluation | None = None
        self.last_eval_iteration: int | None = None
        self.last_checkpoint_iteration: int | None = None
        self.checkpoint_path: Path | None = None
        self.eval_seconds: float | None = None
        self.checkpoint_seconds = 0.0
        self.last_losses: dict[str, float] = {}
        if resume:
            self._resume()
        train = self.cfg.train
        self.configured_schedule = Schedule(train.max_iter, train.steps, train.warmup_iters)
        self.step = TrainStep(
            self._wrap_ddp(),
            build_criterion(self.cfg),
            self.optimizer,
            self.scaler,
            device=self.device,
            amp_dtype=self.amp_dtype,
            grad_accum_steps=self.cfg.train.grad_accum_steps,
            clip_grad_norm=self.cfg.train.clip_grad_norm,
            max_nonfinite_steps=self.cfg.train.max_nonfinite_steps,
            distributed=self.dist.is_distributed,
        )

    def path(self, name: str) -> Path:
        """Output file ``name`` (``config.json``, ``model_final.safetensors``, ...)."""
        return self.output_dir / name

    @property
    def total_batch_size(self) -> int:
        """Images per optimiser step over all processes and micro-batches."""
        train = self.cfg.train
        return train.batch_size * self.dist.world_size * train.grad_accum_steps

    @property
    def base_lr(self) -> float:
        """The configured lr after the linear scaling rule."""
        train = self.cfg.train
        return scaled_lr(
            train.lr, self.total_batch_size, train.reference_batch_size, train.scale_lr
        )

    def _resolve_categories(self, categories: CategoryMap | None) -> CategoryMap:
        found = categories or getattr(self.train_dataset, "category_map", None)
        if found is None:
            raise ValueError(
                f"{type(self.train_dataset).__name__} has no category_map; pass categories= "
                "(a CategoryMap) so that checkpoints carry the label map"
            )
        if len(found) != self.cfg.model.num_classes:
            raise ValueError(
                f"the label map has {len(found)} classes but model.num_classes is "
                f"{self.cfg.model.num_classes}; set model.num_classes={len(found)}"
            )
        return found

    def _resume(self) -> None:
        """Restore model, optimizer, scaler, iteration, RNG and the best AP from the last
        checkpoint of the output folder."""
        state = load_training_checkpoint(self.output_dir)
        source = state["path"]
        saved_categories = CategoryMap.from_dict(state["categories"])
        if saved_categories != self.categories:
            raise ValueError(
                f"{source} was trained with {saved_categories}, but the data set has "
                f"{self.categories}; resume with the data set of that run"
            )
        load_state_dict_strict(self.model, state["model"], source=source)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = self.last_checkpoint_iteration = int(state["iteration"])
        self.checkpoint_path = Path(source)
        self.best_ap = state["extra"].get("best_ap")
        self.best_iteration = state["extra"].get("best_iteration")
        rng = state["rng"]
        restore_rng_states(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        self._log_config_changes(Config.from_dict(state["config"]))
        logger.info("resumed from %s at iteration %d", source, self.iteration)

    def _log_config_changes(self, saved: Config) -> None:
        old, new = saved.train, self.cfg.train
        before = (old.max_iter, old.steps, old.warmup_iters)
        if before != (new.max_iter, new.steps, new.warmup_iters):
            logger.info(
                "schedule %s on resume: max_iter %d -> %d, steps %s -> %s, warm-up %d -> %d",
                "extended" if new.max_iter > old.max_iter else "changed",
                old.max_iter,
                new.max_iter,
                list(old.steps),
                list(new.steps),
                old.warmup_iters,
                new.warmup_iters,
            )
        for section in ("model", "loss", "input"):
            was, now = vars(getattr(saved, section)), vars(getattr(self.cfg, section))
            changed = sorted(key for key in now if was.get(key) != now[key])
            if changed:
                logger.warning("resuming with changed %s settings: %s", section, changed)

    def _wrap_ddp(self) -> nn.Module:
        if not self.dist.is_distributed:
            return self.model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Without deep supervision the earlier stages' heads get no gradient.
        return DistributedDataParallel(
            self.model,
            device_ids=device_ids,
            find_unused_parameters=not self.cfg.loss.deep_supervision,
        )

    def train(self) -> TrainResult:
        """Run the remaining iterations, then checkpoint, evaluate and write the model files.

        Raises:
            NonFiniteLossError: ``max_nonfinite_steps`` consecutive steps had a non-finite loss
                or gradient norm.
        """
        train = self.cfg.train
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self.metrics.start(self.iteration)
        self._log_setup()
        loader = build_train_loader(
            self.train_dataset,
            train.batch_size,
            train.num_workers,
            train.seed,
            start_iter=self.iteration * train.grad_accum_steps,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        stopped_early = False
        window = LogWindow()
        bar = tqdm(
            total=train.max_iter,
            initial=self.iteration,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            disable=not (self.progress and self.dist.is_main),
        )
        if self.iteration >= train.max_iter:
            logger.info(
                "iteration %d already reaches max_iter %d: nothing to train (raise "
                "train.max_iter to continue the run)",
                self.iteration,
                train.max_iter,
            )
        with bar, logging_redirect_tqdm():
            while self.iteration < self.cfg.train.max_iter:
                stats = self.step(loader, self._lr(), self.iteration)
                self.iteration += 1
                window.steps.append(stats)
                bar.update(1)
                self._after_step(window, bar)
                if self._budget_exhausted(stats.seconds, bar):
                    stopped_early = True
                    break
        del loader
        return self._finish(stopped_early, window)

    def _log_setup(self) -> None:
        train = self.cfg.train
        logger.info(
            "training on %s x%d from iteration %d to %d: %d images/step (%d per process x %d "
            "micro-batches), lr %.3g (configured %.3g), steps %s, warm-up %d, amp %s",
            self.device,
            self.dist.world_size,
            self.iteration,
            train.max_iter,
            self.total_batch_size,
            train.batch_size,
            train.grad_accum_steps,
            self.base_lr,
            train.lr,
            list(train.steps),
            train.warmup_iters,
            self.amp_dtype or "off",
        )

    def _lr(self) -> float:
        train = self.cfg.train
        return self.base_lr * lr_factor(
            self.iteration,
            steps=train.steps,
            gamma=train.gamma,
            warmup_iters=train.warmup_iters,
            warmup_factor=train.warmup_factor,
        )

    def _after_step(self, window: LogWindow, bar: tqdm) -> None:
        """Log, checkpoint and evaluate when their period (``<= 0``: never) divides the
        iteration; the last iteration's checkpoint and evaluation happen in :meth:`_finish`."""
        train = self.cfg.train
        last = self.iteration == train.max_iter
        if _due(self.iteration, train.log_period) or last:
            self._log_window(window, bar)
        if _due(self.iteration, train.checkpoint_period):
            self._save_checkpoint()
        if self.val_dataset is not None and _due(self.iteration, train.eval_period) and not last:
            self._evaluate()

    def _log_window(self, window: LogWindow, bar: tqdm | None) -> None:
        """Write one record averaged over the window (and over ranks) and refresh the bar."""
        means = self._mean_over_ranks(window.loss_means())
        if means:
            self.last_losses = means
        record = {
            "iter": self.iteration,
            "lr": window.steps[-1].lr,
            **means,
            **window.timing(self.total_batch_size),
        }
        window.steps = []
        if self.dist.is_main:
            self.metrics.append(record)
            if bar is not None and means:
                bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{record['lr']:.3g}")

    def _mean_over_ranks(self, means: dict[str, float]) -> dict[str, float]:
        if not self.dist.is_distributed or not means:
            return means
        values = torch.tensor(list(means.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(means, (values / self.dist.world_size).tolist(), strict=True))

    def _write_config(self) -> None:
        text = self.cfg.to_json() + "\n"
        atomic_write(self.path("config.json"), lambda tmp: tmp.write_text(text))

    def _save_checkpoint(self) -> None:
        """Checkpoint on rank 0 with every rank's RNG states (all ranks must call this)."""
        start = time.perf_counter()
        states = all_gather_object(rng_states())
        if self.dist.is_main:
            self.checkpoint_path = save_training_checkpoint(
                self.output_dir,
                self.iteration,
                self.model,
                self.optimizer,
                self.scaler,
                self.cfg,
                self.categories,
                extra={"best_ap": self.best_ap, "best_iteration": self.best_iteration},
                keep=self.cfg.train.keep_checkpoints,
                rng=states,
            )
        self.last_checkpoint_iteration = self.iteration
        self.checkpoint_seconds = time.perf_counter() - start

    def _evaluate(self) -> None:
        """Evaluate on the validation set (all ranks); rank 0 records it and keeps the best."""
        assert self.val_dataset is not None
        start = time.perf_counter()
        evaluation = evaluate(
            self.model,
            self.postprocessor,
            self.val_dataset,
            batch_size=self.cfg.input.test_batch_size,
            num_workers=self.cfg.train.num_workers,
            dist_info=self.dist,
        )
        self.eval_seconds = time.perf_counter() - start
        self.last_eval_iteration = self.iteration
        if evaluation is None:
            return
        result = evaluation.result
        self.final_evaluation = evaluation
        self.final_metrics = result.to_dict()
        self.metrics.append({"iter": self.iteration, "eval": self.final_metrics})
        logger.info("evaluation at iteration %d:\n%s", self.iteration, result.format_table())
        if self.best_ap is None or self.best_ap < result.AP:
            self.best_ap, self.best_iteration = result.AP, self.iteration
            self.best_metrics, self.best_evaluation = self.final_metrics, evaluation
            save_model_file(
                self.path("model_best.safetensors"), self.model, self.cfg, self.categories
            )
            logger.info("new best AP %s at iteration %d", format_ap(result.AP), self.iteration)

    def _budget_exhausted(self, seconds: float, bar: tqdm) -> bool:
        """Fit the schedule once the pace is measured; say when time is up (rank 0 decides)."""
        if self.budget is None:
            return False
        if self.budget.record(seconds):
            self._fit_to_budget(bar)
        per_iter = self.budget.seconds_per_iter or seconds
        stop = self.budget.should_stop(per_iter, self._end_reserve(per_iter))
        stop = bool(all_gather_object(stop)[0]) and self.iteration < self.cfg.train.max_iter
        if stop:
            logger.warning(
                "time budget of %.1f min reached at iteration %d of %d; stopping",
                self.budget.seconds / 60.0,
                self.iteration,
                self.cfg.train.max_iter,
            )
        return stop

    def _end_reserve(self, seconds_per_iter: float) -> float:
        """Seconds the end of the run needs: final checkpoint, evaluation, model file, plot."""
        reserve = self.checkpoint_seconds + FINISH_OVERHEAD_S
        if self.val_dataset is not None:
            if self.eval_seconds is None:
                images_per_iter = self.cfg.train.batch_size * self.cfg.train.grad_accum_steps
                shard = -(-len(self.val_dataset) // self.dist.world_size)
                reserve += estimate_eval_seconds(seconds_per_iter, images_per_iter, shard)
            else:
                reserve += self.eval_seconds
        return reserve

    def _fit_to_budget(self, bar: tqdm) -> None:
        """Shorten max_iter, steps and warm-up proportionally so that the run fits the budget."""
        assert self.budget is not None and self.budget.seconds_per_iter is not None
        train = self.cfg.train
        measured = self.budget.seconds_per_iter
        # Periodic checkpoints and evaluations are spread over the iterations.
        per_iter = measured
        if train.checkpoint_period > 0:
            per_iter += self.checkpoint_seconds / train.checkpoint_period
        if self.val_dataset is not None and train.eval_period > 0:
            per_iter += (self.eval_seconds or 0.0) / train.eval_period
        old = Schedule(train.max_iter, train.steps, train.warmup_iters)
        # Always scale the configured schedule, so a faster pace later can lengthen the run again.
        fitted = fit_schedule_to_budget(
            self.configured_schedule,
            iteration=self.iteration,
            seconds_per_iter=per_iter,
            remaining_seconds=self.budget.remaining() - self._end_reserve(measured),
        )
        fitted = all_gather_object(fitted)[0]
        if fitted == old:
            logger.info("time budget: %.3f s/iteration, the schedule fits", measured)
            return
        train.max_iter, train.steps, train.warmup_iters = (
            fitted.max_iter,
            fitted.steps,
            fitted.warmup_iters,
        )
        bar.total = fitted.max_iter
        bar.refresh()
        logger.info(
            "time budget %.1f min at %.3f s/iteration: schedule shortened to max_iter %d "
            "(was %d), steps %s, warm-up %d",
            self.budget.seconds / 60.0,
            measured,
            fitted.max_iter,
            old.max_iter,
            list(fitted.steps),
            fitted.warmup_iters,
        )
        if self.dist.is_main:
            self._write_config()

    def _finish(self, stopped_early: bool, window: LogWindow) -> TrainResult:
        """Final checkpoint and evaluation, the final model file and the curves."""
        if window.steps:
            self._log_window(window, None)
        if self.last_checkpoint_iteration != self.iteration:
            self._save_checkpoint()
        if self.val_dataset is not None and self.last_eval_iteration != self.iteration:
            self._evaluate()
        result = TrainResult(
            iteration=self.iteration,
            stopped_early=stopped_early,
            last_losses=self.last_losses,
            final_metrics=self.final_metrics,
            best_metrics=self.best_metrics,
            best_iteration=self.best_iteration,
            skipped_steps=self.step.skipped_steps,
            output_dir=self.output_dir,
            final_evaluation=self.final_evaluation,
            best_evaluation=self.best_evaluation,
            checkpoint_path=self.checkpoint_path,
        )
        if self.dist.is_main:
            final = self.path("model_final.safetensors")
            save_model_file(final, self.model, self.cfg, self.categories)
            best = self.path("model_best.safetensors")
            result.model_final_path = final
            result.model_best_path = best if best.is_file() else None
            result.config_path, result.metrics_path = self.path("config.json"), self.metrics.path
            result.curves_path = self._plot_curves()
            logger.info(
                "training ended at iteration %d; outputs in %s", self.iteration, self.output_dir
            )
        barrier()
        return result

    def _plot_curves(self) -> Path | None:
        """Draw ``curves.png``; a plotting failure is logged, never fatal to a finished run."""
        # Imported here: matplotlib is slow to import and needed once per run.
        from sparsercnn.visualization.plots import plot_training_curves

        curves = self.path("curves.png")
        try:
            plot_training_curves(self.metrics.path, curves)
        except Exception as error:
            logger.warning("could not plot the training curves: %s", error)
            return None
        return curves

"""The iteration-based training loop of Sparse R-CNN (spec 9), single- or multi-process.

:class:`Trainer` builds what it optimises from a :class:`~sparsercnn.config.Config`
(:mod:`~sparsercnn.engine.training_parts`), then :meth:`Trainer.train` runs ``max_iter``
optimiser steps (each one a :class:`~sparsercnn.engine.train_step.TrainStep`: accumulation,
mixed precision, clipping, non-finite guard) with warm-up and step decay of the learning rate,
periodic checkpoints (:mod:`~sparsercnn.engine.checkpoint_writer`) and evaluations
(:mod:`~sparsercnn.engine.training_evaluation`), an optional wall-clock budget, metrics in
``metrics.jsonl`` and model files at the end; a run stopped early says how to resume it
(:mod:`~sparsercnn.engine.stop_notices`). A run resumed from a checkpoint continues
bit-identically on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sparsercnn.atomic_file import atomic_write
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.loader import build_train_loader
from sparsercnn.engine.checkpoint import check_run_folder
from sparsercnn.engine.checkpoint_writer import CheckpointWriter
from sparsercnn.engine.distributed import (
    DistInfo,
    any_rank,
    done_on_main,
    mean_over_ranks,
    release_from_traceback,
    wrap_ddp,
)
from sparsercnn.engine.evaluation_history import EvaluationHistory
from sparsercnn.engine.inference import EvaluationDataset
from sparsercnn.engine.interrupts import DeferredInterrupt
from sparsercnn.engine.lr_schedule import images_per_step, run_lr, train_lr_factor
from sparsercnn.engine.metrics_log import LogWindow, MetricsLog
from sparsercnn.engine.model_best import reconcile_model_best
from sparsercnn.engine.model_init import StartingWeights
from sparsercnn.engine.resume import CheckedResume, restore_training_state
from sparsercnn.engine.stop_notices import interrupt_notice, resume_hint
from sparsercnn.engine.time_budget import BudgetedSchedule, PeriodicWork, TimeBudget
from sparsercnn.engine.train_result import TrainResult
from sparsercnn.engine.train_step import TrainStep
from sparsercnn.engine.training_evaluation import TrainingEvaluator
from sparsercnn.engine.training_images import data_identity
from sparsercnn.engine.training_parts import build_training_parts
from sparsercnn.loss import build_criterion
from sparsercnn.model_file import save_model_file
from sparsercnn.run_files import (
    CONFIG_FILE,
    CURVES_FILE,
    METRICS_FILE,
    MODEL_BEST_FILE,
    MODEL_FINAL_FILE,
)
from sparsercnn.runtime import check_device, resolve_device
from sparsercnn.structures import Sample

logger = logging.getLogger(__name__)


def _due(iteration: int, period: int) -> bool:
    return period > 0 and iteration % period == 0


def _process_place(device: torch.device | str | None, dist_info: DistInfo | None) -> DistInfo:
    """``dist_info``, or a single process on ``device`` (checked, default CUDA if present).

    Raises:
        ValueError: ``device`` is not a device here, or names another device than
            ``dist_info.device`` (``"cuda"`` matches any GPU, ``"cpu:0"`` the CPU).
    """
    if dist_info is None:
        return DistInfo(device=resolve_device(device))
    if device is not None:
        named, used = check_device(device), dist_info.device
        if named.type != used.type or (None not in (named.index, used.index) and named != used):
            raise ValueError(
                f"device {str(device)!r} is not dist_info.device {str(used)!r}: where a "
                "process trains is dist_info's; give only dist_info (or the same device)"
            )
    return dist_info


def _resume_source(
    resume: bool | str | Path | CheckedResume, output_dir: Path
) -> Path | CheckedResume | None:
    """What a :class:`Trainer`'s ``resume`` restores
    (:func:`~sparsercnn.engine.resume.restore_training_state`'s ``source``): the run folder
    ``output_dir`` for ``True``, the checkpoint path, or the resume a command checked;
    ``None``: a new run."""
    if isinstance(resume, CheckedResume):
        return resume
    if not resume:
        return None
    return output_dir if resume is True else Path(resume)


class Trainer:
    """Trains a Sparse R-CNN with the recipe of ``cfg.train`` (spec 9).

    AdamW over every trainable parameter in one group (weight decay on all of them, spec 9);
    ``lr = run_lr(train, world_size) * train_lr_factor(train, iteration)`` set before each step.

    What of a new run's learning-rate schedule it never reaches
    (:meth:`~sparsercnn.config.TrainConfig.schedule_notes`) is not said here: it is for whoever
    settles the config to say, with :func:`~sparsercnn.config.log_schedule_notes`
    (:func:`~sparsercnn.engine.pipeline.train_from_coco` does, before the data are read); a
    resumed run's are said by the resume's check
    (:func:`~sparsercnn.engine.resume.check_resume`), with what the resume changes.

    Args:
        cfg: the resolved configuration (copied; the caller's object is never modified).
        train_dataset: map-style dataset of training samples whose ``__getitem__`` accepts
            ``(index, sample_seed)`` (``CocoDataset`` with the training transform; never
            evaluated, so ``keep_ground_truth=False`` spares the memory of its ground truth).
        output_dir: where ``config.json``, ``metrics.jsonl``, checkpoints, the model files and
            ``curves.png`` go.
        val_dataset: evaluated every ``cfg.train.eval_period`` iterations and at the end
            (``CocoDataset`` with the test transform); ``None`` skips evaluation.
        device: where to train when ``dist_info`` is not given (default: CUDA if present);
            checked by :func:`~sparsercnn.runtime.resolve_device`. With ``dist_info`` it may
            only repeat ``dist_info.device``, which decides; another device is refused.
        resume: ``True`` continues from the newest readable checkpoint in ``output_dir``, a path
            from that ``checkpoint_*.pt`` (of a run with the same model and label map), both
            checked here (:func:`~sparsercnn.engine.resume.check_resume`); a
            :class:`~sparsercnn.engine.resume.CheckedResume` (a command's
            :func:`~sparsercnn.engine.resume.check_resume` before reading the data, with
            ``cfg``) from the checkpoint it chose, not checked nor said again; ``False``: a new
            run. A ``cfg`` with a larger ``max_iter`` or other ``steps`` changes the schedule
            from there on. A run resumed at the end of its schedule with a larger ``max_iter``
            and its own ``steps`` gets the decays ahead that a fresh run of that length would
            take (:func:`~sparsercnn.engine.lr_schedule.resumed_steps`).
        time_budget_minutes: wall-clock limit of this invocation (from construction, the final
            checkpoint and evaluation included): the schedule is shortened to fit after a few
            measured iterations, and training stops early if time still runs out.
        budget_spent_minutes: minutes of the command's budget spent before the trainer (timing
            the recipe's steps), not in ``time_budget_minutes``: its messages give the whole
            budget and what is left of it for training.
        budget_extends: a run resumed at the end of its schedule (trained to its end, or
            stopped by its budget) with ``time_budget_minutes`` trains on for as many steps as
            the budget holds (:class:`~sparsercnn.engine.time_budget.BudgetedSchedule`);
            ``False``: it has nothing to train, as without a budget (the demo, whose budget is
            a default, finishes a trained run on ``--resume``).
        dist_info: this process's place in a multi-process run (``init_distributed()``).
        categories: the label map saved with checkpoints and models; default
            ``train_dataset.category_map``.
        progress: show a progress bar (rank 0 only).
        starting_weights: the files of ``cfg.train.init_from`` and ``backbone_weights`` already
            read (:func:`~sparsercnn.engine.model_init.read_starting_weights`), not read again;
            their tensors are released once the model is built
            (:meth:`~sparsercnn.engine.model_init.StartingWeights.release`).

    Raises:
        ValueError: as :func:`~sparsercnn.engine.resume.restore_training_state` (a checkpoint
            of another model or label map, or past ``train.max_iter``: the run's
            ``config.json`` and model files would then give a schedule shorter than the steps
            it trained; a ``CheckedResume`` checked with another config than ``cfg``).
    """

    def __init__(
        self,
        cfg: Config,
        train_dataset: Dataset[Sample],
        output_dir: str | Path,
        val_dataset: EvaluationDataset | None = None,
        device: torch.device | str | None = None,
        resume: bool | str | Path | CheckedResume = False,
        time_budget_minutes: float | None = None,
        dist_info: DistInfo | None = None,
        categories: CategoryMap | None = None,
        progress: bool = True,
        starting_weights: StartingWeights | None = None,
        budget_extends: bool = True,
        budget_spent_minutes: float = 0.0,
    ) -> None:
        start = time.perf_counter()
        self.cfg = copy.deepcopy(cfg)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.output_dir = Path(output_dir)
        self.dist = _process_place(device, dist_info)
        self.device = self.dist.device
        self.progress = progress
        budget = None
        if time_budget_minutes is not None:
            if not time_budget_minutes > 0:
                raise ValueError(f"time_budget_minutes must be positive, got {time_budget_minutes}")
            budget = TimeBudget(
                60.0 * time_budget_minutes, start, spent=60.0 * budget_spent_minutes
            )
        self.categories = self._resolve_categories(categories)
        self.data_identity = data_identity(train_dataset)
        source = _resume_source(resume, self.output_dir)
        check_run_folder(self.output_dir, source is not None, is_main=self.dist.is_main)
        self.metrics = MetricsLog(self.path(METRICS_FILE))
        parts = build_training_parts(
            self.cfg,
            self.categories,
            self.device,
            self.dist.rank,
            load_weights=source is None,
            weights=starting_weights,
        )
        self.model, self.postprocessor = parts.model, parts.postprocessor
        self.optimizer, self.amp_dtype, self.scaler = parts.optimizer, parts.amp_dtype, parts.scaler

        self.iteration = 0
        self.evaluations = EvaluationHistory()
        self.checkpoints = CheckpointWriter(self.output_dir)
        self.evaluator: TrainingEvaluator | None = None
        if val_dataset is not None:
            self.evaluator = TrainingEvaluator(
                val_dataset,
                self.model,
                self.postprocessor,
                self.cfg,
                self.dist,
                self.metrics,
                self.path(MODEL_BEST_FILE),
                self.categories,
                save_checkpoint=self._save_checkpoint,
            )
        self.last_losses: dict[str, float] = {}
        # Whether train() has begun a step: an interrupt then has steps to checkpoint.
        self._stepped = False
        if source is not None:
            self._resume(source, budget_given=budget is not None, budget_extends=budget_extends)
        # The schedule the budget fits is the resumed run's.
        self.budget: BudgetedSchedule | None = None
        if budget is not None:
            extend_from = self.iteration if budget_extends else None
            self.budget = BudgetedSchedule(budget, self.cfg.train, extend_from=extend_from)
        self.step = self._build_step()

    def _build_step(self) -> TrainStep:
        """One optimiser step; its model is wrapped in DDP while :meth:`train` runs
        (:meth:`_wrapped_for_training`)."""
        train = self.cfg.train
        return TrainStep(
            self.model,
            build_criterion(self.cfg, average_over_ranks=self.dist.is_distributed),
            self.optimizer,
            self.scaler,
            device=self.device,
            amp_dtype=self.amp_dtype,
            grad_accum_steps=train.grad_accum_steps,
            clip_grad_norm=train.clip_grad_norm,
            max_nonfinite_steps=train.max_nonfinite_steps,
            distributed=self.dist.is_distributed,
        )

    @contextlib.contextmanager
    def _wrapped_for_training(self) -> Iterator[None]:
        """The step's model in ``DistributedDataParallel`` while training runs (multi-process
        runs; wrapped after resuming, as DDP gives every rank rank 0's weights when it wraps),
        the plain module again after it, also on failure: the wrapper holds the process group,
        which :func:`~sparsercnn.engine.distributed.cleanup` cannot end while a caller still
        holds the trainer, or the error of a forward that raised inside the wrapper (its gloo
        threads and rank 0's TCPStore would run on): that error's traceback lets it go too."""
        # Without deep supervision the earlier stages' heads get no gradient.
        unused = not self.cfg.loss.deep_supervision
        self.step.model = wrapped = wrap_ddp(self.model, self.dist, find_unused_parameters=unused)
        try:
            yield
        except BaseException as error:
            # A forward that raised inside the wrapper left it in the frames of the traceback.
            if wrapped is not self.model:
                release_from_traceback(error, wrapped)
            raise
        finally:
            self.step.model = self.model
            del wrapped

    def path(self, name: str) -> Path:
        """Output file ``name`` (``config.json``, ``model_final.safetensors``, ...)."""
        return self.output_dir / name

    @property
    def total_batch_size(self) -> int:
        """Images per optimiser step over all processes and micro-batches."""
        return images_per_step(self.cfg.train, self.dist.world_size)

    @property
    def base_lr(self) -> float:
        """The configured lr after the linear scaling rule."""
        return run_lr(self.cfg.train, self.dist.world_size)

    @property
    def checkpoint_path(self) -> Path | None:
        """The run's newest checkpoint, written or resumed from (``None``: none yet)."""
        return self.checkpoints.path

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

    def _resume(
        self, source: Path | CheckedResume, *, budget_given: bool, budget_extends: bool
    ) -> None:
        """Restore model, optimizer, scaler, iteration, RNG and the best AP from ``source`` (a
        checkpoint, the run folder: its newest readable checkpoint, or the resume a command
        checked), and the decays of a completed run extended; ``source``, ``budget_given`` and
        ``budget_extends`` as :func:`~sparsercnn.engine.resume.restore_training_state`'s. Rank
        0 makes ``model_best`` agree with the best the checkpoint records
        (:func:`~sparsercnn.engine.model_best.reconcile_model_best`).

        Raises:
            ValueError: as :func:`~sparsercnn.engine.resume.restore_training_state`.
        """
        point = restore_training_state(
            source,
            self.model,
            self.optimizer,
            self.scaler,
            self.cfg,
            self.categories,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            data=self.data_identity,
            budget_given=budget_given,
            budget_extends=budget_extends,
        )
        if point.steps is not None:
            self.cfg.train.steps = point.steps
        self.iteration = point.iteration
        self.checkpoints.resumed_from(point.path, point.iteration)
        self.evaluations = EvaluationHistory(
            point.best_ap,
            point.best_iteration,
            point.best_model_crc32,
            last_iteration=point.last_evaluation,
        )
        if self.dist.is_main:
            self.evaluations = reconcile_model_best(
                point,
                self.evaluations,
                self.path(MODEL_BEST_FILE),
                self.model,
                self.cfg,
                self.categories,
            )

    def train(self) -> TrainResult:
        """Run the remaining iterations, then checkpoint, evaluate and write the model files.

        A run stopped by an error or an interrupt logs, before it reaches the caller, which
        checkpoint holds its progress and that ``--resume`` continues from it (or that none was
        written yet): after a first Ctrl-C or SIGTERM, the one it wrote of the last step; after
        a second one, which stops at once (during that checkpoint's write, say), the one before.

        Raises:
            NonFiniteLossError: ``max_nonfinite_steps`` consecutive steps had a non-finite loss
                or gradient norm.
        """
        try:
            return self._train()
        except KeyboardInterrupt:
            if self.dist.is_main:
                logger.warning(
                    "interrupted after iteration %d; %s", self.iteration, self._resume_hint()
                )
            raise
        except Exception:
            if self.dist.is_main:
                logger.error(
                    "training stopped by the error below after iteration %d; %s once it is fixed",
                    self.iteration,
                    self._resume_hint(),
                )
            raise

    def _train(self) -> TrainResult:
        """:meth:`train` without the line a run stopped by an error ends with."""
        train = self.cfg.train
        if self.dist.is_main:
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
            aspect_ratio_grouping=train.aspect_ratio_grouping,
        )
        stopped_early = False
        window = LogWindow()
        interrupt = DeferredInterrupt(notice=self._interrupt_notice if self.dist.is_main else None)
        bar = tqdm(
            total=train.max_iter,
            initial=self.iteration,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            disable=not (self.progress and self.dist.is_main),
        )
        with bar, logging_redirect_tqdm(), interrupt, self._wrapped_for_training():
            self._evaluate_missed()
            while self.iteration < self.cfg.train.max_iter and not self._interrupted(interrupt):
                self._stepped = True
                stats = self.step(loader, self._lr_at(self.iteration), self.iteration)
                self.iteration += 1
                window.add(stats)
                bar.update(1)
                self._after_step(window, bar)
                if self._budget_exhausted(stats.seconds, bar):
                    stopped_early = True
                    break
            # Once more, at the same point on every rank: a signal during the last step counts.
            interrupted = self._interrupted(interrupt)
            del loader
            if not interrupted:
                # Signals stay deferred through the final evaluation and checkpoint, as through
                # the periodic ones: a Ctrl-C there stops the run with its last steps saved.
                self._final_evaluation_and_checkpoint(window)
                interrupted = self._interrupted(interrupt)
        if interrupted:
            # Every rank checkpoints the same step; a rank that was not signalled itself stops
            # as the interrupted one does.
            self._save_interrupted(window)
            interrupt.deliver()
            raise KeyboardInterrupt
        return self._finish(stopped_early)

    def _evaluate_missed(self) -> None:
        """The evaluation a resumed run missed where it starts
        (:meth:`~sparsercnn.engine.training_evaluation.TrainingEvaluator.evaluate_missed`)."""
        if self.evaluator is not None:
            self.evaluator.evaluate_missed(
                self.iteration,
                self.evaluations,
                due=_due(self.iteration, self.cfg.train.eval_period),
                checkpoint=self.checkpoint_path,
            )

    def _interrupted(self, interrupt: DeferredInterrupt) -> bool:
        """Whether some rank has a deferred signal; every rank calls this at the same points
        of the loop, so that all stop after the same step."""
        return any_rank(interrupt.requested is not None, self.device)

    def _interrupt_notice(self) -> str:
        """What a first Ctrl-C or SIGTERM does, said when it comes (:meth:`_save_interrupted`;
        :func:`~sparsercnn.engine.stop_notices.interrupt_notice`)."""
        return interrupt_notice(
            stepped=self._stepped,
            checkpoint=self.checkpoint_path,
            iteration=self.iteration,
            max_iter=self.cfg.train.max_iter,
            final_evaluation_due=self._final_evaluation_due(),
        )

    def _save_interrupted(self, window: LogWindow) -> None:
        """Log the steps since the last record and checkpoint them, so that ``--resume``
        continues from the step the run was interrupted after. A new run stopped before its
        first step writes none: a checkpoint of iteration 0 holds nothing trained, and would
        make its folder one to resume rather than to start again (:meth:`_resume_hint`)."""
        if window.num_steps:
            self._log_window(window, None)
        if self.iteration > 0 and self.checkpoints.iteration != self.iteration:
            self._save_checkpoint()

    def _resume_hint(self) -> str:
        """How a run stopped early ends (:func:`~sparsercnn.engine.stop_notices.resume_hint`)."""
        return resume_hint(self.checkpoint_path, self.checkpoints.iteration, self.iteration)

    def _log_setup(self) -> None:
        train = self.cfg.train
        logger.info(
            "training on %s x%d from iteration %d to %d: %d images/step (%d per process x %d "
            "micro-batches), lr %.3g at iteration %d (base %.3g, configured %.3g), steps %s, "
            "warm-up %d, amp %s",
            self.device,
            self.dist.world_size,
            self.iteration,
            train.max_iter,
            self.total_batch_size,
            train.batch_size,
            train.grad_accum_steps,
            self._lr_at(self.iteration),
            self.iteration,
            self.base_lr,
            train.lr,
            list(train.steps),
            train.warmup_iters,
            self.amp_dtype or "off",
        )

    def _lr_at(self, iteration: int) -> float:
        """The learning rate of the step taken at ``iteration`` (0-based)."""
        return self.base_lr * train_lr_factor(self.cfg.train, iteration)

    def _after_step(self, window: LogWindow, bar: tqdm) -> None:
        """Log, evaluate and checkpoint when their period (``<= 0``: never) divides the
        iteration; the last iteration's evaluation and checkpoint happen in
        :meth:`_final_evaluation_and_checkpoint`.

        The evaluation comes first, so that a checkpoint holds the best AP including it and the
        random state after it: a run resumed there goes on as the uninterrupted run did.
        """
        train = self.cfg.train
        last = self.iteration == train.max_iter
        checkpoint = _due(self.iteration, train.checkpoint_period)
        # A checkpoint closes the logging window too: a run resumed there starts a new window,
        # and no step before it goes unlogged.
        if _due(self.iteration, train.log_period) or last or checkpoint:
            self._log_window(window, bar)
        if last:
            return
        if self.evaluator is not None and _due(self.iteration, train.eval_period):
            self.evaluator.evaluate(self.iteration, self.evaluations, checkpoint_due=checkpoint)
        if checkpoint:
            self._save_checkpoint()

    def _log_window(self, window: LogWindow, bar: tqdm | None) -> None:
        """Write one record averaged over the window (and over ranks) and refresh the bar."""
        means = mean_over_ranks(window.loss_means(), self.device)
        if means:
            self.last_losses = means
        record = {
            "iter": self.iteration,
            "lr": window.lr,
            **means,
            **window.timing(self.total_batch_size),
        }
        window.clear()
        if self.dist.is_main:
            self.metrics.append(record)
            if bar is not None and means:
                bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{record['lr']:.3g}")

    def _write_config(self) -> None:
        text = self.cfg.to_json() + "\n"
        atomic_write(self.path(CONFIG_FILE), lambda tmp: tmp.write_text(text))

    def _save_checkpoint(self) -> None:
        """Checkpoint the current iteration with the evaluations' record and the training
        images (:meth:`~sparsercnn.engine.checkpoint_writer.CheckpointWriter.save`: all ranks
        must call this; all raise what stops rank 0's write)."""
        history = self.evaluations
        self.checkpoints.save(
            self.iteration,
            self.model,
            self.optimizer,
            self.scaler,
            self.cfg,
            self.categories,
            extra={
                "best_ap": history.best_ap,
                "best_iteration": history.best_iteration,
                "best_model_crc32": history.best_model_crc32,
                "last_evaluation": history.last_iteration,
                "data": self.data_identity,
            },
        )

    def _budget_exhausted(self, seconds: float, bar: tqdm) -> bool:
        """Fit the schedule once the pace is measured; say when time is up (rank 0 decides)."""
        if self.budget is None:
            return False
        refitted, stop = self.budget.after_step(seconds, self.iteration, self._periodic_work())
        if refitted:
            bar.total = self.cfg.train.max_iter
            bar.refresh()
            if self.dist.is_main:
                self._write_config()
        return stop

    def _periodic_work(self) -> PeriodicWork:
        train = self.cfg.train
        eval_images = None
        if self.val_dataset is not None:
            eval_images = -(-len(self.val_dataset) // self.dist.world_size)
        return PeriodicWork(
            checkpoint_period=train.checkpoint_period,
            checkpoint_seconds=self.checkpoints.seconds,
            eval_period=train.eval_period,
            eval_seconds=self.evaluations.seconds,
            eval_images=eval_images,
            images_per_iter=train.batch_size * train.grad_accum_steps,
        )

    def _final_evaluation_due(self) -> bool:
        """Whether the iteration training ends at has no evaluation yet (a validation set given;
        :meth:`~sparsercnn.engine.training_evaluation.TrainingEvaluator.final_due`)."""
        evaluator = self.evaluator
        return evaluator is not None and evaluator.final_due(self.iteration, self.evaluations)

    def _final_evaluation_and_checkpoint(self, window: LogWindow) -> None:
        """Log the last steps, then the final evaluation and the checkpoint that holds it. A
        resumed finished run whose checkpoint holds its evaluation does neither again; one
        whose final evaluation had failed evaluates and checkpoints again with it, so that the
        next resume evaluates nothing."""
        if window.num_steps:
            self._log_window(window, None)
        evaluated = self._final_evaluation_due()
        unsaved = self.checkpoints.iteration != self.iteration
        if evaluated:
            assert self.evaluator is not None
            self.evaluator.evaluate(self.iteration, self.evaluations, checkpoint_due=unsaved)
        if evaluated or unsaved:
            self._save_checkpoint()

    def _finish(self, stopped_early: bool) -> TrainResult:
        """The result, the final model file and the curves (after
        :meth:`_final_evaluation_and_checkpoint`)."""
        evaluations = self.evaluations
        result = TrainResult(
            iteration=self.iteration,
            stopped_early=stopped_early,
            last_losses=self.last_losses,
            final_metrics=evaluations.last.result.to_dict() if evaluations.last else None,
            best_metrics=evaluations.best.result.to_dict() if evaluations.best else None,
            best_iteration=evaluations.best_iteration,
            best_ap=evaluations.best_ap if self.dist.is_main else None,
            skipped_steps=self.step.skipped_steps,
            output_dir=self.output_dir,
            final_evaluation=evaluations.last,
            best_evaluation=evaluations.best,
            checkpoint_path=self.checkpoint_path,
        )
        # The other ranks wait for rank 0's files, and raise what stops it (a full disk).
        done_on_main(lambda: self._write_outputs(result))
        return result

    def _write_outputs(self, result: TrainResult) -> None:
        """Write the final model file and the curves (rank 0) and name the outputs in
        ``result``."""
        final = self.path(MODEL_FINAL_FILE)
        save_model_file(final, self.model, self.cfg, self.categories)
        best = self.path(MODEL_BEST_FILE)
        result.model_final_path = final
        # A model_best of no evaluation of this run's (one it wrote in iterations a resume
        # trained again, without a validation set since) is not named.
        known = self.evaluations.best_ap is not None
        result.model_best_path = best if known and best.is_file() else None
        result.config_path, result.metrics_path = self.path(CONFIG_FILE), self.metrics.path
        result.curves_path = self.metrics.plot(self.path(CURVES_FILE))
        logger.info(
            "training ended at iteration %d; outputs in %s", self.iteration, self.output_dir
        )

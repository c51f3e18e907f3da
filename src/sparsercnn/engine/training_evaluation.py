"""A training run's evaluations on its validation set, between the optimiser steps.

:class:`TrainingEvaluator` evaluates the model being trained (every rank its shard, with
:func:`~sparsercnn.engine.inference.evaluate`), records each evaluation in ``metrics.jsonl`` and
the run's :class:`~sparsercnn.engine.evaluation_history.EvaluationHistory`, keeps the best model
as ``model_best`` (:mod:`~sparsercnn.engine.model_best`), checkpoints the trained weights before
a failed evaluation's error reaches the caller, and tells which evaluations the history lacks: the
one a resumed run missed, the final one. The :class:`~sparsercnn.engine.trainer.Trainer` says when
the periodic ones are due and checkpoints around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from torch import nn

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.distributed import DistInfo, broadcast_buffers, done_on_main
from sparsercnn.engine.evaluation_history import EvaluationHistory
from sparsercnn.engine.inference import Evaluation, EvaluationDataset, evaluate
from sparsercnn.engine.metrics_log import MetricsLog
from sparsercnn.engine.model_best import keep_if_best
from sparsercnn.model import PostProcessor

logger = logging.getLogger(__name__)


class TrainingEvaluator:
    """Evaluates a training run's model on its validation set and keeps the record.

    Args:
        dataset: the validation set (``CocoDataset`` with the test transform).
        model: the model being trained (the module itself, not a DDP wrapper of it): evaluated,
            and saved as ``model_best`` when it is the best so far.
        postprocessor: turns its outputs into detections (absolute xyxy boxes).
        cfg: the run's config, the trainer's own object (a resume or a time budget changes its
            schedule in place): the evaluation batch (``input.test_batch_size``), the loading
            processes (``train.num_workers``) and ``train.max_iter``.
        dist: this process's place in the run; all ranks evaluate, rank 0 records.
        metrics: the run's ``metrics.jsonl``, which gets each evaluation whole.
        best_file: the run's ``model_best`` file.
        categories: the label map saved with ``model_best``.
        save_checkpoint: checkpoints the current iteration with the history (all ranks call it):
            called before a failed evaluation's error when a checkpoint is due there, and after
            the evaluation a resumed run missed.
    """

    def __init__(
        self,
        dataset: EvaluationDataset,
        model: nn.Module,
        postprocessor: PostProcessor,
        cfg: Config,
        dist: DistInfo,
        metrics: MetricsLog,
        best_file: Path,
        categories: CategoryMap,
        save_checkpoint: Callable[[], None],
    ) -> None:
        self.dataset = dataset
        self.model = model
        self.postprocessor = postprocessor
        self.cfg = cfg
        self.dist = dist
        self.metrics = metrics
        self.best_file = best_file
        self.categories = categories
        self.save_checkpoint = save_checkpoint

    def evaluate(self, iteration: int, history: EvaluationHistory, *, checkpoint_due: bool) -> None:
        """Evaluate the model of ``iteration`` (all ranks); rank 0 records it in ``history`` and
        keeps the best.

        When the evaluation fails and a checkpoint is due at this iteration (``checkpoint_due``),
        the checkpoint is written first (without this evaluation): the trained weights outlive a
        failure of the evaluation, and the run resumes there, evaluating again
        (:meth:`evaluate_missed`), once its cause is fixed (the trainer names the checkpoint).
        """
        start = time.perf_counter()
        # Every rank evaluates its shard with the model rank 0 saves: the same running
        # statistics (each rank's last forward pass updated its own).
        broadcast_buffers(self.model)
        # Rank 0 prepares the validation ground truth at the first evaluation, for them all.
        last = history.last
        try:
            evaluation = evaluate(
                self.model,
                self.postprocessor,
                self.dataset,
                batch_size=self.cfg.input.test_batch_size,
                num_workers=self.cfg.train.num_workers,
                dist_info=self.dist,
                ground_truth=None if last is None else last.ground_truth,
            )
        except Exception:
            if checkpoint_due:
                logger.error("the evaluation at iteration %d failed", iteration)
                self.save_checkpoint()
            raise
        history.seconds = time.perf_counter() - start
        history.last_iteration = iteration
        # What stops rank 0's record (a full disk) stops every rank with its error.
        done_on_main(lambda: self._record(evaluation, iteration, history))

    def evaluate_missed(
        self, iteration: int, history: EvaluationHistory, *, due: bool, checkpoint: Path | None
    ) -> None:
        """Evaluate ``iteration``, where a resumed run starts, when its periodic evaluation was
        ``due`` there but the checkpoint it resumed from (``checkpoint``, named in the log) holds
        none (the evaluation failed, see :meth:`evaluate`), then checkpoint it again with that
        evaluation. The last iteration's is the final evaluation (:meth:`final_due`)."""
        if (
            not due
            or not 0 < iteration < self.cfg.train.max_iter
            or history.last_iteration == iteration
        ):
            return
        if self.dist.is_main:
            logger.info(
                "%s holds no evaluation of iteration %d: evaluating it now", checkpoint, iteration
            )
        self.evaluate(iteration, history, checkpoint_due=False)
        self.save_checkpoint()

    @staticmethod
    def final_due(iteration: int, history: EvaluationHistory) -> bool:
        """Whether ``iteration``, where training ends, has no evaluation yet: none ran there, or
        the checkpoint a finished run resumed from holds none (it failed)."""
        return history.last_iteration != iteration

    def _record(
        self, evaluation: Evaluation | None, iteration: int, history: EvaluationHistory
    ) -> None:
        """Log rank 0's evaluation on one line, and keep its model as ``model_best`` when it is
        the best (:func:`~sparsercnn.engine.model_best.keep_if_best`). The whole result (AR,
        per-class AP) goes to ``metrics.jsonl``; the table is for the caller to print once, of
        the model it reports (``train``, ``demo``)."""
        assert evaluation is not None, "evaluate() returns the evaluation on rank 0"
        result = evaluation.result
        self.metrics.append({"iter": iteration, "eval": result.to_dict()})
        logger.info("evaluation at iteration %d: %s", iteration, result.format_line())
        keep_if_best(
            evaluation,
            iteration,
            history,
            self.best_file,
            self.model,
            self.cfg,
            self.categories,
        )

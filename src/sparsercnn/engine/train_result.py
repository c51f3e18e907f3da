"""What a training run did and wrote: :class:`TrainResult`, returned by ``Trainer.train``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsercnn.engine.inference import Evaluation

if TYPE_CHECKING:
    from sparsercnn.engine.evaluation_report import EvaluationReport


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
        evaluation_report: ``model_best``'s evaluation (else the last) as a report on the
            validation set, set by :func:`~sparsercnn.engine.pipeline.train_from_coco` (which
            evaluates ``model_best`` again where its evaluation predates a resume).
        best_ap: the best AP of the run (also across a resume: ``model_best``'s, whose
            evaluation may predate this invocation; ``None``: never evaluated), rank 0 only.
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
    evaluation_report: EvaluationReport | None = None
    checkpoint_path: Path | None = None
    config_path: Path | None = None
    metrics_path: Path | None = None
    model_final_path: Path | None = None
    model_best_path: Path | None = None
    curves_path: Path | None = None
    best_ap: float | None = None

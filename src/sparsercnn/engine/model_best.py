"""A training run's ``model_best`` file: written when an evaluation beats the run's best AP, and
made to agree, when the run resumes, with the best the checkpoint records (rank 0's work,
called by :class:`~sparsercnn.engine.trainer.Trainer`)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from torch import nn

from sparsercnn.atomic_file import atomic_write
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.evaluation_history import EvaluationHistory
from sparsercnn.engine.inference import Evaluation
from sparsercnn.engine.resume import ResumePoint
from sparsercnn.evaluation.units import format_percent
from sparsercnn.model_file import save_model_file
from sparsercnn.paths import same_file
from sparsercnn.run_files import MODEL_BEST_FILE
from sparsercnn.safetensors_file import stored_tensors_crc32

logger = logging.getLogger(__name__)


def keep_if_best(
    evaluation: Evaluation,
    iteration: int,
    history: EvaluationHistory,
    best: Path,
    model: nn.Module,
    config: Config,
    categories: CategoryMap,
) -> None:
    """Record ``evaluation`` (of ``model`` at ``iteration``) in ``history``; when it is the best
    so far, write ``model`` to ``best`` (the run's ``model_best``) and record that file's
    ``tensors_crc32``, which the next checkpoint holds."""
    if not history.record(evaluation, iteration):
        return
    save_model_file(best, model, config, categories)
    history.best_model_crc32 = stored_tensors_crc32(best)
    logger.info("new best AP %s at iteration %d", format_percent(evaluation.result.AP), iteration)


def reconcile_model_best(
    point: ResumePoint,
    history: EvaluationHistory,
    best: Path,
    model: nn.Module,
    config: Config,
    categories: CategoryMap,
) -> EvaluationHistory:
    """Make ``best`` (the resumed run's ``model_best``) the model of the best AP the checkpoint
    resumed from records (``point``, ``history`` restored from it), or say that it is not and
    count the best again.

    Resumed from an earlier checkpoint, the run's ``model_best`` may be one it wrote after it,
    in the iterations this resume trains again; resumed into another folder, there is none. A
    checkpoint of the best's own iteration holds its model (``model``, restored from it), which
    is written again (into another folder, only where it has no ``model_best``); resumed into
    another folder that has none, the one beside the checkpoint that holds it is copied; else no
    file of this run holds it, and the best AP counts again from the next evaluation, which
    writes ``model_best`` (a file there is kept until then). A checkpoint that recorded no file
    (older than the record) is taken at its word.

    Returns:
        ``history``, with the CRC-32 of a file written again; or a history that keeps only its
        last evaluation's iteration, where no file holds the recorded best.
    """
    if history.best_ap is None or point.best_model_crc32 is None:
        return history
    if stored_tensors_crc32(best) == point.best_model_crc32:
        return history
    found = (
        "holds another model, one written after that checkpoint (in the iterations this "
        "resume trains again) or put there"
        if best.is_file()
        else "is not there"
    )
    recorded = (
        f"{best} {found}, not the best model {point.path} records (AP "
        f"{format_percent(history.best_ap)} at iteration {history.best_iteration})"
    )
    beside = point.path.parent / MODEL_BEST_FILE
    # In another folder than the checkpoint's, a model_best there is the user's until an
    # evaluation: never replaced at once.
    ours = same_file(beside, best) or not best.exists()
    if history.best_iteration == point.iteration and ours:
        save_model_file(best, model, config, categories)
        history.best_model_crc32 = stored_tensors_crc32(best)
        logger.warning("%s: written again from that checkpoint, which holds it", recorded)
        return history
    if not best.exists() and stored_tensors_crc32(beside) == point.best_model_crc32:
        atomic_write(best, lambda tmp: shutil.copyfile(beside, tmp))
        logger.info("copied %s, the best model %s records, to %s", beside, point.path, best)
        return history
    logger.warning(
        "%s, which no file of this run holds now: the best AP counts again from this run's "
        "next evaluation, which writes %s%s",
        recorded,
        best.name,
        " (copy this one elsewhere to keep it)" if best.is_file() else "",
    )
    return EvaluationHistory(last_iteration=history.last_iteration)

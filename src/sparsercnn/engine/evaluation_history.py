"""The evaluations of a training run: the last one, and the best by AP (what ``model_best``
holds, told from another file by its ``tensors_crc32``), kept with their detections so that the
end of the run reports them without a new pass."""

from __future__ import annotations

from dataclasses import dataclass

from sparsercnn.engine.inference import Evaluation


@dataclass
class EvaluationHistory:
    """Attributes:
    best_ap: the best AP of the run so far, also one restored from a checkpoint (``None``:
        never evaluated).
    best_iteration: the iteration of ``best_ap``.
    best_model_crc32: the ``tensors_crc32`` of the ``model_best`` file written for ``best_ap``
        (:func:`~sparsercnn.safetensors_file.stored_tensors_crc32`; ``None``: not known),
        which a checkpoint records, so that a run resumed from it tells that file from one
        written after it.
    best: the evaluation that last beat ``best_ap`` in this invocation, whose model is
        ``model_best`` (rank 0 only; ``None`` if none beat an AP restored on resume).
    last: the last evaluation (rank 0 only).
    last_iteration: the iteration of the last evaluation, on every rank.
    seconds: how long the last evaluation took, on every rank.
    """

    best_ap: float | None = None
    best_iteration: int | None = None
    best_model_crc32: str | None = None
    best: Evaluation | None = None
    last: Evaluation | None = None
    last_iteration: int | None = None
    seconds: float | None = None

    def record(self, evaluation: Evaluation, iteration: int) -> bool:
        """Keep ``evaluation`` as the last one, and as the best when its AP beats the best so
        far. Returns whether it is the new best (whose model the caller writes, then records
        its :attr:`best_model_crc32`)."""
        self.last = evaluation
        if self.best_ap is not None and self.best_ap >= evaluation.result.AP:
            return False
        self.best_ap, self.best_iteration, self.best = evaluation.result.AP, iteration, evaluation
        self.best_model_crc32 = None
        return True

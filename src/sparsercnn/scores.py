"""Detection scores as the package writes them, and the one test of a score threshold.

COCO result records (``predict``'s and ``eval``'s JSON, the server's answers) give each score to
:data:`SCORE_DIGITS` significant digits (:func:`written_score`). Every score threshold (``predict
--save-images``, ``serve``'s ``score_threshold``, ``visualize``, drawings,
:meth:`~sparsercnn.prediction.Prediction.above`) compares that written score
(:func:`passes_threshold`), not the float32 the model computed: a threshold copied from a
written score keeps that detection everywhere (float32 0.29999998 is written 0.3, and passes
0.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Significant digits of a written score: enough to keep the order of tiny scores apart.
SCORE_DIGITS = 6


def written_score(score: float) -> float:
    """``score`` to :data:`SCORE_DIGITS` significant digits, as the records write it."""
    return float(f"{score:.{SCORE_DIGITS}g}")


def passes_threshold(
    scores: torch.Tensor | np.ndarray | Sequence[float], threshold: float
) -> np.ndarray:
    """Whether each score, as written (:func:`written_score`), is at least ``threshold``.

    Args:
        scores: ``(K,)`` scores, any float dtype and device.
        threshold: the least written score that passes.

    Returns:
        ``(K,)`` bool array.
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().to("cpu", torch.float64).numpy()
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.array([written_score(score) >= threshold for score in values.tolist()], dtype=bool)

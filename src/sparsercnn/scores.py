"""Detection scores as the package writes them, and the one test of a score threshold.

COCO result records (``predict``'s and ``eval``'s JSON, the server's answers) give each score to
:data:`SCORE_DIGITS` significant digits (:func:`written_score`). Every score threshold (``predict
--save-images``, ``serve``'s ``score_threshold``, ``visualize``, drawings, ``diagnose``'s
confusion matrix, stage figure and slot statistics,
:meth:`~sparsercnn.prediction.Prediction.above`) compares that written score
(:func:`passes_threshold`), not the float32 the model computed: a threshold copied from a
written score keeps that detection everywhere (float32 0.29999998 is written 0.3, and passes
0.3). A threshold given by a user is checked by :func:`check_score_threshold`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import overload

import numpy as np
import torch

# Significant digits of a written score: enough to keep the order of tiny scores apart.
SCORE_DIGITS = 6

# Writing moves a score s by at most half a unit of its last digit, 0.5 * 10**(e + 1 - digits)
# for 10**e <= |s|: at most this share of |s|.
_WRITING_SHARE = 0.5 * 10.0 ** (1 - SCORE_DIGITS)

# What check_score_threshold asks of a threshold, in the words of its message.
SCORE_THRESHOLD_RULE = "must be a number in [0, 1]"


def written_score(score: float) -> float:
    """``score`` to :data:`SCORE_DIGITS` significant digits, as the records write it."""
    return float(f"{score:.{SCORE_DIGITS}g}")


def check_score_threshold(threshold: float, *, argument: str | None = "score_threshold") -> float:
    """``threshold`` as a float if it is a score threshold: a number in [0, 1] (a sigmoid
    score's range).

    Args:
        threshold: the threshold given: a real number (``float``, ``int``, ``np.float32``, ...)
            or a 0-dim tensor or array of one, not a bool.
        argument: what the message calls it (``score_threshold``, a CLI flag), or None where
            the caller names it (argparse's ``argument --score-threshold:`` prefix).

    Raises:
        ValueError: ``threshold`` is no number, or NaN, infinite or outside [0, 1] (NaN would
            keep no detection, and a threshold past either end all or none, without a word).
    """
    value = _real_number(threshold)
    if value is None or not 0.0 <= value <= 1.0:  # False for NaN
        named = f"{argument} " if argument else ""
        raise ValueError(f"{named}{SCORE_THRESHOLD_RULE}, got {threshold!r}")
    return value


def _real_number(value: object) -> float | None:
    """``value`` as a float if it is a real number or a 0-dim tensor or array of one, and no
    bool; else None."""
    if isinstance(value, torch.Tensor | np.ndarray):
        if value.ndim != 0:
            return None
        value = value.item()  # a Python bool, int, float or complex
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int past float's range: no score either
            return None
    return None


@overload
def passes_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor: ...


@overload
def passes_threshold(scores: np.ndarray | Sequence[float], threshold: float) -> np.ndarray: ...


def passes_threshold(
    scores: torch.Tensor | np.ndarray | Sequence[float], threshold: float
) -> torch.Tensor | np.ndarray:
    """Whether each score, as written (:func:`written_score`), is at least ``threshold``.

    The scores are compared as they are; only the few close enough to ``threshold`` for
    writing to move them across it (within 5e-6 of it, relatively) are written and compared
    again.

    Args:
        scores: scores of any shape and float dtype; a tensor on any device.
        threshold: the least written score that passes.

    Returns:
        A bool mask of the shape of ``scores``: a tensor on their device for a tensor, else a
        numpy array.
    """
    if isinstance(scores, torch.Tensor):
        return _tensor_passes(scores.detach(), threshold)
    return _array_passes(np.asarray(scores), threshold)


def _tensor_passes(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """:func:`passes_threshold` of a tensor, on its device."""
    if not scores.is_floating_point():
        scores = scores.double()
    info = torch.finfo(scores.dtype)
    passes = scores >= threshold
    near = (scores - threshold).abs() <= _near_band(threshold, info.eps, info.tiny)
    close = scores[near]  # few: one small copy to the host
    if len(close):
        written = _written_passes(close.double().cpu().tolist(), threshold)
        passes[near] = torch.tensor(written, device=passes.device)
    return passes


def _array_passes(scores: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`passes_threshold` of a numpy array."""
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    info = np.finfo(scores.dtype)
    band = _near_band(threshold, float(info.eps), float(info.tiny))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: not near
        passes = np.asarray(scores >= threshold)
        near = np.abs(scores - threshold) <= band
    passes[near] = _written_passes(scores[near].astype(np.float64).tolist(), threshold)
    return passes


def _near_band(threshold: float, eps: float, tiny: float) -> float:
    """How close to ``threshold`` a score must be for its written value to compare otherwise
    than itself, for scores of a float type of machine epsilon ``eps`` and least normal
    ``tiny`` (0 for an infinite threshold, which writing never crosses).

    Writing moves ``s`` by at most ``r |s|`` (``r`` = 5e-6), and parsing the digits back by
    another float64 rounding: to cross ``t`` it needs ``|s - t| <= r |s|``, so
    ``|s - t| <= r |t| / (1 - r)``. Comparing and subtracting in the scores' type (``t`` rounded
    to it) is off by a few ``eps |t|``, or ``tiny`` near 0.
    """
    if not math.isfinite(threshold):
        return 0.0
    return abs(threshold) * (_WRITING_SHARE / (1 - _WRITING_SHARE) + 4 * eps) + tiny


def _written_passes(values: list[float], threshold: float) -> list[bool]:
    """Whether each of ``values``, written, is at least ``threshold``."""
    return [written_score(value) >= threshold for value in values]

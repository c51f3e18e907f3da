"""How AP and AR are shown to people: percent, always with its sign (``42.80%``).

Files for programs (``metrics.json``, ``metrics.jsonl``, :meth:`EvaluationResult.to_dict`) keep
COCOeval's fractions in ``[0, 1]``; everything printed or logged goes through
:func:`format_percent`.
"""

from __future__ import annotations


def format_percent(value: float | None) -> str:
    """An AP or AR: ``0.428 -> "42.80%"``; ``None`` (no ground truth of that kind) -> ``"-"``."""
    return "-" if value is None else f"{100.0 * value:.2f}%"

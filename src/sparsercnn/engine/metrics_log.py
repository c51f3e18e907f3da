"""Training metrics: per-step statistics, their averages over a log window, and the JSON-lines
file ``metrics.jsonl`` they go to.

Each training record is ``{"iter", "lr", "loss", <every loss term>, "grad_norm", "time",
"data_time", "images_per_s", "skipped", "skipped_images"}`` averaged over the steps since the
previous record (losses over all processes, ``time`` and ``data_time`` in seconds per step),
except ``lr``, the last step's, and the counts ``skipped`` (steps skipped for a non-finite
loss) and ``skipped_images`` (images that failed to load and were replaced,
``--skip-invalid``), which are summed; evaluation records are ``{"iter", "eval": {...}}``, the
COCO metrics as 0-1 fractions (:meth:`~sparsercnn.evaluation.EvaluationResult.to_dict`).
``iter`` counts optimiser steps taken. In multi-process training the counts are this
process's (rank 0's).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsercnn.atomic_file import atomic_write
from sparsercnn.json_lines import read_json_lines

logger = logging.getLogger(__name__)


@dataclass
class StepStats:
    """One optimiser step.

    Attributes:
        terms: weighted loss terms (``loss_cls/stage0`` ...) averaged over the micro-batches.
        loss: their sum, averaged over the micro-batches.
        grad_norm: whole-model gradient L2 norm before clipping.
        lr: learning rate used.
        seconds: wall-clock duration of the step, data loading included.
        data_seconds: time spent waiting for batches.
        applied: False when the step was skipped (non-finite loss or gradient norm).
        skipped_images: images of the step's batches that failed to load and were replaced
            (``Batch.replaced_files``).
    """

    terms: dict[str, float]
    loss: float
    grad_norm: float
    lr: float
    seconds: float
    data_seconds: float
    applied: bool
    skipped_images: int = 0


@dataclass
class LogWindow:
    """The steps since the last record."""

    steps: list[StepStats] = field(default_factory=list)

    def loss_means(self) -> dict[str, float]:
        """``loss``, every term and ``grad_norm`` averaged over the applied steps (skipped
        steps have non-finite values); empty when every step was skipped."""
        applied = [s for s in self.steps if s.applied]
        if not applied:
            return {}
        out = {"loss": sum(s.loss for s in applied) / len(applied)}
        for key in applied[0].terms:
            out[key] = sum(s.terms[key] for s in applied) / len(applied)
        out["grad_norm"] = sum(s.grad_norm for s in applied) / len(applied)
        return out

    def timing(self, images_per_step: int) -> dict[str, Any]:
        """Mean step time, data time and throughput; the numbers of skipped steps and of
        replaced images."""
        count = max(len(self.steps), 1)
        seconds = sum(s.seconds for s in self.steps) / count
        return {
            "time": seconds,
            "data_time": sum(s.data_seconds for s in self.steps) / count,
            "images_per_s": images_per_step / seconds if seconds > 0 else None,
            "skipped": sum(not s.applied for s in self.steps),
            "skipped_images": sum(s.skipped_images for s in self.steps),
        }


class MetricsLog:
    """Appends JSON records, one per line, to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def start(self, iteration: int) -> None:
        """Begin a run at ``iteration``: a fresh file at 0, else drop the records after it
        (a resumed run redoes those iterations) and any unreadable line (warned)."""
        kept = []
        if iteration > 0 and self.path.is_file():
            kept = [record for record in self.read() if _iteration(record) <= iteration]
        text = "".join(json.dumps(_finite(record), allow_nan=False) + "\n" for record in kept)
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def append(self, record: dict[str, Any]) -> None:
        """Add one record (NaN and infinities are written as ``null``: strict JSON)."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_finite(record), allow_nan=False) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """All records, in file order (:func:`~sparsercnn.json_lines.read_json_lines`: a line
        cut off by a killed run is skipped with a warning)."""
        return read_json_lines(self.path) if self.path.is_file() else []

    def plot(self, output_png: Path) -> Path | None:
        """Draw the curves of the log into ``output_png``; a plotting failure is logged, never
        fatal to a finished run. Returns the PNG, or ``None`` when plotting failed."""
        # Imported here: matplotlib is slow to import and needed once per run.
        from sparsercnn.visualization.plots import plot_training_curves

        try:
            plot_training_curves(self.path, output_png)
        except Exception as error:
            logger.warning("could not plot the training curves: %s", error)
            return None
        return output_png


def _iteration(record: dict[str, Any]) -> float:
    """The ``iter`` of a record; one without a number there counts as the run's start."""
    value = record.get("iter")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value

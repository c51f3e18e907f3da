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

import contextlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsercnn.atomic_file import atomic_write
from sparsercnn.json_lines import read_json_lines
from sparsercnn.json_values import is_number

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
    """The steps since the last record, as running sums: a window as long as the run
    (``train.log_period <= 0``: a record at checkpoints and at the end only) costs no more
    memory than one of a few steps. The sums add in step order, as ``sum()`` over the steps
    would: the records are the same bit for bit.

    Attributes:
        num_steps: steps added since the last :meth:`clear`.
        lr: the learning rate of the last step added.
    """

    num_steps: int = 0
    lr: float = math.nan
    _num_applied: int = 0
    _loss: float = 0.0
    _terms: dict[str, float] = field(default_factory=dict)
    _grad_norm: float = 0.0
    _seconds: float = 0.0
    _data_seconds: float = 0.0
    _skipped: int = 0
    _skipped_images: int = 0

    def add(self, stats: StepStats) -> None:
        """Count one step in the window."""
        self.num_steps += 1
        self.lr = stats.lr
        self._seconds += stats.seconds
        self._data_seconds += stats.data_seconds
        self._skipped += not stats.applied
        self._skipped_images += stats.skipped_images
        if stats.applied:  # skipped steps have non-finite values
            self._num_applied += 1
            self._loss += stats.loss
            for key, value in stats.terms.items():
                self._terms[key] = self._terms.get(key, 0.0) + value
            self._grad_norm += stats.grad_norm

    def clear(self) -> None:
        """Start a new window (after a record)."""
        vars(self).update(vars(LogWindow()))

    def loss_means(self) -> dict[str, float]:
        """``loss``, every term and ``grad_norm`` averaged over the applied steps; empty when
        every step was skipped."""
        count = self._num_applied
        if not count:
            return {}
        out = {"loss": self._loss / count}
        out.update({key: total / count for key, total in self._terms.items()})
        out["grad_norm"] = self._grad_norm / count
        return out

    def timing(self, images_per_step: int) -> dict[str, Any]:
        """Mean step time, data time and throughput; the numbers of skipped steps and of
        replaced images."""
        count = max(self.num_steps, 1)
        seconds = self._seconds / count
        return {
            "time": seconds,
            "data_time": self._data_seconds / count,
            "images_per_s": images_per_step / seconds if seconds > 0 else None,
            "skipped": self._skipped,
            "skipped_images": self._skipped_images,
        }


class MetricsLog:
    """Appends JSON records, one per line, to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def start(self, iteration: int) -> None:
        """Begin a run at ``iteration``: drop the records after it (a resumed run redoes those
        iterations) and any unreadable line (warned). The file is made by the first record
        (:meth:`append`): a run stopped before it leaves none."""
        if not self.path.is_file():
            return
        kept = [record for record in self.read() if _iteration(record) <= iteration]
        text = "".join(json.dumps(_finite(record), allow_nan=False) + "\n" for record in kept)
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def append(self, record: dict[str, Any]) -> None:
        """Add one record (NaN and infinities are written as ``null``: strict JSON).

        Raises:
            OSError: the line could not be written (a full disk); the message names the file,
                which is left as it was: no part of the line stays to merge with the next.
        """
        line = (json.dumps(_finite(record), allow_nan=False) + "\n").encode("utf-8")
        with open(self.path, "ab", buffering=0) as handle:
            size = handle.tell()
            try:
                written = 0
                while written < len(line):
                    written += handle.write(line[written:]) or 0
            except OSError as error:
                with contextlib.suppress(OSError):
                    handle.truncate(size)
                message = (
                    f"could not add a record to {self.path} ({error.strerror or error}); its "
                    "earlier records are intact"
                )
                if error.errno is None:
                    raise OSError(message) from error
                raise OSError(error.errno, message) from error

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
    return value if is_number(value) else 0


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value

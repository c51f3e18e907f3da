"""A wall-clock budget for a training run: measure the pace, then stop in time.

:class:`TimeBudget` records iteration durations (skipping the first, slow ones), reports the
pace over a sliding window of recent iterations, asks for a refit of the schedule once the first
window is full and then every ``refit_every`` iterations (the pace drifts with the machine's
load and the data), and says when the next iteration plus the end-of-run work (final checkpoint
and evaluation) would no longer fit. The trainer uses the
measurement to shorten its schedule with
:func:`~sparsercnn.engine.lr_schedule.fit_schedule_to_budget`.
"""

from __future__ import annotations

import time
from collections import deque

# Before the first evaluation, its cost per image is guessed as this fraction of a training
# iteration's cost per image (a forward pass only, no matching or backward), plus a fixed
# COCOeval overhead.
EVAL_COST_RATIO = 0.5
EVAL_OVERHEAD_S = 2.0
# Writing the final model file and drawing the training curves.
FINISH_OVERHEAD_S = 2.0


class TimeBudget:
    """Tracks elapsed time against a budget of ``seconds`` that began at ``start``.

    Args:
        seconds: the whole budget.
        start: ``time.perf_counter()`` value at which the budget began.
        skip_iters: first iterations left out of the measurement (start-up, allocator warm-up).
        measure_iters: recent iterations averaged for :attr:`seconds_per_iter`.
        refit_every: after the first measurement, ask for a refit this often (iterations).
    """

    def __init__(
        self,
        seconds: float,
        start: float,
        *,
        skip_iters: int = 2,
        measure_iters: int = 8,
        refit_every: int = 25,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"the time budget must be positive, got {seconds} s")
        if measure_iters < 1 or skip_iters < 0 or refit_every < 1:
            raise ValueError(
                "need measure_iters >= 1, skip_iters >= 0 and refit_every >= 1, got "
                f"{measure_iters}, {skip_iters}, {refit_every}"
            )
        self.seconds = seconds
        self.start = start
        self.skip_iters = skip_iters
        self.measure_iters = measure_iters
        self.refit_every = refit_every
        self._seen = 0
        self._num_measured = 0
        self._recent: deque[float] = deque(maxlen=measure_iters)

    def record(self, iteration_seconds: float) -> bool:
        """Note one iteration's duration; True when the schedule should be (re)fitted now."""
        self._seen += 1
        if self._seen <= self.skip_iters:
            return False
        self._recent.append(iteration_seconds)
        self._num_measured += 1
        past_first = self._num_measured - self.measure_iters
        return past_first >= 0 and past_first % self.refit_every == 0

    @property
    def seconds_per_iter(self) -> float | None:
        """Mean duration of the last ``measure_iters`` measured iterations (``None`` before)."""
        return sum(self._recent) / len(self._recent) if self._recent else None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        """Seconds left (negative once overrun)."""
        return self.seconds - self.elapsed()

    def should_stop(self, next_iter_seconds: float, reserve_seconds: float) -> bool:
        """Whether one more iteration and the ``reserve_seconds`` of final work overrun."""
        return next_iter_seconds + reserve_seconds > self.remaining()


def estimate_eval_seconds(
    seconds_per_iter: float, images_per_iter: int, num_eval_images: int
) -> float:
    """Guess the duration of an evaluation that has not been measured yet.

    Args:
        seconds_per_iter: measured seconds of one training iteration on this process.
        images_per_iter: images one training iteration processes on this process.
        num_eval_images: images this process evaluates (its shard).
    """
    per_image = seconds_per_iter / max(images_per_iter, 1)
    return EVAL_COST_RATIO * per_image * num_eval_images + EVAL_OVERHEAD_S

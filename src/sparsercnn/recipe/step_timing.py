"""A short timing of training steps, for the recipe's budget arithmetic.

:func:`measure_step_seconds` runs a few real optimiser steps
(:func:`~sparsercnn.engine.step_timing.time_train_steps`) of a freshly built model on random
images of one size, and :class:`StepCost` fits ``seconds = fixed + per_pixel * pixels`` through
two such timings, so the recipe can price every candidate input size without timing each;
:class:`ImageLoadCost` adds what loading the batch's images costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsercnn.config import Config
from sparsercnn.engine.step_timing import synthetic_batch, time_train_steps

# Steps timed after the first, which pays for allocations and kernel selection. The fastest is
# kept: other work on the machine only ever slows a step down.
TIMED_STEPS = 3


def measure_step_seconds(
    cfg: Config, size: tuple[int, int], device: torch.device, num_boxes: int = 8
) -> float:
    """Seconds of a training step of ``cfg``'s model at ``cfg.train.batch_size`` images of
    ``size`` ``(h, w)`` on ``device``: the fastest of ``TIMED_STEPS`` steps after a first one.

    The model starts from random weights; the timing does not depend on them.
    """
    batch = synthetic_batch(cfg.train.batch_size, size, cfg.model.num_classes, num_boxes)
    return min(time_train_steps(cfg, batch, device, TIMED_STEPS + 1)[1:])


@dataclass(frozen=True)
class StepCost:
    """Seconds of one training step as a function of the input size:
    ``max(fixed + per_pixel * h * w, minimum)`` (the head's cost does not grow with the image,
    the backbone's and FPN's grow with its pixels; ``minimum`` is the floor of a step that does
    not grow at all over the timed sizes)."""

    fixed: float
    per_pixel: float
    minimum: float = 0.0

    @staticmethod
    def fit(small: tuple[int, float], large: tuple[int, float]) -> StepCost:
        """Through two ``(pixels, seconds)`` timings, ``small`` with fewer pixels.

        A larger input never costs less. When the timings say so (a GPU step bound by kernel
        launches rather than pixels, or a CPU that was busier during the first timing), a step
        is priced at the larger timing up to its size, and in proportion to the pixels beyond
        it: no size looks cheaper than a measured step, and large inputs are not priced as free.
        """
        (p0, s0), (p1, s1) = small, large
        if not 0 < p0 < p1:
            raise ValueError(f"need 0 < small pixels < large pixels, got {p0} and {p1}")
        if s1 <= s0:
            return StepCost(fixed=0.0, per_pixel=s1 / p1, minimum=s1)
        per_pixel = (s1 - s0) / (p1 - p0)
        return StepCost(fixed=max(s0 - per_pixel * p0, 0.0), per_pixel=per_pixel)

    def seconds(self, pixels: float) -> float:
        """Seconds of a step whose (padded) images have ``pixels`` pixels each."""
        return max(self.fixed + self.per_pixel * pixels, self.minimum)


@dataclass(frozen=True)
class ImageLoadCost:
    """What loading one training image costs, timed on a few of the set's images (medians).

    Attributes:
        decode_seconds: decoding the file at the resolution training needs.
        resize_seconds: resizing the decoded image to the training input.
        decoded_bytes: memory of the decoded image in the dataset's image cache.
    """

    decode_seconds: float
    resize_seconds: float
    decoded_bytes: float

    def per_sample(self, num_images: int, cache_bytes: int) -> float:
        """Seconds per training sample: the resize alone when the set's ``num_images`` decoded
        images fit the dataset's image cache of ``cache_bytes`` (each is then decoded once),
        else decoding and resizing."""
        if self.decoded_bytes * num_images <= cache_bytes:
            return self.resize_seconds
        return self.decode_seconds + self.resize_seconds

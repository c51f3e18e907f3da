"""The automatic recipe's input size: object size against training steps.

A larger input makes objects larger in pixels; a smaller one buys more steps within the budget.
The candidates (:func:`candidate_inputs`) are resizes of two kinds: a short side with the long
side capped at the images' aspect, and every image fitted into a square (the long side at the
square's side), which gives near-square images more pixels. Each is priced by the padded pixels
of a training batch (:meth:`~sparsercnn.recipe.dataset_profile.DatasetProfile.padded_batch_pixels`,
batches of one orientation each as training groups them): a square costs little more than the
capped short side where the images are near-square, and more where landscape and portrait
images are grouped apart.
:func:`choose_input_size` picks the candidate that maximises the product of

- the **size score** (:func:`size_score`): the boxes' mean of ``log(s / INVISIBLE_BOX_PX) /
  log(FULL_BOX_PX / INVISIBLE_BOX_PX)`` clipped to 0-1, ``s = sqrt(w * h)`` after resizing.
  AP grows about linearly with the log of an object's size: the paper's R50 model gets 26.7 /
  44.6 / 57.6 AP on COCO's small (under 32 px), medium (32-96 px) and large objects, steps of
  similar height for size classes about three times apart. A box stops gaining from about where
  COCO's large objects start at the paper's input scale (96 px x 800 / 480); under a few pixels
  it is not detected at all. Measured on the synthetic ``large_few`` set (10-minute runs, about
  the same steps): every image fitted into 192x192 instead of 160x160 (boxes of 31 instead of
  26 px at the median) gave AP 0.36 / 0.31 (seeds 1 / 2) against 0.21 / 0.24, and 256x256
  0.35 (seed 1) with 14% fewer steps; a rule counting boxes as resolved from 12 px on saw no
  difference between them;
- the **training progress** (:func:`training_progress`):
  ``1 - exp(-(steps - LEARNING_DELAY_STEPS) / PROGRESS_STEPS)``, the share of what a run learns
  that so many steps reach. Fitted to measured runs of the small model: nothing after ~100 steps,
  AP 0.061 after 869 steps against 0.012 after 386 (5 in the model's ratio), 0.44 after 1100
  against 0.59 after 1540 (0.80),

then takes a larger input while the budget still gives :data:`ENOUGH_STEPS` steps (finer
localisation of objects past FULL_BOX_PX once the steps no longer limit), or the given steps
(``train.max_iter``), which a larger input does not reduce while the budget fits them. Inputs are
never larger than the images' own size.

:func:`resolvable_share` answers a different question, for the warnings and the untimed recipe:
which share of the boxes can be told apart at all (a ramp from :data:`INVISIBLE_BOX_PX` to
:data:`RESOLVED_BOX_PX`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sparsercnn.data.transforms import TrainTransform
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.text import counted

INVISIBLE_BOX_PX = 4.0
FULL_BOX_PX = 160.0
RESOLVED_BOX_PX = 12.0
LEARNING_DELAY_STEPS = 300.0
PROGRESS_STEPS = 800.0
ENOUGH_STEPS = 2000
MIN_SHORT_SIDE = 128
MAX_SHORT_SIDE = 800
SIZE_STEP = 32
# The long side never exceeds this multiple of the short side (the paper's 1333 / 800).
MAX_ASPECT = 1333 / 800


@dataclass(frozen=True)
class InputSize:
    """A resize (spec 1.2's shortest edge with a long-edge cap): short side ``short``, long side
    at most ``long``; ``short == long`` fits every image into a ``long`` x ``long`` square."""

    short: int
    long: int

    def transform(self) -> TrainTransform:
        """The training transform of this resize alone (no crop; flips change no size)."""
        return TrainTransform(min_sizes=(self.short,), max_size=self.long)

    def __str__(self) -> str:
        if self.short == self.long:
            return f"fit into {self.long}x{self.long}"
        return f"{self.short} (long side <= {self.long})"


@dataclass(frozen=True)
class InputChoice:
    """The chosen input size and why; the cheapest size that resolves the boxes; the value of
    the trade (size score x training progress) at the best size."""

    size: InputSize
    reason: str
    resolving: InputSize
    value: float


def candidate_sides(profile: DatasetProfile) -> list[int]:
    """Short sides in SIZE_STEP steps up to the images' own (median), at most MAX_SHORT_SIDE;
    from MIN_SHORT_SIDE, or from the images' own size when they are smaller."""
    return _sides_up_to(profile.median_short_side, MAX_SHORT_SIDE)


def max_size_for(profile: DatasetProfile, side: int) -> int:
    """The long-side cap that goes with a short side: the images' aspect, at most MAX_ASPECT."""
    ratio = min(profile.long_to_short, MAX_ASPECT)
    return int(math.ceil(side * ratio / SIZE_STEP) * SIZE_STEP)


def candidate_inputs(profile: DatasetProfile) -> list[InputSize]:
    """Every short side of :func:`candidate_sides` with its long-side cap, and squares in
    SIZE_STEP steps up to the images' own long side (median); cheapest first (by the padded
    pixels of a batch of 8, then the short-side kind)."""
    sizes = {InputSize(side, max_size_for(profile, side)) for side in candidate_sides(profile)}
    long_sides = np.maximum(profile.image_heights, profile.image_widths)
    top = max_size_for(profile, MAX_SHORT_SIDE)
    sizes |= {InputSize(side, side) for side in _sides_up_to(float(np.median(long_sides)), top)}
    return sorted(
        sizes, key=lambda s: (profile.padded_batch_pixels(s.transform(), 8), s.long, s.short)
    )


def size_score(profile: DatasetProfile, size: InputSize) -> float:
    """Mean over the boxes of ``log(s / INVISIBLE_BOX_PX) / log(FULL_BOX_PX / INVISIBLE_BOX_PX)``
    clipped to 0-1, ``s`` a box's ``sqrt(w * h)`` at ``size``."""
    sides = profile.box_sides_at(size.short, size.long)
    score = np.log(np.maximum(sides, 1e-6) / INVISIBLE_BOX_PX) / math.log(
        FULL_BOX_PX / INVISIBLE_BOX_PX
    )
    return float(np.clip(score, 0.0, 1.0).mean())


def resolvable_share(profile: DatasetProfile, size: InputSize) -> float:
    """Mean over the boxes of a 0-1 ramp from INVISIBLE_BOX_PX to RESOLVED_BOX_PX px."""
    sides = profile.box_sides_at(size.short, size.long)
    ramp = (sides - INVISIBLE_BOX_PX) / (RESOLVED_BOX_PX - INVISIBLE_BOX_PX)
    return float(np.clip(ramp, 0.0, 1.0).mean())


def training_progress(steps: float) -> float:
    """Share of what training learns that ``steps`` steps reach: nothing in the first 300,
    then ``1 - exp(-(steps - 300) / 800)``."""
    return 1.0 - math.exp(-max(steps - LEARNING_DELAY_STEPS, 0.0) / PROGRESS_STEPS)


def proposal_coverage(profile: DatasetProfile, num_proposals: int) -> float:
    """Share of the boxes that ``num_proposals`` proposals can detect (at most one box each)."""
    detectable = np.minimum(profile.objects_per_image, num_proposals).sum()
    return float(detectable / max(profile.num_boxes, 1))


def choose_input_size(
    profile: DatasetProfile,
    steps_at: Callable[[InputSize], float],
    *,
    given_steps: int | None = None,
) -> InputChoice:
    """The input size for training and evaluation.

    Args:
        profile: the training set.
        steps_at: the steps the budget gives at an input size.
        given_steps: the steps given (``train.max_iter``), which the run trains at any size the
            budget fits them at: there a larger input costs no steps, and the largest is taken.
    """
    candidates = candidate_inputs(profile)
    scores = {size: size_score(profile, size) for size in candidates}

    def steps(size: InputSize) -> float:
        budget = steps_at(size)
        return budget if given_steps is None else min(budget, given_steps)

    def value(size: InputSize) -> float:
        return scores[size] * training_progress(steps(size))

    # Of equal values (none where too few steps to learn anything), the most steps (the
    # cheapest), then the largest objects (of sizes that train the same steps).
    size = max(candidates, key=lambda s: (value(s), steps(s), scores[s]))
    best_value, median = value(size), _median_box(profile, size)
    reason = (
        f"boxes of {median:.0f} px (median) with ~{counted(int(steps(size)), 'step')}: the "
        "best trade of object size against training steps"
    )
    roomy = [s for s in candidates if _median_box(profile, s) > median and steps(s) >= ENOUGH_STEPS]
    if roomy:
        size = max(roomy, key=lambda s: _median_box(profile, s))
        reason = f"the largest objects at which {ENOUGH_STEPS}+ steps fit the budget"
    if given_steps is not None and steps_at(size) >= given_steps:
        reason = (
            f"boxes of {_median_box(profile, size):.0f} px (median): the largest objects at "
            f"which the budget fits the given {counted(given_steps, 'step')}"
        )
    if not enlarges(profile, size) and resolvable_share(profile, size) < 0.99:
        reason = largest_input_reason(profile, size)
    return InputChoice(size, reason, _resolving_input(profile, candidates), best_value)


def enlarges(profile: DatasetProfile, size: InputSize) -> bool:
    """Whether a candidate makes the boxes larger (median) than ``size`` does."""
    median = _median_box(profile, size)
    return any(_median_box(profile, s) > median + 1e-9 for s in candidate_inputs(profile))


def largest_input(profile: DatasetProfile) -> InputSize:
    """The candidate that makes the boxes largest (median): the images' own size, or the cap
    of MAX_SHORT_SIDE for larger images."""
    return max(candidate_inputs(profile), key=lambda s: _median_box(profile, s))


def shrink_factor(profile: DatasetProfile, size: InputSize) -> float:
    """The median factor by which ``size`` resizes the images (1: their own size)."""
    return float(np.median(profile.resize_scales(size.short, size.long)))


def largest_input_reason(profile: DatasetProfile, size: InputSize) -> str:
    """Why no larger input is taken where ``size`` is the largest: the images are shown at
    their own size, the candidates stop at the median image's size in SIZE_STEP steps (under
    it: images of several sizes, or sizes off the steps), or the recipe's cap on the input
    shrinks them."""
    scale = shrink_factor(profile, size)
    if scale >= 0.99:
        return "the images' own size (inputs are never upscaled)"
    if size.short < MAX_SHORT_SIDE and size.long < max_size_for(profile, MAX_SHORT_SIDE):
        return (
            f"about the images' own size (inputs go up to the median image's, in {SIZE_STEP}-px "
            f"steps): the images are shrunk to {scale:.0%} of their size"
        )
    return (
        f"the largest input the recipe considers (about the paper's {MAX_SHORT_SIDE}-px short "
        f"side): the images are shrunk to {scale:.0%} of their size"
    )


def _resolving_input(profile: DatasetProfile, candidates: list[InputSize]) -> InputSize:
    """The cheapest of ``candidates`` at which 99% of the boxes are resolved (else the last)."""
    return next((s for s in candidates if resolvable_share(profile, s) >= 0.99), candidates[-1])


def _median_box(profile: DatasetProfile, size: InputSize) -> float:
    return float(np.median(profile.box_sides_at(size.short, size.long)))


def _sides_up_to(native: float, largest: int) -> list[int]:
    """Sides in SIZE_STEP steps from MIN_SHORT_SIDE (or less, for smaller images) up to
    ``native`` rounded down, at most ``largest``."""
    top = min(max(SIZE_STEP, int(native // SIZE_STEP * SIZE_STEP)), largest)
    return list(range(min(MIN_SHORT_SIDE, top), top + 1, SIZE_STEP))

"""The automatic recipe's input size: small objects against training steps.

A larger input keeps small objects resolvable; a smaller one buys more steps within the budget.
:func:`choose_input_side` picks the short side that maximises the product of

- the **resolvable share** (:func:`resolvable_share`): the boxes' mean of a ramp that is 0 at
  :data:`INVISIBLE_BOX_PX` pixels (``sqrt(w * h)`` after resizing) and 1 from
  :data:`RESOLVED_BOX_PX` on (two and three cells of the stride-4 level small boxes are pooled
  from), and
- the **training progress** (:func:`training_progress`):
  ``1 - exp(-(steps - LEARNING_DELAY_STEPS) / PROGRESS_STEPS)``, the share of what a run learns
  that so many steps reach. Fitted to measured runs of the small model: nothing after ~100 steps,
  AP 0.061 after 869 steps against 0.012 after 386 (5 in the model's ratio), 0.44 after 1100
  against 0.59 after 1540 (0.80),

then grows the input while the budget still gives :data:`ENOUGH_STEPS` steps (finer
localisation once the steps no longer limit). Inputs are never larger than the images' own size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sparsercnn.recipe.dataset_profile import DatasetProfile

INVISIBLE_BOX_PX = 4.0
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
class SideChoice:
    """The chosen short side, why, the smallest side that resolves the boxes, and the value of
    the trade (resolvable share x training progress) at the best side."""

    side: int
    reason: str
    resolving_side: int
    value: float


def candidate_sides(profile: DatasetProfile) -> list[int]:
    """Short sides in SIZE_STEP steps up to the images' own (median), at most MAX_SHORT_SIDE;
    from MIN_SHORT_SIDE, or from the images' own size when they are smaller."""
    native = max(SIZE_STEP, int(profile.median_short_side // SIZE_STEP * SIZE_STEP))
    top = min(native, MAX_SHORT_SIDE)
    return list(range(min(MIN_SHORT_SIDE, top), top + 1, SIZE_STEP))


def max_size_for(profile: DatasetProfile, side: int) -> int:
    """The long-side cap that goes with a short side: the images' aspect, at most MAX_ASPECT."""
    ratio = min(profile.long_to_short, MAX_ASPECT)
    return int(math.ceil(side * ratio / SIZE_STEP) * SIZE_STEP)


def resolvable_share(profile: DatasetProfile, side: int) -> float:
    """Mean over the boxes of a 0-1 ramp from INVISIBLE_BOX_PX to RESOLVED_BOX_PX px."""
    sides = profile.box_sides_at(side, max_size_for(profile, side))
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


def choose_input_side(profile: DatasetProfile, steps_at: Callable[[int], float]) -> SideChoice:
    """The short side for training and evaluation.

    Args:
        profile: the training set.
        steps_at: the steps the budget gives at a short side.
    """
    candidates = candidate_sides(profile)
    shares = {side: resolvable_share(profile, side) for side in candidates}
    resolving = next((s for s in candidates if shares[s] >= 0.99), candidates[-1])

    def value(side: int) -> float:
        return shares[side] * training_progress(steps_at(side))

    side = max(candidates, key=lambda s: (value(s), -s))
    best = value(side)
    reason = (
        f"resolves {shares[side]:.0%} of the boxes with ~{int(steps_at(side))} steps: the best "
        "trade of object size against training steps"
    )
    roomy = [s for s in candidates if s > side and steps_at(s) >= ENOUGH_STEPS]
    if roomy:
        side = max(roomy)
        reason = f"the largest size at which {ENOUGH_STEPS}+ steps fit the budget"
    if side == candidates[-1] and shares[side] < 0.99:
        reason = "the images' own size (inputs are never upscaled)"
    return SideChoice(side, reason, resolving, best)

"""Warnings about a training set that no recipe can fix: tiny boxes, crowds beyond the proposals,
rare classes, too few images to learn from scratch. Each names what and how many, and what to do.
"""

from __future__ import annotations

import numpy as np

from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.input_size import (
    InputSize,
    largest_input,
    largest_input_reason,
    shrink_factor,
)
from sparsercnn.text import counted, listing, verb

# A box whose sqrt(w * h) falls below this after resizing covers under two cells of the
# stride-4 level (P2) that small boxes are pooled from: the model can hardly tell it apart.
MIN_RESOLVABLE_PX = 8.0
# Tiny boxes are warned about from this share of the boxes on.
TINY_BOX_WARNING_SHARE = 0.02
FEW_BOXES_PER_CLASS = 10
# Below these, training from scratch cannot learn much: start from a published model.
SMALL_SET_IMAGES = 100
SMALL_SET_BOXES = 300


def tiny_box_warning(
    profile: DatasetProfile, size: InputSize, *, given: bool = False
) -> str | None:
    """How many boxes are under MIN_RESOLVABLE_PX at the input size, and of which classes; and
    whether a larger input (a longer budget, or with ``given``, a larger ``--set`` size than the
    one given) would help, or none the recipe considers does."""
    tiny = profile.box_sides_at(size.short, size.long) < MIN_RESOLVABLE_PX
    if tiny.mean() < TINY_BOX_WARNING_SHARE:
        return None
    largest = largest_input(profile)
    tiny_at_largest = float(
        (profile.box_sides_at(largest.short, largest.long) < MIN_RESOLVABLE_PX).mean()
    )
    if given and tiny_at_largest < tiny.mean() - TINY_BOX_WARNING_SHARE:
        advice = (
            f"the input size is the one --set input.* gives: set a larger one (at input size "
            f"{largest}, {tiny_at_largest:.0%} are under {MIN_RESOLVABLE_PX:.0f} px)"
        )
    elif tiny_at_largest < tiny.mean() - TINY_BOX_WARNING_SHARE:
        advice = (
            f"a longer --time-budget allows a larger input size (at input size {largest}, "
            f"{tiny_at_largest:.0%} are under {MIN_RESOLVABLE_PX:.0f} px)"
        )
    elif shrink_factor(profile, largest) >= 0.99:
        advice = "they are that small in the images themselves (inputs are never upscaled)"
    else:
        advice = (
            f"no input the recipe considers helps ({largest}: "
            f"{largest_input_reason(profile, largest)}); train on tiles cut from the images, "
            "or set a larger input with --set (input.train_min_sizes, input.train_max_size, "
            "input.test_min_size, input.test_max_size; slower steps)"
        )
    num_tiny = int(tiny.sum())
    return (
        f"{num_tiny} of {tiny.size} boxes ({tiny.mean():.0%}) {verb(num_tiny, 'is')} under "
        f"{MIN_RESOLVABLE_PX:.0f} px at input size {size} ({most_affected_classes(profile, tiny)}) "
        f"and will be hard to detect; {advice}"
    )


def crowd_warning(profile: DatasetProfile, num_proposals: int, remedy: str) -> str | None:
    """Images with more objects than proposals: how many boxes cannot be detected (one proposal
    detects at most one box), in how many images; ``remedy`` says what to do (it depends on why
    the proposals are fewer)."""
    crowded = int((profile.objects_per_image > num_proposals).sum())
    if not crowded:
        return None
    lost = int(np.maximum(profile.objects_per_image - num_proposals, 0).sum())
    images = counted(crowded, "image")
    return (
        f"{lost} of {profile.num_boxes} boxes ({lost / profile.num_boxes:.0%}) cannot be detected: "
        f"{images} {verb(crowded, 'has')} more objects than the {num_proposals} "
        f"proposals (up to {profile.max_objects} in one image); {remedy}"
    )


def rare_class_warning(profile: DatasetProfile) -> str | None:
    """Classes with fewer than FEW_BOXES_PER_CLASS boxes."""
    counts = profile.boxes_per_class.tolist()
    few = [
        f"{name} ({count})"
        for name, count in zip(profile.class_names, counts, strict=True)
        if count < FEW_BOXES_PER_CLASS
    ]
    if not few:
        return None
    return (
        f"{counted(len(few), 'class', 'classes')} {verb(len(few), 'has')} fewer than "
        f"{FEW_BOXES_PER_CLASS} boxes: {listing(few, limit=8)}; expect a low AP on them"
    )


def small_set_warning(profile: DatasetProfile) -> str | None:
    """A set too small to train a detector from scratch."""
    if profile.num_images >= SMALL_SET_IMAGES and profile.num_boxes >= SMALL_SET_BOXES:
        return None
    boxes = counted(profile.num_boxes, "box", "boxes")
    return (
        f"{counted(profile.num_images, 'image')} with {boxes}: "
        "too few to train a detector from scratch; start from a published model with --init-from "
        "r50_100pro_3x (weights downloaded once) or your own model file"
    )


def most_affected_classes(profile: DatasetProfile, tiny: np.ndarray, limit: int = 4) -> str:
    """``"star 40%, ring 12%"``: the classes with the largest share of tiny boxes."""
    counts = np.bincount(profile.box_labels[tiny], minlength=profile.num_classes)
    shares = counts / np.maximum(profile.boxes_per_class, 1)
    order = [i for i in np.argsort(-shares) if counts[i] > 0][:limit]
    return ", ".join(f"{profile.class_names[i]} {shares[i]:.0%}" for i in order)

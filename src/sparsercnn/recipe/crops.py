"""The automatic recipe's augmentation: flips always; from scratch, random crops as well when
the schedule passes over each image many times.

The evidence is the passes (the run's steps x images per step / the set's images) and the
images' shapes: a crop's frame would enlarge elongated images, or ones fitted into a square,
beyond their own zoom (:func:`crop_frame_zoom`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.explanation import passes_text
from sparsercnn.recipe.input_size import InputSize
from sparsercnn.text import counted

# From this many passes over each training image (steps x batch / images), training from scratch
# adds random crops to the flips: many passes over few images let the model memorise them.
# 10 minutes, seed 1: 43 aerial photos of tree crowns (745 boxes), ~330 passes, AP 0.016 with flips
# only (a run on another split of the photos: 0.95 on its training images) against 0.111 with
# crops; 1-3 large objects on 160 photos, ~80 passes, 0.548 against 0.600; the demo's shapes (600
# images), ~24 passes, 0.727 against 0.692. The demo's own runs (~46-52 passes) stay below, with
# room for a faster machine.
CROP_FROM_PASSES = 70
# The crop policy (spec 1.3) at the input's short side S: resize the short side to one of these
# multiples of S, cut a window of CROP_WINDOW x S per side (at most the image), resize it to S. At
# S = 320 these are the paper's 400-600 px and 384-600 px windows: zooms of up to ~1.5x.
CROP_PRE_SIZES = (1.25, 1.5625, 1.875)
CROP_WINDOW = (1.2, 1.875)
CROP_KEYS = ("input.crop", "input.crop_pre_sizes", "input.crop_size")
# A crop is resized to the input's short side S, an image whose resize its long side bounds (an
# elongated image, or one fitted into a square) to less: crops enlarge such images by S over
# their resized short side on top of their own zoom, and the pre-crop resize (no long-side cap)
# makes a 200x4000 image fitted into 1280x1280 one of 2400x48000. Crops are left out when the
# median image is enlarged more than this (a guard, not a measured optimum).
CROP_MAX_FRAME_ZOOM = 2.0


def crop_windows(short: int) -> tuple[tuple[int, ...], tuple[int, int]]:
    """``(crop_pre_sizes, crop_size)`` of the crop policy at the input's short side ``short``
    (CROP_PRE_SIZES and CROP_WINDOW times it)."""
    pre_sizes = tuple(round(short * factor) for factor in CROP_PRE_SIZES)
    return pre_sizes, (round(short * CROP_WINDOW[0]), round(short * CROP_WINDOW[1]))


def crop_frame_zoom(profile: DatasetProfile, size: InputSize) -> float:
    """The median image's enlargement by a crop's frame: the input's short side over the
    image's short side at the input ``size`` (1 where the short side sets the resize)."""
    heights, widths = profile.image_heights, profile.image_widths
    scales = profile.resize_scales(size.short, size.long)
    return float(np.median(size.short / (np.minimum(heights, widths) * scales)))


def passes(draft: RecipeDraft, steps: float) -> float:
    """The passes over each image of ``steps`` steps at the run's images per step."""
    return steps * draft.images_per_step / draft.profile.num_images


def choose_crops(draft: RecipeDraft, steps: int) -> bool:
    """Whether to add random crops to the flips: when the run's ``steps`` (priced with flips
    alone) pass over each image CROP_FROM_PASSES times or more, unless a crop's frame would
    enlarge the images more than CROP_MAX_FRAME_ZOOM. Their windows follow the input the run
    trains at (a --set input.* one included), even without crops, for a --set
    input.crop=true; steps priced from here on are those with the crops
    (:func:`~sparsercnn.recipe.step_budget.pixels`)."""
    crop = (
        passes(draft, steps) >= CROP_FROM_PASSES
        and crop_frame_zoom(draft.profile, draft.trained_size(test=True)) <= CROP_MAX_FRAME_ZOOM
    )
    pre_sizes, window = crop_windows(draft.trained().input.test_min_size)
    draft.cfg.input = replace(
        draft.cfg.input, crop=crop, crop_pre_sizes=pre_sizes, crop_size=window
    )
    return crop


def note_augmentation(draft: RecipeDraft) -> None:
    """The augmentation's row (:func:`choose_crops`), with the passes of the run's steps."""
    images = draft.profile.num_images
    run_passes = passes(draft, draft.iterations)
    reason = f"{passes_text(run_passes)} over each of {counted(images, 'image')}"
    if draft.cfg.input.crop:
        reason += ": crops keep the model from memorising them"
        draft.note("augmentation", "flips, random crops", reason, *CROP_KEYS)
        return
    zoom = crop_frame_zoom(draft.profile, draft.trained_size(test=True))
    if run_passes >= CROP_FROM_PASSES and zoom > CROP_MAX_FRAME_ZOOM:
        short = draft.trained().input.test_min_size
        reason += (
            f"; no random crops: a crop is resized to the input's {short}-px short side, "
            f"which would enlarge these images {zoom:.1f}x more than the input size does"
        )
    draft.note("augmentation", "flips", reason, *CROP_KEYS)

"""The automatic recipe's learning rate, and what it freezes when fine-tuning.

The evidence is whether the run starts from weights, the images per step over every process
(the rate follows them), and with a detector checkpoint the set's number of boxes (few: the
backbone and FPN stay frozen).
"""

from __future__ import annotations

import math

from sparsercnn.recipe import advice
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.text import counted

# AdamW's rate from scratch at 8 images per step; other batches scale it by sqrt(batch / 8).
SCRATCH_LR_BATCH_8 = 7e-4


def set_learning_rate(draft: RecipeDraft) -> None:
    """From scratch, SCRATCH_LR_BATCH_8 scaled by the square root of the images per step; with
    weights, the paper's fine-tuning rate per 16 images (scaled linearly by the trainer), and
    the backbone and FPN frozen where a detector checkpoint meets under
    :data:`~sparsercnn.recipe.advice.SMALL_SET_BOXES` boxes. With their rows."""
    train = draft.cfg.train
    if draft.from_scratch:
        train.scale_lr = False
        train.lr = SCRATCH_LR_BATCH_8 * math.sqrt(draft.images_per_step / 8)
        reason = "AdamW from scratch (sqrt batch scaling)"
        draft.note("learning rate", f"{train.lr:.2g}", reason, "train.lr", "train.scale_lr")
        return
    train.scale_lr = True  # the paper's 2.5e-5 per 16 images, scaled linearly
    reason = "the paper's fine-tuning rate"
    draft.note(
        "learning rate", f"{train.lr:.2g} per 16 images", reason, "train.lr", "train.scale_lr"
    )
    if train.init_from and draft.profile.num_boxes < advice.SMALL_SET_BOXES:
        train.freeze = "backbone"
        boxes = draft.profile.num_boxes
        reason = f"only {counted(boxes, 'box', 'boxes')}: train the head on the pretrained features"
        draft.note("frozen", "backbone + FPN", reason, "train.freeze")

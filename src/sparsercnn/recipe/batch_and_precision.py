"""The automatic recipe's precision and batch: what the device sets.

The evidence is the device (:class:`~sparsercnn.recipe.hardware.Hardware`): whether it runs
bf16 natively, whether it is a GPU; the set's number of images (a batch is never larger); and
the images per step given (``train.batch_size``) and the training processes.
"""

from __future__ import annotations

from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.explanation import precision_text

# Images per step on a GPU and on a CPU, where not given.
GPU_BATCH_SIZE = 16
CPU_BATCH_SIZE = 8


def set_precision_and_batch(draft: RecipeDraft) -> None:
    """Mixed precision on GPUs and on CPUs that run bf16 natively; the batch size, the loading
    workers and the evaluation batch for the device; with their rows."""
    train, hardware = draft.cfg.train, draft.hardware
    train.amp = hardware.native_bf16 or hardware.is_gpu
    if train.amp:
        draft.note("precision", precision_text(True, hardware), hardware.describe(), "train.amp")
    else:
        reason = "this CPU would only emulate bf16 (ten times slower)"
        draft.note("precision", "fp32", reason, "train.amp")
    batch = GPU_BATCH_SIZE if hardware.is_gpu else CPU_BATCH_SIZE
    train.batch_size = max(1, min(batch, draft.profile.num_images))
    # On a CPU, loading in the training process beats workers competing for its cores.
    train.num_workers = 4 if hardware.is_gpu else 0
    draft.cfg.input.test_batch_size = 8
    where = "the GPU" if hardware.is_gpu else "a CPU"
    reason = f"images per step on {where}"
    if draft.given_batch_size is not None:
        train.batch_size, reason = draft.given_batch_size, "the given images per step"
    if draft.world_size > 1:
        reason += (
            f", per process: {draft.world_size} processes train {draft.images_per_step} "
            "images per step"
        )
    draft.note("batch size", train.batch_size, reason, "train.batch_size")

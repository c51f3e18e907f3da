"""The automatic recipe's schedule: how many steps, where the learning rate decays, the warm-up,
checkpoints and logging.

Under a time budget the steps are those the timing fits in it
(:mod:`~sparsercnn.recipe.step_budget`); without one they count epochs of the set's images
(:func:`epoch_iterations`), or are the given ``train.max_iter``.
"""

from __future__ import annotations

import math

from sparsercnn.engine.lr_schedule import decay_steps
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.text import counted

# Fewer steps than this are too few to learn much from scratch (warned about, with the budget
# that would give them).
MIN_ITERATIONS = 1000
# Without a budget: epochs of a from-scratch run (at least 3 * MIN_ITERATIONS steps) and of a
# fine-tuning run (at least MIN_ITERATIONS).
SCRATCH_EPOCHS = 60
FINETUNE_EPOCHS = 12


def epoch_steps(draft: RecipeDraft) -> tuple[int, int, int]:
    """``(epochs, their steps, the fewest steps)`` of a run without a budget: SCRATCH_EPOCHS
    or FINETUNE_EPOCHS of the set's images at the run's images per step."""
    epochs = SCRATCH_EPOCHS if draft.from_scratch else FINETUNE_EPOCHS
    steps = math.ceil(epochs * draft.profile.num_images / draft.images_per_step)
    return epochs, steps, 3 * MIN_ITERATIONS if draft.from_scratch else MIN_ITERATIONS


def epoch_iterations(draft: RecipeDraft) -> int:
    """The steps of a run without a budget: its epochs' (:func:`epoch_steps`), at least the
    fewest."""
    _, steps, fewest = epoch_steps(draft)
    return max(steps, fewest)


def epochs_reason(draft: RecipeDraft) -> str:
    """Why :func:`epoch_iterations`: the epochs over the set's images, or the fewest steps
    where those are more."""
    epochs, steps, fewest = epoch_steps(draft)
    images = draft.profile.num_images
    if steps >= fewest:
        return f"{epochs} epochs of {counted(images, 'image')}, without a time budget"
    return (
        f"at least {fewest} steps without a time budget ({epochs} epochs of "
        f"{counted(images, 'image')} are only {steps})"
    )


def log_period_for(total: int) -> int:
    """The recipe's steps per logged window of a schedule of ``total`` steps."""
    return 10 if total < 20000 else 20


def set_schedule(draft: RecipeDraft, reason: str, total: int | None = None) -> None:
    """The schedule of ``draft.iterations`` steps, configured as ``total`` (a budgeted run's
    headroom, which the trainer fits to the pace it measures), with its row and the warm-up's.
    The warm-up is set from the steps expected: the trainer keeps it when it fits the
    schedule."""
    expected = max(draft.iterations, 1)
    total = max(total or expected, 1)
    train = draft.cfg.train
    train.max_iter = total
    # As a resumed run extended past its end (extended_schedule) places them.
    train.steps = decay_steps(total)
    # 2% of the steps, 50 to 1000, and never more than a tenth of a short run.
    train.warmup_iters = min(1000, max(50, round(expected * 0.02)), max(1, expected // 10))
    # About five checkpoints in the steps expected (an interrupt writes one as well).
    train.checkpoint_period = max(100, expected // 5)
    train.eval_period = 0
    train.log_period = log_period_for(total)
    shares = " and ".join(f"{step / total:.0%}" for step in train.steps)
    lr = f"lr x0.1 at {shares}" if train.steps else "no lr decay"
    schedule = f"{counted(draft.iterations, 'step')}, {lr}"
    if total != expected:
        reason += f"; configured as {total}, which the trainer fits to its measured pace"
    draft.note("schedule", schedule, reason, "train.max_iter", "train.steps")
    reason = "2% of the steps, 50 to 1000"
    if train.warmup_iters < 50:
        reason = f"a tenth of the {counted(expected, 'step')}"
    draft.note("warm-up", counted(train.warmup_iters, "step"), reason, "train.warmup_iters")

"""What a training run stopped early says: the notice a first Ctrl-C or SIGTERM prints (what
the run still saves before it stops, :class:`~sparsercnn.engine.interrupts.DeferredInterrupt`)
and the line it ends with (the checkpoint that holds its progress and the flag that continues
from it). Pure functions of the run's state, used by
:class:`~sparsercnn.engine.trainer.Trainer`."""

from __future__ import annotations

from pathlib import Path

from sparsercnn.engine.checkpoint import RESUME


def interrupt_notice(
    *,
    stepped: bool,
    checkpoint: Path | None,
    iteration: int,
    max_iter: int,
    final_evaluation_due: bool,
) -> str:
    """What a first Ctrl-C or SIGTERM does: once a step has begun (``stepped``), the run
    checkpoints its steps; before that it has none to save, and stops with the checkpoint it
    resumed from (``checkpoint``, of ``iteration``), if any; a resumed run with no step left
    (``iteration`` at ``max_iter``) saves only the final evaluation under way, if any
    (``final_evaluation_due``), checkpointed with it."""
    again = "interrupt again to stop at once"
    if stepped:
        return (
            "interrupted: finishing the step (or evaluation) under way, then saving a "
            f"checkpoint to resume from ({again}, without one)"
        )
    if checkpoint is None:
        return f"interrupted before the first step: stopping, with nothing to save ({again})"
    kept = f"{checkpoint} holds iteration {iteration} to resume from ({again})"
    if iteration < max_iter:
        return f"interrupted before the first step: stopping; {kept}"
    if final_evaluation_due:
        return (
            "interrupted with no step left to train: stopping after the final evaluation "
            f"under way, if any, saved with it; {kept}"
        )
    return f"interrupted with no step left to train: stopping, with nothing new to save; {kept}"


def resume_hint(checkpoint: Path | None, checkpoint_iteration: int | None, iteration: int) -> str:
    """The checkpoint that holds a run's progress (``checkpoint``, of ``checkpoint_iteration``;
    the run stopped after ``iteration``) and the flag that continues from it, or that none was
    written yet: how a run stopped early (interrupted, or by an error) ends."""
    if checkpoint is None:
        return "no checkpoint was written yet, so there is nothing to resume: start the run again"
    lost = ""
    if checkpoint_iteration != iteration:
        lost = " (the steps after it are lost)"
    return (
        f"checkpoint {checkpoint} holds iteration {checkpoint_iteration}{lost}: continue with "
        f"{RESUME}"
    )

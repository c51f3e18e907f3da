"""The automatic recipe's input size in its config: chosen for the steps the budget gives
(:func:`~sparsercnn.recipe.input_size.choose_input_size`, priced by
:mod:`~sparsercnn.recipe.step_budget`), set for training and evaluation alike, and written in the
table with the warning about boxes too small to detect at it.
"""

from __future__ import annotations

from dataclasses import replace

from sparsercnn.recipe import advice
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.explanation import INPUT_KEYS
from sparsercnn.recipe.input_size import InputChoice, InputSize, choose_input_size
from sparsercnn.recipe.step_budget import budget_steps_at


def choose_input(draft: RecipeDraft) -> InputChoice:
    """The input size (:func:`choose_input_size`) for the steps the run trains: the budget's at
    the step cost in use, at most the given ``train.max_iter``."""
    return choose_input_size(
        draft.profile,
        lambda size: budget_steps_at(draft, size),
        given_steps=draft.budget.iterations,
    )


def use_input(draft: RecipeDraft, size: InputSize) -> None:
    """Train and evaluate at ``size``, without crops (:func:`~sparsercnn.recipe.crops.choose_crops`
    decides)."""
    draft.size = size
    draft.cfg.input = replace(
        draft.cfg.input,
        train_min_sizes=(size.short,),
        train_max_size=size.long,
        test_min_size=size.short,
        test_max_size=size.long,
        crop=False,
    )


def note_input(draft: RecipeDraft, reason: str) -> None:
    """The input size's row and the tiny-box warning at the size the run evaluates at."""
    assert draft.size is not None
    draft.note("input size", str(draft.size), reason, *INPUT_KEYS)
    given = not draft.given.isdisjoint(INPUT_KEYS)
    draft.warn(advice.tiny_box_warning(draft.profile, draft.trained_size(test=True), given=given))


def set_input(draft: RecipeDraft, size: InputSize, reason: str) -> None:
    """:func:`use_input` and :func:`note_input`."""
    use_input(draft, size)
    note_input(draft, reason)

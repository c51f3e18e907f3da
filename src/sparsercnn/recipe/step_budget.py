"""The automatic recipe's steps from the budget: what a step costs at an input size, how many
the time budget left after the timing gives, the given ``train.max_iter`` that caps them, and
the refusal of (or warning about) a budget too short.

A step is priced by the timed cost of the model in use (:class:`StepCost`) at the padded pixels
of the training batches the run deals at that size, its random crops included
(:func:`pixels`); the steps are the budget left less :data:`BUDGET_RESERVE`, over that.
"""

from __future__ import annotations

import math
from dataclasses import replace

from sparsercnn.config import Config, InputConfig
from sparsercnn.data.transforms import build_train_transform
from sparsercnn.recipe.crops import crop_windows
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.input_size import InputChoice, InputSize, resolvable_share
from sparsercnn.recipe.schedule import MIN_ITERATIONS, log_period_for
from sparsercnn.recipe.step_timing import StepCost
from sparsercnn.text import counted

# A time-budgeted schedule is this many times the steps the timing expects (the trainer shortens
# a schedule to the pace it measures, never lengthens it).
BUDGET_HEADROOM = 2
# Share of the budget left to the final evaluation, checkpoints and the model file.
BUDGET_RESERVE = 0.1


def training_input(draft: RecipeDraft, size: InputSize) -> InputConfig:
    """The run's training input at the recipe's input ``size``: the config so far with the
    ``--set`` values (random crops once chosen or where given, their windows following
    ``size`` where not given), its training resize ``size``."""
    pre_sizes, window = crop_windows(size.short)
    windows = replace(draft.cfg.input, crop_pre_sizes=pre_sizes, crop_size=window)
    given = draft.trained(replace(draft.cfg, input=windows)).input
    return replace(given, train_min_sizes=(size.short,), train_max_size=size.long)


def pixels(draft: RecipeDraft, size: InputSize) -> float:
    """Pixels of a padded training batch image at ``size``: of the batches the run deals, of
    the samples its training transform makes (:func:`training_input`)."""
    trained = draft.trained()
    # The profile prices each (transform, batch, grouping) once.
    return draft.profile.padded_batch_pixels(
        build_train_transform(training_input(draft, size)),
        trained.train.batch_size,
        grouping="sample" if trained.train.aspect_ratio_grouping else "none",
        size_divisibility=trained.model.size_divisibility,
        seed=trained.train.seed,
    )


def price(draft: RecipeDraft, cfg: Config) -> StepCost:
    """``cfg``'s step cost with the ``--set`` values; the first notes what the budget has
    spent by then (the steps count from there)."""
    cost = draft.step_cost_of(draft.trained(cfg))
    if draft.spent_seconds is not None and not draft.priced:
        draft.spent = draft.spent_seconds()
    draft.priced = True
    return cost


def usable_seconds(draft: RecipeDraft) -> float:
    """Seconds of steps in the budget left after the timing, less the end-of-run reserve."""
    assert draft.budget.seconds is not None
    return max(draft.budget.seconds - draft.spent, 0.0) * (1 - BUDGET_RESERVE)


def budget_steps_at(draft: RecipeDraft, size: InputSize, cost: StepCost | None = None) -> float:
    """The steps the budget left gives at ``size`` (at ``cost``, else the step cost in use)."""
    cost = draft.cost if cost is None else cost
    assert cost is not None
    return usable_seconds(draft) / cost.seconds(pixels(draft, size))


def capped(draft: RecipeDraft, steps: float) -> float:
    """``steps`` the budget gives, no more than the given ``train.max_iter``."""
    given = draft.budget.iterations
    return steps if given is None else min(steps, given)


def steps_at(draft: RecipeDraft, size: InputSize) -> float:
    """The steps the run trains at ``size``: the budget's, or fewer given ones."""
    return capped(draft, budget_steps_at(draft, size))


def is_given(draft: RecipeDraft, steps: float) -> bool:
    """Whether the run trains the given ``train.max_iter`` where the budget gives ``steps``
    (or :func:`steps_at` gives them: the given ones)."""
    return draft.budget.iterations is not None and steps >= draft.budget.iterations


def minutes_for(draft: RecipeDraft, size: InputSize) -> int:
    """Whole minutes of budget that give MIN_ITERATIONS steps at ``size`` (with the timing)."""
    assert draft.cost is not None
    seconds = draft.cost.seconds(pixels(draft, size)) * MIN_ITERATIONS
    return math.ceil((seconds / (1 - BUDGET_RESERVE) + draft.spent) / 60)


def longer_run(draft: RecipeDraft, minutes: int) -> str:
    """What gives the run MIN_ITERATIONS steps where they take ``minutes`` of budget: a longer
    ``--time-budget``, and a larger ``train.max_iter`` where a given one is fewer (it caps the
    run whatever the budget)."""
    budget = f"pass --time-budget {minutes} or more"
    given = draft.budget.iterations
    if given is not None and given < MIN_ITERATIONS:
        return f"set train.max_iter={MIN_ITERATIONS} or more and {budget}"
    return budget


def warn_given_steps(draft: RecipeDraft, minutes: int | None = None) -> None:
    """Warn when the run trains the given ``train.max_iter`` and it is under MIN_ITERATIONS
    (``minutes``: the budget MIN_ITERATIONS steps take, with a time budget)."""
    given = draft.budget.iterations
    if given is None or given >= MIN_ITERATIONS:
        return
    todo = f"set train.max_iter={MIN_ITERATIONS} or more"
    if minutes is not None:
        assert draft.budget.seconds is not None
        todo += f" ({MIN_ITERATIONS} steps take about {counted(minutes, 'minute')}"
        todo += (
            f": pass --time-budget {minutes} or more)"
            if minutes * 60 > draft.budget.seconds
            else ")"
        )
    draft.warn(
        f"train.max_iter={given} trains only {counted(given, 'step')}: too short to learn "
        f"much; {todo}"
    )


def log_period(draft: RecipeDraft, total: int) -> int:
    """Steps per logged window of a schedule of ``total`` steps (a ``--set`` one where given,
    which the run logs with)."""
    if "train.log_period" in draft.given:
        return draft.trained().train.log_period
    return log_period_for(total)


def check_budget(draft: RecipeDraft, choice: InputChoice) -> None:
    """Refuse a budget under one logged window of steps at ``choice``'s size; warn about one
    too short to learn (MIN_ITERATIONS steps), or to reach the size that resolves the boxes,
    with the budget that would do.

    Raises:
        ValueError: the budget left after the timing, less the reserve, is shorter than one
            logged window; the message gives the least budget that has one.
    """
    assert draft.cost is not None and draft.budget.seconds is not None
    step = draft.cost.seconds(pixels(draft, choice.size))
    window = step * _logged_window(draft)
    # The steps are those of the budget less the end-of-run reserve (usable_seconds): the
    # budget suggested gives a whole window of them.
    if usable_seconds(draft) < window:
        short = "is shorter than one logged window"
        if draft.spent:
            short = f"leaves less than one logged window after {draft.spent:.0f} s of timing"
        least = (window / (1 - BUDGET_RESERVE) + draft.spent) / 60
        raise ValueError(
            f"--time-budget {draft.budget.seconds / 60:g} min {short} "
            f"({_logged_window(draft)} steps of {step:.2f} s, with "
            f"{BUDGET_RESERVE:.0%} of the budget kept for the end of the run); give at least "
            f"{math.ceil(least * 10) / 10:.1f} min"
        )
    _warn_short_budget(draft, choice, step)


def _logged_window(draft: RecipeDraft) -> int:
    """The steps of the run's first logged window: of the schedule set next
    (:func:`~sparsercnn.recipe.schedule.set_schedule`), not the starting preset's; of the given
    steps, or of the budget's with headroom."""
    total = draft.budget.iterations or BUDGET_HEADROOM * draft.iterations
    period = log_period(draft, total)
    if draft.budget.iterations is not None:
        # The run logs at its last step as well: a given train.max_iter under the window is
        # the window, so that one the budget fits (which ends the run) is never refused.
        period = min(period, draft.budget.iterations)
    return period


def _warn_short_budget(draft: RecipeDraft, choice: InputChoice, step: float) -> None:
    """Warn where the budget gives too few steps to learn, or where the input size that resolves
    the boxes would need a longer one."""
    assert draft.budget.seconds is not None
    steps = draft.iterations
    # A given train.max_iter under the budget's steps is what the run trains (warned about
    # with it, by warn_given_steps).
    given_limits = is_given(draft, steps)
    resolving, minutes = choice.resolving, minutes_for(draft, choice.resolving)
    unresolved = resolvable_share(draft.profile, choice.size) < 0.99
    resolvable = resolvable_share(draft.profile, resolving) >= 0.99
    if unresolved and resolvable and minutes * 60 > draft.budget.seconds:
        run_steps = int(steps_at(draft, choice.size))
        trains = (
            f"the run trains the given {counted(run_steps, 'step')}"
            if given_limits
            else f"the budget gives ~{counted(run_steps, 'step')}"
        )
        draft.warn(
            f"{trains} at input size {choice.size}; input size {resolving} would resolve the "
            f"boxes, and {MIN_ITERATIONS} steps there take about {counted(minutes, 'minute')}: "
            f"{longer_run(draft, minutes)}"
        )
    elif steps < MIN_ITERATIONS and not given_limits:
        minutes = minutes_for(draft, choice.size)
        draft.warn(
            f"the budget gives only ~{counted(steps, 'step')} ({step:.2f} s each at input size "
            f"{choice.size}): "
            f"too short to learn much; {MIN_ITERATIONS} steps take about "
            f"{counted(minutes, 'minute')}: {longer_run(draft, minutes)}"
        )

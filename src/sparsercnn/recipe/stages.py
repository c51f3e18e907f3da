"""The automatic recipe's number of refinement stages: fewer than the paper's six only where they
buy steps, from scratch under a time budget.

The evidence is the steps the budget gives with each count (timed: six stages make a slower
step) and the objects per image of the set: images of few objects give each stage's loss few
boxes to learn from, and every stage counts. A run of given steps that the budget fits with six
trains six, as without a budget. With weights the count is theirs.
"""

from __future__ import annotations

import numpy as np

from sparsercnn.config import ModelConfig
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.input_size import InputChoice
from sparsercnn.recipe.proposals import choose_proposals_and_size
from sparsercnn.recipe.step_budget import is_given, steps_at
from sparsercnn.text import agreeing_noun, counted, verb

# From scratch under a time budget, the small model trains this many refinement stages unless
# the paper's six still get SIX_STAGE_ITERATIONS steps, or the given train.max_iter (which fewer
# stages would not raise: they only buy steps the budget limits). On the demo's data (fp32, AVX2
# kernels, 6.8 minutes) 6 stages reached 1250 steps and AP 0.48, 4 stages 1480 steps and 0.56, 3
# stages 1803 steps and 0.58: short runs gain more from steps than from the later stages, which a
# model trained with six adds little to (stages 3 / 6 of the 1687-step demo model: AP 0.61 /
# 0.63).
SHORT_BUDGET_STAGES = 3
SIX_STAGE_ITERATIONS = 4000
# ... except on sets whose images hold at most this many objects (median): there each stage's
# loss has few boxes to learn from, and every stage counts. 10 minutes on photos of 1000-2000 px
# with large objects: 1-3 per image (median 2), six stages AP 0.52 in 1644 steps against three's
# 0.41 in 2016; 4-6 per image (median 5), 0.55 in 1557 against 0.50 in 2096. With a median of 6
# (the demo's shapes, 24 classes) three did as well or better.
FEW_OBJECTS_PER_IMAGE = 5


def note_stages(draft: RecipeDraft, reason: str | None = None) -> None:
    """The stages' row: ``reason`` where the recipe chose them (from scratch under a time
    budget), else the model's own count, as the proposals' row: from scratch always, with
    weights (whose count it is) only where a ``--set`` gives it."""
    if reason is None and draft.from_scratch:
        reason = "the paper's; fewer only under a --time-budget, where they buy more steps"
    elif reason is None and "model.num_stages" in draft.given:
        init_from = draft.cfg.train.init_from
        reason = f"those of {init_from} (--init-from)" if init_from else "the paper's"
    if reason is None:
        return
    draft.note("stages", draft.cfg.model.num_stages, reason, "model.num_stages")


def timed_stages(draft: RecipeDraft) -> tuple[bool, str | None]:
    """The stages to time first under a time budget, before the steps are known:
    ``(short budget, reason)``.

    From scratch the model starts at SHORT_BUDGET_STAGES (``short budget``: the six are tried
    once the steps are known, :func:`try_six_stages`); a ``--set model.num_stages`` is timed as
    given, and the paper's six where the median image holds at most FEW_OBJECTS_PER_IMAGE
    objects (both with their ``reason``). With weights, their count and no reason.
    """
    short_budget = draft.from_scratch and draft.cfg.model.num_stages < ModelConfig.num_stages
    reason = None
    if "model.num_stages" in draft.given and draft.from_scratch:
        short_budget = False
        draft.cfg.model.num_stages = draft.trained().model.num_stages
        reason = "the timing and the steps are those of these stages"
    median = float(np.median(draft.profile.objects_per_image))
    if short_budget and median <= FEW_OBJECTS_PER_IMAGE:
        draft.cfg.model.num_stages = ModelConfig.num_stages
        objects = f"{median:g} {agreeing_noun(median, 'object')} in the median image"
        reason = (
            f"the paper's: {objects} {verb(median, 'gives', 'give')} each stage few boxes to "
            "learn from, and every stage counts"
        )
    return short_budget, reason


def try_six_stages(draft: RecipeDraft, short: InputChoice) -> tuple[InputChoice, str]:
    """The paper's six stages when they still get SIX_STAGE_ITERATIONS steps, or the given
    ``train.max_iter`` at an input size as good (fewer stages buy neither steps nor size
    then: the six of a run without a budget); proposals and size chosen again with their
    timing. Else the short-budget stages and ``short``; with the reason for the stage
    count."""
    stages, cost = draft.cfg.model.num_stages, draft.cost
    proposals = draft.cfg.model.num_proposals
    steps = int(steps_at(draft, short.size))
    # Six stages are slower: only from these steps can they get to either.
    if steps >= SIX_STAGE_ITERATIONS or is_given(draft, steps):
        choices, warnings = list(draft.choices), list(draft.warnings)
        crowd = draft.crowd_warning
        draft.cfg.model.num_stages = ModelConfig.num_stages
        choice = choose_proposals_and_size(draft)
        six_steps = int(steps_at(draft, choice.size))
        if is_given(draft, six_steps) and choice.value >= short.value:
            return choice, (
                f"the paper's: the budget fits the given {counted(six_steps, 'step')} with "
                "them (fewer would buy no steps)"
            )
        if six_steps >= SIX_STAGE_ITERATIONS:
            about = "the given " if is_given(draft, six_steps) else "~"
            return choice, f"the paper's: {about}{counted(six_steps, 'step')} fit the budget"
        # Back to the short-budget stages and what was chosen for them.
        draft.choices, draft.warnings, draft.crowd_warning = choices, warnings, crowd
        draft.cfg.model.num_stages, draft.cfg.model.num_proposals = stages, proposals
        draft.cost = cost
        if is_given(draft, steps):
            six = f"~{counted(six_steps, 'step')}"
            if is_given(draft, six_steps):
                six = f"at input size {choice.size}, with smaller objects"
            return short, (
                f"the budget fits the given {counted(steps, 'step')} at input size "
                f"{short.size} with these; with the paper's {ModelConfig.num_stages}, {six}"
            )
        # The steps with these are enough for six stages, not the six's own.
        fit = f"~{counted(steps, 'step')} fit the budget with these, ~{six_steps} with six"
    else:
        fit = f"~{counted(steps, 'step')} fit the budget"
    reason = (
        f"{fit}: a short run gains more from steps than from later stages (the paper's "
        f"{ModelConfig.num_stages} from ~{SIX_STAGE_ITERATIONS} steps)"
    )
    return short, reason

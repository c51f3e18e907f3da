"""The automatic recipe's number of proposals: comfortably above the most objects in one image.

The evidence is the set's objects per image: a proposal detects at most one box, so an image
with more objects than proposals loses the rest (spec 13 #4, warned about by
:func:`~sparsercnn.recipe.advice.crowd_warning`). Under a time budget each count is timed (more
proposals: a costlier head and matching) and chosen together with the input size
(:func:`choose_proposals_and_size`). With weights the count is theirs.
"""

from __future__ import annotations

import math
from dataclasses import replace

from sparsercnn.presets import medium, small
from sparsercnn.recipe import advice
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.input_setting import choose_input
from sparsercnn.recipe.input_size import InputChoice, proposal_coverage
from sparsercnn.recipe.step_budget import price, steps_at
from sparsercnn.text import counted

MAX_PROPOSALS = 500
# Proposals per object of the densest image (plus PROPOSALS_SLACK): near one per object every
# slot is needed, and ground truth beyond N can never be matched (spec 13 #4).
PROPOSALS_PER_OBJECT = 1.25
PROPOSALS_SLACK = 5


def proposals_for(max_objects: int) -> int:
    """The proposals to train for images of up to ``max_objects`` objects: comfortably above
    them (x PROPOSALS_PER_OBJECT + PROPOSALS_SLACK), rounded up to a multiple of 10."""
    return _round_up(max_objects * PROPOSALS_PER_OBJECT + PROPOSALS_SLACK, 10)


def wanted_proposals(draft: RecipeDraft) -> int:
    """From scratch, comfortably above the most objects in one image (:func:`proposals_for`,
    at least the model's own count, at most MAX_PROPOSALS); with weights, theirs; or those a
    ``--set`` gives."""
    if "model.num_proposals" in draft.given:
        return draft.trained().model.num_proposals
    if not draft.from_scratch:
        return draft.cfg.model.num_proposals
    wanted = proposals_for(draft.profile.max_objects)
    return min(max(draft.cfg.model.num_proposals, wanted), MAX_PROPOSALS)


def proposals_reason(draft: RecipeDraft, proposals: int, why: str = "") -> str:
    """Why ``proposals`` for the set's densest image: above it (``why`` added), the model's
    own count from scratch where the densest image needs fewer, or the recipe's cap of
    MAX_PROPOSALS below it."""
    most = draft.profile.max_objects
    objects = counted(most, "object")
    if proposals >= MAX_PROPOSALS and proposals < most:
        return f"the most the recipe trains; up to {objects} in one image"
    needed = proposals_for(most)
    is_medium = draft.cfg.model.backbone_width == medium().model.backbone_width
    name, own = ("medium", medium()) if is_medium else ("small", small())
    given = "model.num_proposals" in draft.given
    if draft.from_scratch and not given and own.model.num_proposals == proposals > needed:
        return f"the {name} model's default (at most {objects} in one image: {needed} would do)"
    return f"at most {objects} in one image" + (f" ({why})" if why else "")


def set_proposals(draft: RecipeDraft, proposals: int, reason: str) -> None:
    """Set the proposals, with their row of the table and their crowd warning, in place of
    those of proposals set before (the six stages or the medium model choose again)."""
    draft.cfg.model.num_proposals = proposals
    # With weights the count is theirs, and a row only when a --set gives it.
    if draft.from_scratch or "model.num_proposals" in draft.given:
        row = draft.row("proposals", proposals, reason, "model.num_proposals")
        rows = [i for i, c in enumerate(draft.choices) if c.name == "proposals"]
        if rows:
            draft.choices[rows[0]] = row
        else:
            draft.choices.append(row)
    warning = advice.crowd_warning(draft.profile, proposals, _crowd_remedy(draft, proposals))
    if draft.crowd_warning in draft.warnings:
        draft.warnings.remove(draft.crowd_warning)
    draft.crowd_warning = warning
    draft.warn(warning)


def _crowd_remedy(draft: RecipeDraft, proposals: int) -> str:
    """What gives the boxes beyond ``proposals`` a proposal: it depends on why they are fewer
    (the weights', a --set, the recipe's cap, the budget)."""
    if not draft.from_scratch:
        if draft.cfg.train.init_from:
            return (
                f"the proposals are those of {draft.cfg.train.init_from} (--init-from), whose "
                "weights load into no other count: start from a model with more proposals"
            )
        return "set model.num_proposals"
    if "model.num_proposals" in draft.given:
        return "set a larger model.num_proposals"
    if proposals >= MAX_PROPOSALS:
        return f"set model.num_proposals above the recipe's {MAX_PROPOSALS} (slower steps)"
    if draft.budget.seconds is not None:
        return "a longer --time-budget affords more, or set model.num_proposals"
    return "set model.num_proposals"


def choose_proposals_and_size(draft: RecipeDraft) -> InputChoice:
    """Proposals and input size together, under a time budget: each proposal count is timed
    (more proposals, a costlier head and matching), and the count whose best size gives the
    most resolvable boxes x detectable boxes x training progress wins (of equal ones, more
    proposals). Leaves ``draft.cost`` that of the count taken."""
    wanted = wanted_proposals(draft)
    counts = sorted({draft.cfg.model.num_proposals, wanted})
    if "model.num_proposals" in draft.given:
        counts = [wanted]
    options = []
    for count in counts:
        model = replace(draft.cfg.model, num_proposals=count)
        cost = price(draft, replace(draft.cfg, model=model))
        draft.cost = cost
        choice = choose_input(draft)
        coverage = proposal_coverage(draft.profile, count)
        options.append((choice.value * coverage, count, cost, choice, coverage))
    _, count, draft.cost, choice, coverage = max(options, key=lambda o: (o[0], o[1]))
    most = draft.profile.max_objects
    reason = proposals_reason(draft, count, "each needs its own proposal")
    if "model.num_proposals" in draft.given:
        reason = proposals_reason(draft, count)
    elif count < wanted:
        steps = int(steps_at(draft, choice.size))
        reason = (
            f"{coverage:.0%} of the boxes detectable (up to {counted(most, 'object')} in an "
            f"image) with ~{counted(steps, 'step')}: more proposals would cost more in steps "
            "than they gain"
        )
    set_proposals(draft, count, reason)
    return choice


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)

"""Tests for the automatic recipe's stage count (:mod:`sparsercnn.recipe.stages`): the reason
given is the evidence the count was chosen on."""

from __future__ import annotations

from sparsercnn.config import Config
from sparsercnn.recipe import Budget, StepCost, choose_recipe
from sparsercnn.recipe.stages import SHORT_BUDGET_STAGES, SIX_STAGE_ITERATIONS
from tests.recipe.test_auto_recipe import CPU, choose, profile_of, reason_of


def test_fewer_stages_taken_after_timing_six_give_the_six_s_steps() -> None:
    """The short-budget stages get SIX_STAGE_ITERATIONS+ steps, so six are timed, and get
    fewer: the reason says how many the six got, not only the (sufficient-looking) steps of the
    stages kept. Each stage costs 50 ms: 15 minutes give 3 stages 4612 steps at 160 px, 6
    stages 2487."""
    profile = profile_of((160, 160), [30.0] * 1200)

    def cost_of(cfg: Config) -> StepCost:
        return StepCost(fixed=0.05 * cfg.model.num_stages, per_pixel=1e-6)

    recipe = choose_recipe(profile, CPU, Budget(seconds=15 * 60), cost_of)
    six_steps = int(810 / (0.3 + 160 * 160 * 1e-6))
    assert recipe.config.model.num_stages == SHORT_BUDGET_STAGES
    assert recipe.iterations >= SIX_STAGE_ITERATIONS > six_steps
    assert reason_of(recipe, "stages").startswith(
        f"~{recipe.iterations} steps fit the budget with these, ~{six_steps} with six: "
    )


def test_the_few_objects_reason_agrees_with_a_median_of_a_half() -> None:
    """200 images, 2 objects in half of them and 1 in the others: the median is 1.5, which
    agrees as several, and 1 as one (the noun and the verb as text.py words every count)."""
    half = choose(profile_of((160, 160), [30.0] * 300), minutes=10)
    assert reason_of(half, "stages").startswith(
        "the paper's: 1.5 objects in the median image give each stage few boxes"
    )
    one = choose(profile_of((160, 160), [30.0] * 200), minutes=10)
    assert reason_of(one, "stages").startswith(
        "the paper's: 1 object in the median image gives each stage few boxes"
    )

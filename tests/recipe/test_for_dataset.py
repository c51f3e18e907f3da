"""``recipe_for_dataset``: the timing that prices the candidates stays within the budget."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sparsercnn.config import Config
from sparsercnn.recipe import for_dataset
from sparsercnn.recipe.recipe import BudgetSpentError
from sparsercnn.recipe.step_timing import StepCost
from tests.synthetic_coco import SyntheticCoco


def _choose(
    monkeypatch: pytest.MonkeyPatch, data: SyntheticCoco, seconds_per_timing: float
) -> list[int]:
    """The backbone widths timed while a 10-minute recipe is chosen for ``data``, where each
    candidate's timing takes ``seconds_per_timing`` (on the test's own clock) and prices a step
    at 0.01 s: so cheap that the medium model is worth timing after the small one."""
    clock = [0.0]
    widths: list[int] = []

    def time_step_cost(cfg: Config, *args: object) -> StepCost:
        widths.append(cfg.model.backbone_width)
        clock[0] += seconds_per_timing
        return StepCost(fixed=0.01, per_pixel=0.0)

    monkeypatch.setattr(for_dataset, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(for_dataset, "_time_step_cost", time_step_cost)
    try:
        for_dataset.recipe_for_dataset(
            data.json_path, data.image_dir, torch.device("cpu"), time_budget_minutes=10
        )
    except BudgetSpentError as error:
        widths.append(-1)
        assert "--time-budget 10 min was used up choosing the recipe (700 s of timing)" in str(
            error
        )
    return widths


def test_every_candidate_is_timed_while_the_budget_lasts(
    tiny_coco: SyntheticCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _choose(monkeypatch, tiny_coco, 1.0) == [32, 64]  # small, then medium


def test_no_candidate_is_timed_once_the_budget_is_spent(
    tiny_coco: SyntheticCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy machine the first timing took longer than the whole budget: the choice stops
    with the budget's error (-1) instead of timing the medium model too. The first candidate is
    always timed: the budget's own checks need its price."""
    assert _choose(monkeypatch, tiny_coco, 700.0) == [32, -1]

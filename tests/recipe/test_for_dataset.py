"""``recipe_for_dataset``: the timing that prices the candidates stays within the budget; the
starting weights' architecture is taken as read; the images are sized as training sees them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from sparsercnn.config import Config
from sparsercnn.engine.model_init import StartingWeights, read_starting_weights
from sparsercnn.model import build_model
from sparsercnn.recipe import DatasetProfile, Recipe, for_dataset
from sparsercnn.recipe.step_timing import StepCost
from sparsercnn.weights import convert
from tests.synthetic_coco import Box, SyntheticCoco, WriteCoco, tiny_config


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
    except ValueError as error:  # BudgetSpentError, or too little left for a logged window
        widths.append(-1)
        assert "--time-budget 10" in str(error) and "700 s of timing" in str(error)
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


def test_the_steps_are_those_of_the_budget_the_timing_leaves(
    tiny_coco: SyntheticCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timing of 540 s leaves 60 s of the 10 minutes: 54 s of steps of 0.01 s (10% reserve)."""
    clock = [0.0]

    def time_step_cost(cfg: Config, *args: object) -> StepCost:
        clock[0] += 540.0
        return StepCost(fixed=0.01, per_pixel=0.0)

    monkeypatch.setattr(for_dataset, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(for_dataset, "_time_step_cost", time_step_cost)
    recipe = for_dataset.recipe_for_dataset(
        tiny_coco.json_path, tiny_coco.image_dir, torch.device("cpu"), time_budget_minutes=10
    )
    assert recipe.iterations == 5400


def test_the_architecture_comes_from_the_weights_given_without_reading_a_file(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe takes the starting weights as read (and their notes said) once, by
    ``read_starting_weights``: the checkpoint's architecture and the backbone's depth, with no
    read of its own (which said the conversion's notes a second time, or hid them)."""
    cfg = tiny_config()
    bare = tmp_path / "bare.pth"
    torch.save(build_model(cfg).state_dict(), bare)
    weights = read_starting_weights(str(bare))

    def not_read(*args: object) -> None:
        raise AssertionError("the recipe read a file")

    monkeypatch.setattr(convert, "read_checkpoint", not_read)
    monkeypatch.setattr(
        for_dataset, "_time_step_cost", lambda *args: StepCost(fixed=0.01, per_pixel=0.0)
    )
    recipe = for_dataset.recipe_for_dataset(
        tiny_coco.json_path, tiny_coco.image_dir, torch.device("cpu"), max_iter=10, weights=weights
    )
    model = recipe.config.model
    assert (model.num_proposals, model.hidden_dim) == (16, cfg.model.hidden_dim)
    assert recipe.config.train.init_from == str(bare)
    assert weights.checkpoint is not None
    tensors = weights.checkpoint.state_dict
    resnet = {key: value for key, value in tensors.items() if key.startswith("backbone.")}
    backbone = StartingWeights(backbone_weights="r.pth", backbone=resnet)
    recipe = for_dataset.recipe_for_dataset(
        tiny_coco.json_path, tiny_coco.image_dir, torch.device("cpu"), max_iter=10, weights=backbone
    )
    assert recipe.config.model.backbone_depth == cfg.model.backbone_depth == 18
    assert recipe.config.train.backbone_weights == "r.pth"


def test_the_recipe_sizes_the_images_by_their_files_where_the_json_disagrees(
    write_coco: WriteCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON gives every image twice its file's size (refused as a wrong image folder unless
    ``skip_invalid``, which uses the files as they are): the recipe reads the files' sizes (as
    training resizes the files), so it chooses what it chooses for the JSON with the right
    sizes, not the larger input that images twice as large would need for their boxes."""
    data = write_coco(size=(96, 128), boxes=[[Box(1, (10, 10, 12, 12))]] * 4)
    right = for_dataset.recipe_for_dataset(data.json_path, data.image_dir, torch.device("cpu"))
    coco = data.read_json()
    for image in coco["images"]:
        image.update(width=256, height=192)
    data.write_json(coco)
    profiles = []
    choose = for_dataset.choose_recipe

    def choose_seen(profile: DatasetProfile, *args: Any, **kwargs: Any) -> Recipe:
        profiles.append(profile)
        return choose(profile, *args, **kwargs)

    monkeypatch.setattr(for_dataset, "choose_recipe", choose_seen)
    wrong = for_dataset.recipe_for_dataset(
        data.json_path, data.image_dir, torch.device("cpu"), skip_invalid=True
    )
    (profile,) = profiles
    assert set(profile.image_heights.tolist()) == {96} and set(profile.image_widths.tolist()) == {
        128
    }
    assert wrong.config == right.config

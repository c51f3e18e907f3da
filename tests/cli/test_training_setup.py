"""How ``train`` sets a new run up: what of its schedule a fixed preset's run never reaches is
said before the data's check, and once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.cli.main import main
from sparsercnn.engine.trainer import Trainer
from sparsercnn.recipe import for_dataset
from sparsercnn.recipe.step_timing import StepCost
from tests.synthetic_coco import SyntheticCoco


def test_a_new_run_of_a_fixed_preset_is_told_its_schedule_notes_before_the_data_check(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    no_data_check: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """tiny's decays at 2400 and 2800 with ``--set train.max_iter=30``: said by the trainer,
    after every image was decoded."""
    files = ["--train-json", str(tiny_coco.json_path), "--train-images", str(tiny_coco.image_dir)]
    argv = ["train", *files, "--output-dir", str(tmp_path / "run"), "--preset", "tiny"]
    with caplog.at_level(logging.WARNING, logger="sparsercnn"):
        assert main([*argv, "--set", "train.max_iter=30"]) == 1  # stopped at the data's check
    assert [r.getMessage() for r in caplog.records] == [
        "train.steps [2400, 2800] are not before train.max_iter=30: the learning rate does not "
        "decay there; set train.steps to change that",
        "train.warmup_iters=50 is more than train.max_iter=30: the learning rate never reaches "
        "train.lr",
    ]


@pytest.mark.parametrize("preset", ["tiny", "auto"])
def test_a_new_runs_schedule_notes_are_said_once_by_train(
    preset: str,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Said before the data's check (a fixed preset) or with the recipe (``auto``), and not
    again by the trainer that ``train`` builds."""

    def built(self: Trainer) -> Any:
        raise RuntimeError("stop once the trainer is built")

    monkeypatch.setattr(Trainer, "train", built)
    monkeypatch.setattr(for_dataset, "_time_step_cost", lambda *args: StepCost(0.01, 0.0))
    files = ["--train-json", str(tiny_coco.json_path), "--train-images", str(tiny_coco.image_dir)]
    argv = ["train", *files, "--output-dir", str(tmp_path / "run"), "--preset", preset]
    argv += ["--set", "train.max_iter=2", "train.warmup_iters=50", "--device", "cpu"]
    with caplog.at_level(logging.WARNING, logger="sparsercnn"):
        assert main(argv) == 1  # stopped once the trainer is built
    notes = [r.getMessage() for r in caplog.records if "than train.max_iter" in r.getMessage()]
    assert notes == [
        "train.warmup_iters=50 is more than train.max_iter=2: the learning rate never reaches "
        "train.lr"
    ]

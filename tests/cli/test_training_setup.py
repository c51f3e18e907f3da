"""How ``train`` sets a new run up: what of its schedule the run never reaches is said once, by
``train_from_coco``, of the config it trains."""

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


@pytest.mark.parametrize("preset", ["tiny", "auto"])
def test_a_new_runs_schedule_notes_are_said_once_by_train(
    preset: str,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Said by ``train_from_coco`` of the config ``train`` settled (a fixed preset's, or the
    recipe's for ``auto``), before the datasets are built; not by the command, nor by the
    trainer that ``train_from_coco`` builds."""

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

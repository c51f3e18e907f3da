"""Fixtures of the reliability tests: ``sparsercnn train`` runs in subprocesses on the shared
tiny COCO data set, with a model and images small enough for a run to take seconds."""

from __future__ import annotations

import pytest

from tests.reliability.training_run import TrainingRun
from tests.synthetic_coco import SyntheticCoco


@pytest.fixture(scope="session")
def straight_run(tiny_coco: SyntheticCoco, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """An uninterrupted run: the reference for resumed and repeated runs."""
    run = TrainingRun(tiny_coco, tmp_path_factory.mktemp("straight") / "run")
    run.complete()
    return run

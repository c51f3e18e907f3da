"""Fixtures of the reliability tests: ``sparsercnn train`` runs in subprocesses on the engine
tests' tiny COCO data set, with a model and images small enough for a run to take seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from synthetic_coco import TinyCoco, write_tiny_coco
from training_run import TrainingRun


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> TinyCoco:
    """Six 96x128 images with two boxes each (categories 1 and 3), shared by the session."""
    return write_tiny_coco(tmp_path_factory.mktemp("tiny_coco"))


@pytest.fixture(scope="session")
def straight_run(tiny_coco: TinyCoco, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """An uninterrupted run: the reference for resumed and repeated runs."""
    run = TrainingRun(tiny_coco, tmp_path_factory.mktemp("straight") / "run")
    run.complete()
    return run

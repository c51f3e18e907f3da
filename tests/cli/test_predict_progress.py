"""The predict command's progress bar: never at its total before the run ends, exactly at it
after, whatever the inputs announced."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sparsercnn.cli.predict_progress import PredictionProgress, expected_items, known_sum


def sequence(num_frames: int | None) -> Any:
    """A frame folder's stand-in announcing ``num_frames`` (what the bar reads)."""
    return SimpleNamespace(num_frames=num_frames, fps=Fraction(10))


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar is shown (and counts) only on a terminal."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)


def shown(progress: PredictionProgress) -> tuple[int, int | None]:
    return progress.bar.n, progress.bar.total


@pytest.mark.parametrize(("announced", "actual"), [(14, 10), (6, 10), (10, 10)])
def test_the_bar_reaches_its_total_only_when_the_run_ends(announced: int, actual: int) -> None:
    images = [Path("a.png"), Path("b.png")]
    with PredictionProgress([sequence(announced), images], every=1) as progress:
        assert shown(progress) == (0, announced + 2)
        for _ in range(actual):
            progress.count()
            n, total = shown(progress)
            assert total is not None and n < total
        progress.input_done(0)
        assert shown(progress) == (actual, actual + 2)
        for _ in images:
            progress.count()
            n, total = shown(progress)
            assert total is not None and n < total
        progress.input_done(1)
        assert shown(progress) == (actual + 2, actual + 2)


def test_an_input_that_announces_nothing_leaves_the_total_unknown_until_it_is_done() -> None:
    with PredictionProgress([[Path("a.png")], sequence(None), [Path("b.png")]], every=1) as bar:
        assert shown(bar) == (0, None)
        bar.count()
        bar.input_done(0)
        assert shown(bar) == (1, None)
        for _ in range(3):
            bar.count()
        bar.input_done(1)
        assert shown(bar) == (4, 5)


def test_expected_items_counts_the_frames_every_keeps() -> None:
    assert expected_items([Path("a.png")] * 3, every=5) == 3
    assert expected_items(sequence(10), every=3) == 4  # frames 0, 3, 6, 9
    assert expected_items(sequence(None), every=1) is None
    assert known_sum([1, 2]) == 3 and known_sum([1, None]) is None and known_sum([]) == 0


def test_the_bar_counts_frames_of_sequences_and_images_otherwise() -> None:
    """Frames of videos were counted as images (``12 image/s``)."""
    with PredictionProgress([sequence(3), sequence(4)], every=1) as progress:
        assert progress.bar.unit == "frame"
    with PredictionProgress([sequence(3), [Path("a.png")]], every=1) as progress:
        assert progress.bar.unit == "image"

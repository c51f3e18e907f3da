"""Diagnostic plots: valid PNGs from synthetic statistics, empty inputs handled, shapes checked."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from sparsercnn.visualization.diagnostic_plots import (
    plot_confusion_matrix,
    plot_dataset_summary,
    plot_slot_centres,
    plot_slot_match_counts,
    plot_slot_size_histograms,
    plot_stage_metrics,
)


def _assert_png(path: Path) -> None:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
        image.verify()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_stage_metrics(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    ap = [0.3, 0.4, 0.42]
    _assert_png(plot_stage_metrics([1, 2, 3], ap, ap, ap, [0.01, 0.012, 0.014], tmp_path / "a.png"))
    _assert_png(plot_stage_metrics([1, 2, 3], ap, ap, ap, None, tmp_path / "b.png"))
    assert matplotlib.get_backend() == backend


def test_slot_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matched = rng.integers(0, 20, 100)
    matched[:5] = 0
    _assert_png(plot_slot_match_counts(matched, rng.integers(0, 9, 100), tmp_path / "m.png"))
    centres = rng.random((100, 2))
    centres[:5] = np.nan
    labels = np.where(matched > 0, rng.integers(0, 3, 100), -1)
    out = plot_slot_centres(
        centres, labels, matched, ["a", "b", "c"], tmp_path / "c.png", rng.random((100, 2))
    )
    _assert_png(out)
    groups = [("small", rng.uniform(5, 30, 50)), ("large", rng.uniform(40, 300, 50))]
    _assert_png(plot_slot_size_histograms(groups, tmp_path / "s.png"))
    _assert_png(plot_slot_size_histograms([("one", np.array([12.0]))], tmp_path / "one.png"))
    _assert_png(plot_slot_size_histograms([], tmp_path / "none.png"))


def test_confusion_matrix_plot(tmp_path: Path) -> None:
    matrix = np.array([[5, 1, 2], [0, 7, 1], [3, 2, 0]])
    names = ["cat", "dog"]
    out = plot_confusion_matrix(
        matrix, [*names, "background"], [*names, "missed"], tmp_path / "c.png"
    )
    _assert_png(out)
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(matrix, names, names, tmp_path / "bad.png")


def test_dataset_summary(tmp_path: Path) -> None:
    out = plot_dataset_summary(
        ["cat", "dog"], [10, 4], np.array([10.0, 40.0, 120.0]), [3, 0, 11], tmp_path / "d.png", 16
    )
    _assert_png(out)
    _assert_png(plot_dataset_summary(["cat"], [0], [], [], tmp_path / "empty.png"))

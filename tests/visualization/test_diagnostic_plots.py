"""Diagnostic plots: the saved figures show the statistics (plotted values, colours, titles,
labels), empty inputs are noted in their panel, shapes are checked, the PNGs are valid."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from sparsercnn.visualization.diagnostic_plots import (
    plot_confusion_matrix,
    plot_dataset_summary,
    plot_slot_centres,
    plot_slot_match_counts,
    plot_slot_size_histograms,
    plot_stage_metrics,
)
from sparsercnn.visualization.draw import class_color
from tests.visualization.figure_inspection import (
    axis_texts,
    bar_heights,
    legend_labels,
    line_data,
    panels,
)


def _rgb(label: int) -> tuple[float, ...]:
    return tuple(c / 255 for c in class_color(label))


def _assert_png(path: Path) -> None:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
        image.verify()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_stage_metrics(tmp_path: Path, saved_figures: list[Figure]) -> None:
    backend = matplotlib.get_backend()
    ap, ap50, ap75 = [0.3, 0.4, 0.42], [0.5, 0.6, 0.61], [0.3, 0.41, 0.44]
    seconds = [0.01, 0.012, 0.014]
    _assert_png(plot_stage_metrics([1, 2, 3], ap, ap50, ap75, seconds, tmp_path / "a.png"))
    _assert_png(plot_stage_metrics([1, 2, 3], ap, ap50, ap75, None, tmp_path / "b.png"))
    assert matplotlib.get_backend() == backend

    ax_ap, ax_time = saved_figures[0].axes
    assert ax_ap.get_ylabel() == "COCO AP (%)" and list(ax_ap.get_xticks()) == [1, 2, 3]
    assert legend_labels(ax_ap) == ["AP", "AP50", "AP75"]
    for name, values in (("AP", ap), ("AP50", ap50), ("AP75", ap75)):
        x, y = line_data(ax_ap, name)
        assert x.tolist() == [1, 2, 3] and y == pytest.approx([100 * v for v in values])
    (latency,) = ax_time.get_lines()
    assert list(latency.get_ydata()) == pytest.approx([10.0, 12.0, 14.0])
    assert ax_time.get_ylabel() == "model time (ms / image)" and ax_time.get_ylim()[0] == 0
    assert ax_ap.get_ylim()[0] == 0 and ax_ap.get_ylim()[1] >= 100 * max(ap50)
    _, unmeasured = saved_figures[1].axes
    assert axis_texts(unmeasured) == ["no latency measured"] and not unmeasured.get_lines()


def test_stage_metrics_of_an_untrained_model(tmp_path: Path, saved_figures: list[Figure]) -> None:
    """AP 0 at every stage: the axis runs from 0 (AP is never negative), not around it."""
    plot_stage_metrics([1, 2], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], None, tmp_path / "a.png")
    assert saved_figures[0].axes[0].get_ylim() == (0.0, 1.0)


def test_slot_match_counts(tmp_path: Path, saved_figures: list[Figure]) -> None:
    matched = np.array([0, 3, 0, 7, 1])
    confident = np.array([0, 2, 1, 6, 0])
    _assert_png(plot_slot_match_counts(matched, confident, tmp_path / "m.png"))
    ax_matched, ax_confident = saved_figures[0].axes
    assert bar_heights(ax_matched) == matched.tolist()
    assert bar_heights(ax_confident) == confident.tolist()
    assert ax_matched.get_title().endswith("(2 of 5 never)")
    assert ax_confident.get_xlabel() == "proposal slot"
    assert ax_matched.get_ylim()[0] == 0 == ax_confident.get_ylim()[0]


def test_slot_match_counts_with_no_confident_slot(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    """No slot ever confident: the panel says so, from 0 up (not an axis around 0)."""
    plot_slot_match_counts([3, 0, 1], [0, 0, 0], tmp_path / "m.png", score_threshold=0.3)
    ax_confident = saved_figures[0].axes[1]
    assert ax_confident.get_title().endswith("(score >= 0.3, 3 never)")
    assert ax_confident.get_ylim() == (0.0, 1.0)


def test_slot_centres(tmp_path: Path, saved_figures: list[Figure]) -> None:
    centres = np.array([[0.2, 0.3], [np.nan, np.nan], [0.8, 0.1], [0.5, 0.5]])
    labels = np.array([0, -1, 2, 0])
    proposals = np.array([[0.1, 0.1], [0.6, 0.7], [0.3, 0.3], [0.9, 0.9]])
    out = plot_slot_centres(
        centres, labels, [4, 0, 2, 8], ["a", "b", "c"], tmp_path / "c.png", proposals
    )
    _assert_png(out)
    (ax,) = saved_figures[0].axes
    class_a, class_c, unused = ax.collections
    assert class_a.get_offsets().tolist() == [[0.2, 0.3], [0.5, 0.5]]
    assert tuple(class_a.get_facecolor()[0][:3]) == pytest.approx(_rgb(0))
    assert class_c.get_offsets().tolist() == [[0.8, 0.1]]
    assert tuple(class_c.get_facecolor()[0][:3]) == pytest.approx(_rgb(2))
    # Marker area grows with the matches: 20 + 200 * count / max.
    assert class_a.get_sizes().tolist() == [120.0, 220.0]
    assert unused.get_offsets().tolist() == [[0.6, 0.7]]  # never matched: at its proposal
    assert legend_labels(ax) == ["a", "c", "never matched (1, at proposal centre)"]
    assert ax.get_ylim() == (1.0, 0.0)  # image coordinates: y down


def test_slot_size_histograms(tmp_path: Path, saved_figures: list[Figure]) -> None:
    """One row per group on one log size axis, each in its own colour with its median: drawn
    over one another, the groups hid each other."""
    rng = np.random.default_rng(0)
    groups = [("small", rng.uniform(5, 30, 50)), ("large", rng.uniform(40, 300, 40))]
    _assert_png(plot_slot_size_histograms(groups, tmp_path / "s.png"))
    _assert_png(plot_slot_size_histograms([("one", np.array([12.0]))], tmp_path / "one.png"))
    _assert_png(plot_slot_size_histograms([], tmp_path / "none.png"))
    small_ax, large_ax = saved_figures[0].axes
    assert small_ax.get_shared_x_axes().joined(small_ax, large_ax)
    assert small_ax.get_xscale() == large_ax.get_xscale() == "log"
    for ax, (name, values) in zip((small_ax, large_ax), groups, strict=True):
        assert legend_labels(ax) == [
            f"{name} ({values.size} matches)",
            f"median {np.median(values):.3g}",
        ]
        assert sum(bar_heights(ax)) == values.size  # this group's matches only
    colours = [to_rgb(ax.patches[0].get_facecolor()) for ax in (small_ax, large_ax)]
    assert colours[0] != colours[1]
    # Each group's filled bins lie in its own size range.
    small_x = [p.get_x() for p in small_ax.patches if p.get_height() > 0]
    large_x = [p.get_x() + p.get_width() for p in large_ax.patches if p.get_height() > 0]
    assert min(small_x) <= 6 and max(large_x) >= 250
    assert max(small_x) <= min(large_x)
    (single,) = saved_figures[1].axes
    assert sum(bar_heights(single)) == 1
    (empty,) = saved_figures[2].axes
    assert axis_texts(empty) == ["no matched objects"] and not empty.patches


def test_confusion_matrix_plot(tmp_path: Path, saved_figures: list[Figure]) -> None:
    matrix = np.array([[5, 1, 2], [0, 7, 1], [3, 2, 0]])
    names = ["cat", "dog"]
    out = plot_confusion_matrix(
        matrix, [*names, "background"], [*names, "missed"], tmp_path / "c.png"
    )
    _assert_png(out)
    (ax,) = panels(saved_figures[0])
    (image,) = ax.get_images()
    np.testing.assert_allclose(image.get_array(), matrix / matrix.sum(axis=1, keepdims=True))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "missed"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "background"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "ground truth")
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert {cell: int(t.get_text()) for cell, t in cells.items()} == {
        (r, k): int(count) for (r, k), count in np.ndenumerate(matrix) if count
    }
    assert to_rgb(cells[(1, 1)].get_color()) == (1.0, 1.0, 1.0)  # 7/8 of the row: dark cell
    assert to_rgb(cells[(0, 1)].get_color()) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(matrix, names, names, tmp_path / "bad.png")


def test_dataset_summary(tmp_path: Path, saved_figures: list[Figure]) -> None:
    out = plot_dataset_summary(
        ["cat", "dog"], [10, 4], np.array([10.0, 40.0, 120.0]), [3, 0, 11], tmp_path / "d.png", 16
    )
    _assert_png(out)
    _assert_png(plot_dataset_summary(["cat"], [0], [], [], tmp_path / "empty.png"))
    ax_classes, ax_sizes, ax_objects = saved_figures[0].axes
    assert bar_heights(ax_classes) == [10, 4]
    assert [tuple(p.get_facecolor()[:3]) for p in ax_classes.patches] == [_rgb(0), _rgb(1)]
    assert ax_classes.get_title() == "boxes per class (14 in all)"
    assert [t.get_text() for t in ax_classes.get_xticklabels()] == ["cat", "dog"]
    assert sum(bar_heights(ax_sizes)) == 3
    # Boxes of nearly one size are still visible bars (1/40 of the axis), not slivers.
    plot_dataset_summary(["cat"], [3], [29.0, 29.5, 30.0], [3], tmp_path / "one_size.png")
    one_size = saved_figures[-1].axes[1]
    assert sum(bar_heights(one_size)) == 3
    assert [p.get_width() for p in one_size.patches] == pytest.approx([(96 - 29) / 40] * 40)
    assert sum(bar_heights(ax_objects)) == 3 and ax_objects.get_title().endswith("(max 11)")
    (proposals_line,) = [line for line in ax_objects.get_lines() if line.get_label() != "_"]
    assert list(proposals_line.get_xdata()) == [16, 16]
    assert legend_labels(ax_objects) == ["N = 16 proposals"]
    _, no_sizes, no_objects = saved_figures[1].axes
    assert axis_texts(no_sizes) == ["no boxes"] and axis_texts(no_objects) == ["no images"]


def test_long_class_names_are_shortened_and_leave_room_for_the_plot(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    """A 120-character class name squeezed the confusion matrix and the class bars to nothing
    (matplotlib: "constrained_layout not applied"); ticks and legends shorten it in the middle,
    so that names differing at the end stay apart."""
    names = ["x" * 120 + " (1)", "x" * 120 + " (3)"]
    shown = ["x" * 16 + "\u2026" + "x" * 11 + " (1)", "x" * 16 + "\u2026" + "x" * 11 + " (3)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout warning fails the test
        plot_confusion_matrix(
            np.ones((3, 3)), [*names, "background"], [*names, "missed"], tmp_path / "c.png"
        )
        plot_dataset_summary(names, [2, 1], [10.0, 40.0, 50.0], [3], tmp_path / "d.png")
        plot_slot_centres(
            np.array([[0.5, 0.5], [0.2, 0.2]]), [0, 1], [1, 2], names, tmp_path / "s.png"
        )
    (matrix,) = panels(saved_figures[0])
    assert [t.get_text() for t in matrix.get_xticklabels()] == [*shown, "missed"]
    assert [t.get_text() for t in matrix.get_yticklabels()] == [*shown, "background"]
    classes = saved_figures[1].axes[0]
    assert [t.get_text() for t in classes.get_xticklabels()] == shown
    assert legend_labels(saved_figures[2].axes[0]) == shown
    for figure in saved_figures:
        for ax in panels(figure):
            assert ax.get_position().width > 0.2 and ax.get_position().height > 0.2

"""Diagnostic plots: accuracy and latency per stage, proposal-slot statistics, the confusion
matrix and a dataset's label summary.

Plain numbers in, PNG out: :mod:`sparsercnn.diagnostics` computes the statistics with the model,
these functions only draw them. Figures use :class:`matplotlib.figure.Figure` with an Agg canvas
(:func:`~sparsercnn.visualization.plots.save_figure`), never pyplot, and are written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sparsercnn.visualization.plots import class_rgb, plotted_name, save_figure

# Confusion-matrix cells are annotated with their counts up to this many rows.
MAX_ANNOTATED_CLASSES = 30


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def plot_stage_metrics(
    stages: Sequence[int],
    ap: Sequence[float],
    ap50: Sequence[float],
    ap75: Sequence[float],
    seconds_per_image: Sequence[float] | None,
    output_png: str | Path,
) -> Path:
    """AP of every stage's output (left) and the latency of running only the first k (right).

    Args:
        stages: 1-based stage numbers ``k``.
        ap, ap50, ap75: COCO AP@[.5:.95], AP50 and AP75 of stage ``k``'s detections, in [0, 1].
        seconds_per_image: model time per image when stopping after ``k`` stages (``None``: not
            measured).
        output_png: where to write the PNG.

    Returns:
        ``output_png``.
    """
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    ax_ap, ax_time = figure.subplots(1, 2)
    for values, name in ((ap, "AP"), (ap50, "AP50"), (ap75, "AP75")):
        ax_ap.plot(stages, [100 * v for v in values], marker="o", label=name)
    ax_ap.set_title("accuracy of each stage's output")
    ax_ap.set_xlabel("stage")
    ax_ap.set_ylabel("COCO AP (%)")
    ax_ap.set_xticks(list(stages))
    # AP is never negative; all zero (an untrained model), the axis shows 0 to 1 %.
    highest = max((100 * v for v in (*ap, *ap50, *ap75) if np.isfinite(v)), default=0.0)
    ax_ap.set_ylim(0, max(1.0, 1.05 * highest))
    ax_ap.legend(fontsize="small")
    if seconds_per_image:
        ax_time.plot(stages, [1000 * s for s in seconds_per_image], marker="o", color="black")
        ax_time.set_title("latency when stopping after k stages")
        ax_time.set_xlabel("stages run (k)")
        ax_time.set_ylabel("model time (ms / image)")
        ax_time.set_xticks(list(stages))
        ax_time.set_ylim(bottom=0)
    else:
        _no_data(ax_time, "latency measured")
    return save_figure(figure, output_png)


def plot_slot_match_counts(
    matched_counts: Sequence[int] | np.ndarray,
    confident_counts: Sequence[int] | np.ndarray,
    output_png: str | Path,
    score_threshold: float | None = None,
) -> Path:
    """Per proposal slot: how often it was matched to ground truth, and how often it was confident.

    Args:
        matched_counts: ``(N,)`` matches of each slot over the data set.
        confident_counts: ``(N,)`` images in which the slot's best score passed the threshold.
        output_png: where to write the PNG.
        score_threshold: that threshold, named in the lower panel's title.

    Returns:
        ``output_png``.
    """
    matched = np.asarray(matched_counts)
    confident = np.asarray(confident_counts)
    slots = np.arange(len(matched))
    figure = Figure(figsize=(max(8.0, min(24.0, len(slots) / 12)), 6), layout="constrained")
    ax_matched, ax_confident = figure.subplots(2, 1, sharex=True)
    ax_matched.bar(slots, matched, width=0.85, color="tab:blue")
    ax_matched.set_ylabel("times matched")
    dead = int((matched == 0).sum())
    ax_matched.set_title(f"Hungarian matches per proposal slot ({dead} of {len(slots)} never)")
    ax_confident.bar(slots, confident, width=0.85, color="tab:orange")
    ax_confident.set_ylabel("confident detections")
    ax_confident.set_xlabel("proposal slot")
    ax_confident.set_xlim(-0.5, len(slots) - 0.5)
    never = int((confident == 0).sum())
    threshold = "" if score_threshold is None else f"score >= {score_threshold:g}, "
    ax_confident.set_title(f"images where the slot is confident ({threshold}{never} never)")
    for ax, counts in ((ax_matched, matched), (ax_confident, confident)):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        # Counts start at 0; all zero, the axis still shows 0 to 1 (not -0.05 to 0.05).
        ax.set_ylim(0, max(1.0, 1.05 * float(counts.max(initial=0))))
    return save_figure(figure, output_png)


def plot_slot_centres(
    mean_centres: np.ndarray,
    dominant_labels: Sequence[int] | np.ndarray,
    matched_counts: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    output_png: str | Path,
    proposal_centres: np.ndarray | None = None,
) -> Path:
    """Where each slot's matched objects lie: mean normalised centre, coloured by dominant class.

    Args:
        mean_centres: ``(N, 2)`` mean ``(cx, cy)`` of the matched ground truth divided by the
            image ``(w, h)``; NaN for slots never matched.
        dominant_labels: ``(N,)`` most frequent matched class of each slot, -1 if never matched,
            -2 where classes tie for the most matches (drawn grey, as no single class).
        matched_counts: ``(N,)`` matches per slot (marker area).
        class_names: name of every contiguous label (legend).
        output_png: where to write the PNG.
        proposal_centres: ``(N, 2)`` normalised centres of the learned proposals; the never
            matched slots are marked there with grey crosses.

    Returns:
        ``output_png``.
    """
    centres = np.asarray(mean_centres, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(dominant_labels, dtype=np.int64)
    counts = np.asarray(matched_counts, dtype=np.float64)
    figure = Figure(figsize=(7.5, 7), layout="constrained")
    ax = figure.subplots()
    sizes = 20 + 200 * counts / max(counts.max(initial=0.0), 1.0)
    for label in sorted(set(labels.tolist()) - {-1, -2}):
        keep = labels == label
        name = class_names[label] if 0 <= label < len(class_names) else f"class {label}"
        ax.scatter(
            centres[keep, 0],
            centres[keep, 1],
            s=sizes[keep],
            color=class_rgb(label),
            edgecolor="black",
            linewidth=0.5,
            alpha=0.8,
            label=plotted_name(name),
        )
    tied = labels == -2
    if tied.any():
        ax.scatter(
            centres[tied, 0],
            centres[tied, 1],
            s=sizes[tied],
            color="lightgrey",
            edgecolor="black",
            linewidth=0.5,
            alpha=0.8,
            label=f"no single class ({int(tied.sum())}, classes tie)",
        )
    dead = labels == -1
    if proposal_centres is not None and dead.any():
        unused = np.asarray(proposal_centres, dtype=np.float64).reshape(-1, 2)[dead]
        ax.scatter(
            unused[:, 0],
            unused[:, 1],
            marker="x",
            color="grey",
            label=f"never matched ({int(dead.sum())}, at proposal centre)",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_xlabel("centre x / image width")
    ax.set_ylabel("centre y / image height")
    ax.set_title("mean centre of each slot's matched objects (size: matches)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(figure, output_png)


def plot_slot_size_histograms(
    groups: Sequence[tuple[str, np.ndarray]], output_png: str | Path, num_bins: int = 30
) -> Path:
    """Histograms of matched object sizes, one row per group of slots, on a shared log scale.

    Rows stacked on one size axis (not histograms drawn over each other, which hide one
    another) with each group's median dashed: medians that move along the rows mean the slots
    specialise in object sizes.

    Args:
        groups: ``(name, sqrt_areas)`` per group; ``sqrt_areas`` are the square roots of the
            areas (pixels of the original images) of the objects the group's slots matched.
        output_png: where to write the PNG.
        num_bins: histogram bins.

    Returns:
        ``output_png``.
    """
    values = [np.asarray(v, dtype=np.float64) for _, v in groups]
    positive = [v[v > 0] for v in values]  # a log axis shows no zero-area object
    finite = np.concatenate(positive) if positive else np.zeros(0)
    if finite.size == 0:
        figure = Figure(figsize=(9, 5), layout="constrained")
        _no_data(figure.subplots(), "matched objects")
        return save_figure(figure, output_png)
    low, high = finite.min(), finite.max()
    # Log-spaced bins over the data; one value only gets bins around it.
    bins = np.geomspace(low, high, num_bins + 1) if high > low else np.array([low / 2, low * 2])
    figure = Figure(figsize=(11, 1.0 + 1.5 * len(groups)), layout="constrained")
    axes = figure.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    rows = zip(axes, groups, values, positive, strict=True)
    for index, (ax, (name, _), group_values, sizes) in enumerate(rows):
        label = f"{name} ({group_values.size} matches)"
        if sizes.size:
            ax.hist(sizes, bins=bins.tolist(), color=f"C{index}", label=label)
            median = float(np.median(sizes))
            ax.axvline(
                median, color="black", linestyle="--", linewidth=1, label=f"median {median:.3g}"
            )
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.text(0.01, 0.5, f"{label}: none", transform=ax.transAxes, va="center")
        ax.set_xscale("log")
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    axes[-1].set_xlabel("sqrt(area) of the matched object (original pixels)")
    figure.supylabel("matches")
    figure.suptitle("object sizes matched by slot groups (slots sorted by mean matched size)")
    return save_figure(figure, output_png)


def plot_confusion_matrix(
    matrix: np.ndarray,
    row_names: Sequence[str],
    column_names: Sequence[str],
    output_png: str | Path,
    title: str = "confusion matrix",
) -> Path:
    """A count matrix as a heat map, colours normalised per row, counts written in the cells.

    Args:
        matrix: ``(R, K)`` integer counts; rows are ground truth, columns predictions.
        row_names: ``R`` row labels (ground-truth classes, then e.g. ``"background"``).
        column_names: ``K`` column labels (predicted classes, then e.g. ``"missed"``).
        output_png: where to write the PNG.
        title: figure title.

    Returns:
        ``output_png``.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.shape != (len(row_names), len(column_names)):
        raise ValueError(
            f"confusion matrix of shape {counts.shape} for {len(row_names)} row and "
            f"{len(column_names)} column names"
        )
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = max(5.0, min(30.0, 0.45 * len(column_names) + 2.5))
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, fraction=0.046, label="fraction of the row")
    columns = [plotted_name(name) for name in column_names]
    ax.set_xticks(range(len(column_names)), columns, rotation=90, fontsize="small")
    ax.set_yticks(
        range(len(row_names)), [plotted_name(name) for name in row_names], fontsize="small"
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    if len(row_names) <= MAX_ANNOTATED_CLASSES:
        for (r, k), count in np.ndenumerate(counts):
            if count:
                color = "white" if rates[r, k] > 0.5 else "black"
                ax.text(k, r, str(count), ha="center", va="center", fontsize="x-small", color=color)
    return save_figure(figure, output_png)


def plot_dataset_summary(
    class_names: Sequence[str],
    class_counts: Sequence[int] | np.ndarray,
    sqrt_areas: Sequence[float] | np.ndarray,
    objects_per_image: Sequence[int] | np.ndarray,
    output_png: str | Path,
    num_proposals: int | None = None,
    title: str = "dataset labels",
) -> Path:
    """Boxes per class, box sizes and objects per image of a data set.

    Args:
        class_names: name of every contiguous label.
        class_counts: ``(C,)`` boxes of each class.
        sqrt_areas: ``(M,)`` square root of every box's area (original pixels).
        objects_per_image: ``(I,)`` boxes in each image.
        output_png: where to write the PNG.
        num_proposals: N of the model; drawn as a line on the objects-per-image histogram.
        title: figure title.

    Returns:
        ``output_png``.
    """
    figure = Figure(figsize=(15, 4.8), layout="constrained")
    ax_classes, ax_sizes, ax_objects = figure.subplots(1, 3)
    counts = np.asarray(class_counts, dtype=np.int64)
    colors = [class_rgb(label) for label in range(len(counts))]
    ax_classes.bar(range(len(counts)), counts, color=colors, edgecolor="black", linewidth=0.3)
    names = [plotted_name(name) for name in class_names]
    ax_classes.set_xticks(range(len(counts)), names, rotation=90, fontsize="x-small")
    ax_classes.set_title(f"boxes per class ({int(counts.sum())} in all)")
    areas = np.asarray(sqrt_areas, dtype=np.float64)
    if areas.size:
        # Bins over the whole axis, which shows the 32 and 96 limits: bins over the boxes'
        # own range would be too thin to see when the boxes are all of one size.
        span = (min(float(areas.min()), 32.0), max(float(areas.max()), 96.0))
        ax_sizes.hist(areas, bins=np.linspace(*span, 41), color="tab:blue")
        for edge, name in ((32, "small | medium"), (96, "medium | large")):
            ax_sizes.axvline(edge, color="black", linestyle="--", linewidth=0.8)
            ax_sizes.text(
                edge,
                1.0,
                f" {name}",
                transform=ax_sizes.get_xaxis_transform(),
                va="top",
                fontsize="x-small",
                rotation=90,
            )
        ax_sizes.set_xlabel("sqrt(w x h) of the box (pixels)")
        ax_sizes.set_title("box sizes (COCO's limits 32 and 96 apply to the annotation area)")
    else:
        _no_data(ax_sizes, "boxes")
    objects = np.asarray(objects_per_image, dtype=np.int64)
    if objects.size:
        ax_objects.hist(objects, bins=np.arange(objects.max() + 2) - 0.5, color="tab:green")
        if num_proposals is not None:
            ax_objects.axvline(num_proposals, color="red", label=f"N = {num_proposals} proposals")
            ax_objects.legend(fontsize="small")
        ax_objects.set_xlabel("objects in the image")
        ax_objects.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_objects.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_objects.set_title(f"objects per image (max {int(objects.max())})")
    else:
        _no_data(ax_objects, "images")
    figure.suptitle(title)
    return save_figure(figure, output_png)

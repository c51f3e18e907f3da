"""Run plots: training curves from the metrics JSON-lines file and precision-recall curves.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, so the global
matplotlib backend (and pyplot state) of the caller is never touched. PNGs are written
atomically (temp file + ``os.replace``).

Training records look like ``{"iter": 20, "lr": 2.5e-05, "loss": 41.2, "loss_cls/stage0": 2.1,
..., "time": 0.8}``, evaluation records like ``{"iter": 5000, "eval": {"AP": 0.21, ...}}``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from sparsercnn.atomic_file import atomic_write
from sparsercnn.evaluation.coco_evaluator import PrecisionRecallCurve
from sparsercnn.evaluation.units import format_percent
from sparsercnn.json_lines import read_json_lines
from sparsercnn.text import counted, shortened
from sparsercnn.visualization.draw import class_color
from sparsercnn.visualization.font import plot_font_families, warn_missing_plot_glyphs

logger = logging.getLogger(__name__)

# Class names in ticks and legends are shortened in the middle to this many characters: longer
# ones squeeze the axes to nothing (the JSON files beside the plots keep whole names).
MAX_PLOTTED_NAME = 32

_STAGE_KEY = re.compile(r"^(loss_\w+)/stage(\d+)$")
_AP_KEYS = ("AP", "AP50", "AP75")


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """``(iters, values)`` of the training records that have a finite number under ``key``."""
    iters, values = [], []
    for record in records:
        value = record.get(key)
        if "iter" in record and isinstance(value, (int, float)) and np.isfinite(value):
            iters.append(float(record["iter"]))
            values.append(float(value))
    return iters, values


def _smooth(values: list[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what is there)."""
    cumsum = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    ends = np.arange(1, len(values) + 1)
    return (cumsum[ends] - cumsum[ends - counts]) / counts


def _plot_line(ax: Axes, iters: list[float], values: list[float], label: str) -> str:
    """Plot ``values`` (faint) and their moving average when there are many; return the colour."""
    window = max(1, len(values) // 50)
    if window == 1:
        return to_hex(ax.plot(iters, values, label=label)[0].get_color())
    color = to_hex(ax.plot(iters, values, alpha=0.25, linewidth=0.8)[0].get_color())
    ax.plot(iters, _smooth(values, window), label=label, color=color)
    return color


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _loss_terms(records: list[dict[str, Any]]) -> tuple[dict[str, list[str]], int]:
    """Loss term -> its per-stage keys, and the last stage index seen (-1 if none)."""
    terms: dict[str, set[str]] = defaultdict(set)
    last_stage = -1
    for record in records:
        for key in record:
            match = _STAGE_KEY.match(key)
            if match:
                terms[match.group(1)].add(key)
                last_stage = max(last_stage, int(match.group(2)))
    return {term: sorted(keys) for term, keys in sorted(terms.items())}, last_stage


def plotted_name(name: str) -> str:
    """``name`` as a plot's tick or legend shows it: at most :data:`MAX_PLOTTED_NAME`
    characters (:func:`~sparsercnn.text.shortened`)."""
    return shortened(name, MAX_PLOTTED_NAME)


def class_rgb(label: int) -> tuple[float, float, float]:
    """The drawing colour of ``label`` (:func:`class_color`) as matplotlib RGB floats."""
    r, g, b = class_color(label)
    return r / 255, g / 255, b / 255


def _plot_loss_terms(ax: Axes, records: list[dict[str, Any]]) -> None:
    terms, last_stage = _loss_terms(records)
    if not terms:
        _no_data(ax, "per-term losses")
        return
    for term, keys in terms.items():
        iters, sums = [], []
        for record in records:
            if "iter" in record and all(isinstance(record.get(k), (int, float)) for k in keys):
                iters.append(float(record["iter"]))
                sums.append(float(sum(record[k] for k in keys)))
        color = _plot_line(ax, iters, sums, f"{term} (all stages)") if sums else None
        last_iters, last_values = _series(records, f"{term}/stage{last_stage}")
        if last_values:
            ax.plot(
                last_iters,
                last_values,
                color=color,
                linestyle="--",
                linewidth=0.8,
                label=f"{term} (stage {last_stage + 1}, the last)",
            )
    ax.set_title("loss terms")
    ax.set_yscale("log")
    ax.legend(fontsize="small")


def _plot_eval(ax: Axes, records: list[dict[str, Any]]) -> None:
    evals = [
        {"iter": r["iter"], **r["eval"]}
        for r in records
        if "iter" in r and isinstance(r.get("eval"), dict)
    ]
    plotted = False
    for key in _AP_KEYS:
        iters, values = _series(evals, key)
        if values:
            ax.plot(iters, [100.0 * v for v in values], marker="o", label=key)
            plotted = True
    if not plotted:
        _no_data(ax, "evaluation yet")
        return
    ax.set_title("COCO bbox AP")
    ax.set_ylabel("AP (%)")
    ax.set_ylim(0.0, 100.0)
    ax.legend(fontsize="small")


# matplotlib's warning for a character its font lacks (drawn as a box), once per character.
_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")


def save_figure(figure: Figure, output_png: str | Path) -> Path:
    """Render ``figure`` (at its own dpi) with Agg and write it as PNG atomically.

    Its text is set in the drawings' font, ``$SPARSERCNN_FONT`` where set
    (:func:`~sparsercnn.visualization.font.plot_font_families`). Characters no font has (class
    names in CJK scripts, say) are drawn as boxes, with one logged warning per command naming
    them (:func:`~sparsercnn.visualization.font.warn_missing_plot_glyphs`) instead of
    matplotlib's warning per character and figure.
    """
    families = plot_font_families()
    if families is not None:
        # Every text made so far; tick labels added while drawing copy the first tick's font.
        for text in figure.findobj(Text):
            text.set_fontfamily(families)
    canvas = FigureCanvasAgg(figure)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = atomic_write(output_png, lambda tmp: canvas.print_png(str(tmp), metadata=None))
    missing: list[str] = []
    for warning in caught:
        match = _MISSING_GLYPH.search(str(warning.message))
        if match is None:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        else:
            missing.append(chr(int(match.group(1))))
    warn_missing_plot_glyphs("".join(missing))
    return path


def _skipped_note(records: list[dict[str, Any]]) -> str:
    """`` (N steps skipped: non-finite loss)`` when the records count skipped steps (their
    loss is in no record's mean, so the curve alone would not show them), else ``""``."""
    skipped = sum(
        int(r["skipped"]) for r in records if isinstance(r.get("skipped"), int) and "eval" not in r
    )
    return f" ({counted(skipped, 'step')} skipped: non-finite loss)" if skipped else ""


def plot_training_curves(metrics_jsonl: str | Path, output_png: str | Path) -> Path:
    """Plot total loss, per-term losses, learning rate and AP against the iteration.

    Per-term losses are summed over stages (solid) with the last stage dashed. Steps skipped
    for a non-finite loss (the records' ``skipped``) are counted in the total loss's title.
    Panels without data say so instead of failing, so the plot can be drawn at any point of a
    run.

    Args:
        metrics_jsonl: the run's JSON-lines metrics file (training and evaluation records).
        output_png: where to write the PNG.

    Returns:
        ``output_png``.
    """
    records = read_json_lines(metrics_jsonl)
    if not records:
        logger.warning("%s holds no records; the training-curve plot is empty", metrics_jsonl)
    figure = Figure(figsize=(12, 8), layout="constrained")
    (ax_loss, ax_terms), (ax_lr, ax_ap) = figure.subplots(2, 2)
    iters, losses = _series(records, "loss")
    if losses:
        _plot_line(ax_loss, iters, losses, "loss")
        ax_loss.set_title("total loss" + _skipped_note(records))
    else:
        _no_data(ax_loss, "total loss" + _skipped_note(records))
    _plot_loss_terms(ax_terms, records)
    iters, lrs = _series(records, "lr")
    if lrs:
        ax_lr.plot(iters, lrs)
        ax_lr.set_title("learning rate")
    else:
        _no_data(ax_lr, "learning rate")
    _plot_eval(ax_ap, records)
    steps = [float(r["iter"]) for r in records if isinstance(r.get("iter"), (int, float))]
    for ax in (ax_loss, ax_terms, ax_lr, ax_ap):
        if len(set(steps)) > 1:  # one iteration axis for all panels, eval points included
            ax.set_xlim(min(steps), max(steps))
        ax.set_xlabel("iteration")
    figure.suptitle(Path(metrics_jsonl).name)
    return save_figure(figure, output_png)


def plot_precision_recall(
    curves: Sequence[PrecisionRecallCurve],
    output_png: str | Path,
    max_legend: int = 20,
    category_labels: Mapping[int, int] | None = None,
) -> Path:
    """Per-class precision-recall curves at IoU 0.5 and 0.5:0.95, with their class mean in bold.

    Args:
        curves: from :func:`~sparsercnn.evaluation.coco_evaluator.precision_recall_curves` (also
            :attr:`~sparsercnn.evaluation.coco_evaluator.EvaluationResult.precision_recall`).
        output_png: where to write the PNG.
        max_legend: classes are named in the legend only up to this many.
        category_labels: dataset category id -> contiguous label; when given, each class is
            drawn in its colour of the drawings and other plots
            (:func:`~sparsercnn.visualization.draw.class_color`), else in matplotlib's cycle.

    Returns:
        ``output_png``.
    """
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    panels = (("IoU 0.5", "precision_50"), ("IoU 0.5:0.95", "precision_50_95"))
    for ax, (title, attribute) in zip(axes, panels, strict=True):
        if not curves:
            _no_data(ax, "classes with ground truth")
            continue
        named = len(curves) <= max_legend
        for curve in curves:
            label = None if category_labels is None else category_labels.get(curve.category_id)
            ax.plot(
                curve.recall,
                getattr(curve, attribute),
                linewidth=0.8,
                alpha=0.6,
                label=plotted_name(curve.name) if named else None,
                color=None if label is None else class_rgb(label),
            )
        mean = np.mean([getattr(c, attribute) for c in curves], axis=0)
        classes = counted(len(curves), "class", "classes")
        ax.plot(
            curves[0].recall,
            mean,
            color="black",
            linewidth=2.5,
            label=f"mean of {classes} (AP {format_percent(float(mean.mean()))})",
        )
        ax.set_title(f"precision-recall, {title}")
        ax.set_xlabel("recall")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize="x-small", ncol=2 if named and len(curves) > 10 else 1)
    axes[0].set_ylabel("precision")
    return save_figure(figure, output_png)

"""Reading a saved matplotlib figure back: texts, legends, plotted data."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def axis_texts(ax: Axes) -> list[str]:
    """The free texts of ``ax`` (e.g. the "no data" notes and cell counts)."""
    return [text.get_text() for text in ax.texts]


def legend_labels(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def panels(figure: Figure) -> list[Axes]:
    """The figure's axes without colour bars, in creation order."""
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def line_data(ax: Axes, label: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the line labelled ``label`` in ``ax``."""
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def bar_heights(ax: Axes) -> list[float]:
    return [float(patch.get_height()) for patch in ax.patches]

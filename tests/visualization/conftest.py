"""Fixtures of the plot tests: the figures the plotting functions save, for inspection."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from sparsercnn.visualization import diagnostic_plots, plots


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure a plotting function saves (still written to its PNG), in order."""
    figures: list[Figure] = []
    save_figure = plots.save_figure

    def capture(figure: Figure, output_png: str | Path) -> Path:
        figures.append(figure)
        return save_figure(figure, output_png)

    for module in (plots, diagnostic_plots):
        monkeypatch.setattr(module, "save_figure", capture)
    return figures

"""Panels: sizes within their bounds, titled panels in a row, framed apart from the page."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sparsercnn.visualization.panel_size import MAX_PANEL_SIDE, MIN_PANEL_SIDE, panel_side
from sparsercnn.visualization.panels import PANEL_FRAME_COLOR, compose_panels, fit_panel


def _black(width: int = 200, height: int = 100) -> Image.Image:
    return Image.new("RGB", (width, height), (0, 0, 0))


def test_panel_sides_lie_within_their_bounds() -> None:
    assert panel_side(1280, MAX_PANEL_SIDE) == MAX_PANEL_SIDE  # scaled down
    assert panel_side(40, MAX_PANEL_SIDE) == MIN_PANEL_SIDE  # enlarged
    assert panel_side(300, MAX_PANEL_SIDE) == 300  # as it is
    assert panel_side(40, 100) == 100  # a maximum under the minimum wins
    panel, scale = fit_panel(_black(1280, 640), MAX_PANEL_SIDE)
    assert panel.size == (640, 320) and scale.tolist() == [0.5] * 4


def test_compose_panels_titles_and_widths() -> None:
    panels = [("a", _black(50, 40)), ("a much longer title than the panel", _black(30, 60))]
    out = compose_panels(panels, gap=4, font_size=12)
    pixels = np.asarray(out)
    assert out.height > 60 + 12 and out.width > 50 + 30 + 3 * 4
    assert (pixels[:4] == 255).all()  # white margin
    # Panels sit side by side, top-aligned below the titles, each centred in its column.
    black = (pixels == 0).all(axis=-1)
    panel_rows = np.nonzero(black[:, 4:54].all(axis=1))[0]
    top = int(panel_rows.min())
    assert panel_rows.tolist() == list(range(top, top + 40))
    assert top + 60 == out.height - 4  # the taller panel reaches the bottom margin
    title_band = black[4:top]
    assert title_band[:, 4:54].any()  # "a" is drawn above the first panel
    second = np.nonzero(black[top:, 58:].any(axis=0))[0]
    assert second.max() + 1 - second.min() == 30  # the 30 px wide panel
    title_columns = np.nonzero(title_band[:, 58:].any(axis=0))[0]
    assert title_columns.max() - title_columns.min() > 30  # the long title is wider than it
    centre = 58 + (title_columns.min() + title_columns.max()) / 2
    assert abs(58 + (second.min() + second.max()) / 2 - centre) <= 8  # both centred (ink ~ box)
    with pytest.raises(ValueError, match="at least one panel"):
        compose_panels([])


def test_a_white_panel_is_framed_apart_from_the_page() -> None:
    white = Image.new("RGB", (256, 128), (255, 255, 255))
    pixels = np.asarray(compose_panels([("white", white)], gap=8))
    assert tuple(pixels[-8, 100]) == PANEL_FRAME_COLOR and tuple(pixels[-9, 100]) == (255,) * 3

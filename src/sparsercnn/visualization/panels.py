"""Figures of panels: an image sized for a panel, and titled panels laid out in one row.

Ground truth beside detections and the stage figure are such rows. A panel's size follows
:mod:`~sparsercnn.visualization.panel_size`; boxes drawn on a panel are those of its image
times the factors :func:`fit_panel` returns (absolute xyxy pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from sparsercnn.data.image_io import to_rgb
from sparsercnn.visualization.font import label_font
from sparsercnn.visualization.panel_size import panel_side

# The 1-pixel frame around every panel.
PANEL_FRAME_COLOR = (160, 160, 160)


def fit_panel(
    image: Image.Image, max_side: int | None, image_size: tuple[int, int] | None = None
) -> tuple[Image.Image, np.ndarray]:
    """``image`` resized for a panel, and the factors that take boxes onto it.

    The panel's longer side is at most ``max_side`` and at least
    :data:`~sparsercnn.visualization.panel_size.MIN_PANEL_SIDE` (or ``max_side`` if less:
    :func:`~sparsercnn.visualization.panel_size.panel_side`): large images are scaled down,
    small ones enlarged so that captions, titles and line widths (which scale with the panel)
    stay legible. ``max_side=None``: the image as it is.

    Args:
        image: the image to show.
        max_side: the panel's longest side in pixels, or None.
        image_size: ``(h, w)`` of the image the boxes are in, when ``image`` shows it at
            another scale (a JPEG decoded reduced); default ``image``'s size.

    Returns:
        The panel image, and ``(4,)`` factors ``(sx, sy, sx, sy)``: absolute xyxy boxes of the
        image times them are the panel's pixels. Each axis has its own factor, the ratio of the
        panel's side to the image's (rounding the panel to whole pixels may change the aspect
        ratio a little), so a box on the image's far edge stays on the panel's far edge.
    """
    panel = image
    if max_side is not None:
        longest = max(image.size)
        target = panel_side(longest, max_side)
        if target != longest:
            scale = target / longest
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            panel = image.resize(size, Image.Resampling.BILINEAR)
    height, width = image_size if image_size is not None else (image.height, image.width)
    sx, sy = panel.width / width, panel.height / height
    return panel, np.array([sx, sy, sx, sy])


def compose_panels(
    panels: Sequence[tuple[str, Image.Image]], gap: int = 8, font_size: int | None = None
) -> Image.Image:
    """Lay titled panels out in one row on white, each title centred above its panel, each
    panel framed in grey.

    Args:
        panels: ``(title, image)`` pairs, left to right; images may differ in size.
        gap: white pixels between panels and around the row.
        font_size: title size; default scales with the tallest panel.

    Returns:
        One RGB image.
    """
    if not panels:
        raise ValueError("compose_panels needs at least one panel")
    height = max(image.height for _, image in panels)
    font = label_font(font_size if font_size is not None else max(12, round(height / 25)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), title, font=font) for title, _ in panels]  # (l, t, r, b)
    # Each column is as wide as its image or its title, whichever is wider.
    widths = [math.ceil(box[2] - box[0]) for box in boxes]
    columns = [max(image.width, w) for (_, image), w in zip(panels, widths, strict=True)]
    top = gap + math.ceil(max(box[3] for box in boxes)) + gap
    canvas = Image.new("RGB", (gap + sum(c + gap for c in columns), top + height + gap), "white")
    draw = ImageDraw.Draw(canvas)
    x = gap
    for (title, image), (left, _, right, _), column in zip(panels, boxes, columns, strict=True):
        draw.text((x + (column - (right - left)) / 2 - left, gap), title, (0, 0, 0), font)
        left_edge = x + (column - image.width) // 2
        canvas.paste(to_rgb(image), (left_edge, top))
        # A grey frame in the gap: a light image's panel stays apart from the white page.
        if gap > 0:
            frame = (left_edge - 1, top - 1, left_edge + image.width, top + image.height)
            draw.rectangle(frame, outline=PANEL_FRAME_COLOR)
        x += column + gap
    return canvas

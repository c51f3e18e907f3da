"""How large a panel of a figure is: the bounds of its longest side.

Images shown side by side (ground truth beside detections, the stage figure's panels) are
scaled so that their longest side lies between :data:`MIN_PANEL_SIDE` and a maximum,
:data:`MAX_PANEL_SIDE` unless the caller gives another. Plain numbers, importing nothing: the
command line states them in its help without loading torch, numpy or Pillow.
"""

from __future__ import annotations

# Panels of smaller images are enlarged to this longest side: captions and titles stay legible.
MIN_PANEL_SIDE = 256

# The default longest side of a panel: larger images are scaled down to it, so that a figure
# of several panels stays a readable size.
MAX_PANEL_SIDE = 640


def panel_side(longest: int, max_side: int) -> int:
    """The longest side, in pixels, of the panel of an image whose longest side is
    ``longest``: at most ``max_side`` and at least :data:`MIN_PANEL_SIDE` (or ``max_side`` if
    less)."""
    return min(max(longest, MIN_PANEL_SIDE), max_side)

"""The font of captions and titles in drawings and figures (DejaVu Sans, from matplotlib)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

# The captions' font, under matplotlib's data folder (matplotlib is a dependency).
_CAPTION_FONT = "fonts/ttf/DejaVuSans.ttf"


@lru_cache(maxsize=16)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size``, from matplotlib's data (accented Latin, Greek and Cyrillic
    class names: Pillow's own default font draws boxes for them); Pillow's default font when it
    cannot be read (a fixed bitmap font on Pillow < 10.1)."""
    import matplotlib

    try:
        return ImageFont.truetype(Path(matplotlib.get_data_path(), _CAPTION_FONT), size)
    except OSError:  # no FreeType, or a matplotlib without its fonts
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font only
        return ImageFont.load_default()

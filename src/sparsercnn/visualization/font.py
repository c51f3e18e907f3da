"""The font of captions and titles in drawings and of the text in plots (DejaVu Sans, from
matplotlib, or the font file ``$SPARSERCNN_FONT`` names), and the characters it has no glyph
for."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from sparsercnn.text import listing

logger = logging.getLogger(__name__)

# The environment variable naming a font file for the drawings (class names in scripts that
# DejaVu Sans lacks: CJK, emoji): a property of the machine's fonts, not of a run.
FONT_ENV = "SPARSERCNN_FONT"

# The captions' font, under matplotlib's data folder (matplotlib is a dependency).
_CAPTION_FONT = "fonts/ttf/DejaVuSans.ttf"

# A noncharacter: no font maps it, so it is drawn as the font's .notdef glyph (a box).
_NO_GLYPH = "\U0010ffff"

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def label_font(size: int) -> Font:
    """The drawings' font at ``size``: the font file ``$SPARSERCNN_FONT`` names where it is
    set, else DejaVu Sans from matplotlib's data (accented Latin, Greek and Cyrillic class
    names: Pillow's own default font draws boxes for them), else Pillow's default font when
    that cannot be read (a fixed bitmap font on Pillow < 10.1).

    Raises:
        ValueError: ``$SPARSERCNN_FONT`` names no font file Pillow can read.
    """
    return _font(os.environ.get(FONT_ENV) or None, size)


@lru_cache(maxsize=16)
def _font(path: str | None, size: int) -> Font:
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError as error:
            raise ValueError(
                f"{FONT_ENV}={path} is no font file that can be read ({error}); name a .ttf, "
                f".otf or .ttc file, or unset {FONT_ENV} to draw with DejaVu Sans"
            ) from None
    import matplotlib

    try:
        return ImageFont.truetype(Path(matplotlib.get_data_path(), _CAPTION_FONT), size)
    except OSError:  # no FreeType, or a matplotlib without its fonts
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font only
        return ImageFont.load_default()


def missing_glyphs(text: str, font: Font) -> str:
    """The distinct characters of ``text`` that ``font`` has no glyph for (it draws them as
    its .notdef box), in the order they first appear; ``""`` for Pillow's bitmap font, which
    cannot tell."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        return ""

    def glyph(character: str) -> tuple[tuple[int, int], bytes]:
        mask = font.getmask(character)
        return mask.size, bytes(mask)

    box = glyph(_NO_GLYPH)
    return "".join(dict.fromkeys(c for c in text if glyph(c) == box))


# (font file or None for DejaVu Sans, character) that a warning named already, for drawings and
# plots alike: a command that draws and plots names each missing character once.
_reported_glyphs: set[tuple[str | None, str]] = set()


def _unreported(path: str | None, characters: str) -> str:
    """The distinct ``characters`` that no warning named yet for the font file ``path``, in
    order, now recorded as named (by :func:`warn_missing_glyphs` or
    :func:`warn_missing_plot_glyphs`, whichever comes first)."""
    new = "".join(c for c in dict.fromkeys(characters) if (path, c) not in _reported_glyphs)
    _reported_glyphs.update((path, c) for c in new)
    return new


def warn_missing_glyphs(class_names: Sequence[str]) -> None:
    """Log one warning naming the class names that the drawings' font (:func:`label_font`)
    lacks characters of, and how to give a font that has them; each character once per font
    (once per command, plots included: :func:`warn_missing_plot_glyphs`), however many images
    are drawn."""
    path = os.environ.get(FONT_ENV) or None
    lacking = _lacking_glyphs(path, tuple(class_names))
    new = _unreported(path, "".join(chars for _, chars in lacking))
    named = [f"{name!r} ({chars})" for name, chars in lacking if set(chars) & set(new)]
    if not named:
        return
    font = _font(path, 16)
    family = font.getname()[0] if isinstance(font, ImageFont.FreeTypeFont) else "Pillow's default"
    given = f" ({FONT_ENV}={path})" if path is not None else ""
    logger.warning(
        "the drawing font %s%s has no glyph for characters of class names %s: they are drawn "
        "as boxes; set %s to a font file that has them (.ttf, .otf or .ttc, such as Noto Sans "
        "CJK for Chinese or Japanese)",
        family,
        given,
        listing(named, limit=5),
        FONT_ENV,
    )


@lru_cache(maxsize=8)
def _lacking_glyphs(path: str | None, class_names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``(name, characters)`` of each distinct class name with characters that the drawing
    font of ``path`` lacks, in order: measured once per set of names, not per image."""
    font = _font(path, 16)
    found = ((name, missing_glyphs(name, font)) for name in dict.fromkeys(class_names))
    return tuple((name, chars) for name, chars in found if chars)


def plot_font_families() -> list[str] | None:
    """The font families of the text in matplotlib plots, so that they show class names as the
    drawings do (:func:`label_font`): the font ``$SPARSERCNN_FONT`` names (made known to
    matplotlib's font manager), then matplotlib's own families for the characters it lacks;
    ``None`` where the variable is unset (matplotlib's own, DejaVu Sans by default).

    Raises:
        ValueError: ``$SPARSERCNN_FONT`` names no font file that can be read.
    """
    path = os.environ.get(FONT_ENV) or None
    if path is None:
        return None
    import matplotlib

    return [_plot_font_family(path), *matplotlib.rcParams["font.family"]]


@lru_cache(maxsize=4)
def _plot_font_family(path: str) -> str:
    """The family name of the font file ``path``, added to matplotlib's font manager once."""
    _font(path, 16)  # refused with the drawings' message where Pillow cannot read it
    from matplotlib.font_manager import FontProperties, fontManager

    try:
        fontManager.addfont(path)
        return str(FontProperties(fname=path).get_name())
    except (OSError, RuntimeError) as error:
        raise ValueError(
            f"{FONT_ENV}={path} is no font file that matplotlib can read ({error}); name a "
            f".ttf, .otf or .ttc file, or unset {FONT_ENV} to plot with DejaVu Sans"
        ) from None


def warn_missing_plot_glyphs(characters: str) -> None:
    """Log one warning naming the ``characters`` that a plot drew as boxes (no font of
    :func:`plot_font_families` has them), and how to give a font that has them; each
    character once per font (once per command, drawings included: a class name
    :func:`warn_missing_glyphs` named is not named again), however many plots show it."""
    path = os.environ.get(FONT_ENV) or None
    new = _unreported(path, characters)
    if not new:
        return
    from matplotlib.font_manager import FontProperties

    family = _plot_font_family(path) if path is not None else FontProperties().get_name()
    given = f" ({FONT_ENV}={path})" if path is not None else ""
    logger.warning(
        "the plot font %s%s has no glyph for %s: they are drawn as boxes; set %s to a font "
        "file that has them (.ttf, .otf or .ttc, such as Noto Sans CJK for Chinese or Japanese)",
        family,
        given,
        " ".join(new),
        FONT_ENV,
    )

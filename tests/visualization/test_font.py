"""The captions' font: every letter of accented Latin, Greek and Cyrillic class names."""

from __future__ import annotations

import pytest

from sparsercnn.visualization.font import label_font


@pytest.mark.parametrize("name", ["très", "Straße", "кошка", "λύκος"])
def test_caption_font_has_accented_greek_and_cyrillic_letters(name: str) -> None:
    """Every letter is drawn as itself, not as the font's box for a missing glyph."""
    font = label_font(20)
    missing = bytes(font.getmask("\ue000"))  # a private-use code point: no glyph
    assert all(bytes(font.getmask(letter)) != missing for letter in name)

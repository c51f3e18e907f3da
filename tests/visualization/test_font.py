"""The captions' font: every letter of accented Latin, Greek and Cyrillic class names, the
font file ``$SPARSERCNN_FONT`` names, and one warning for names with characters it lacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest

from sparsercnn.visualization import font
from sparsercnn.visualization.font import (
    FONT_ENV,
    label_font,
    missing_glyphs,
    warn_missing_glyphs,
)


@pytest.mark.parametrize("name", ["très", "Straße", "кошка", "λύκος"])
def test_caption_font_has_accented_greek_and_cyrillic_letters(name: str) -> None:
    """Every letter is drawn as itself, not as the font's box for a missing glyph."""
    font = label_font(20)
    missing = bytes(font.getmask("\ue000"))  # a private-use code point: no glyph
    assert all(bytes(font.getmask(letter)) != missing for letter in name)


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    """The once-per-command warning forgets what earlier tests were warned about."""
    font._warn_missing_glyphs.cache_clear()
    yield
    font._warn_missing_glyphs.cache_clear()


def _mono_font() -> str:
    """A font with glyphs DejaVu Sans lacks (``⌒``, U+2312), from matplotlib's data."""
    return str(Path(matplotlib.get_data_path(), "fonts/ttf/DejaVuSansMono.ttf"))


def test_missing_glyphs_are_the_characters_drawn_as_boxes() -> None:
    assert missing_glyphs("猫 cat 🐶 猫", label_font(20)) == "猫🐶"
    assert missing_glyphs("très кошка", label_font(20)) == ""


def test_the_font_environment_variable_names_the_drawing_font(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert missing_glyphs("arc ⌒", label_font(20)) == "⌒"
    monkeypatch.setenv(FONT_ENV, _mono_font())
    assert missing_glyphs("arc ⌒", label_font(20)) == ""


def test_an_unreadable_font_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "font.ttf").write_text("not a font")
    monkeypatch.setenv(FONT_ENV, str(tmp_path / "font.ttf"))
    with pytest.raises(ValueError, match=f"{FONT_ENV}=.*font.ttf is no font file"):
        label_font(20)


def test_names_lacking_glyphs_are_warned_about_once_with_the_remedy(
    caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    for _ in range(3):  # three images drawn
        warn_missing_glyphs(["猫", "dog", "dog 🐶"])
    records = [r for r in caplog.records if r.name == font.__name__]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "'猫' (猫), 'dog 🐶' (🐶)" in message and "'dog'" not in message
    assert f"set {FONT_ENV} to a font file that has them" in message


def test_no_warning_once_the_font_has_the_glyphs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    monkeypatch.setenv(FONT_ENV, _mono_font())
    warn_missing_glyphs(["arc ⌒"])
    assert not [r for r in caplog.records if r.name == font.__name__]

"""The captions' and plots' font: every letter of accented Latin, Greek and Cyrillic class
names, the font file ``$SPARSERCNN_FONT`` names, and one warning for characters it lacks."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from sparsercnn.visualization import font
from sparsercnn.visualization.font import (
    FONT_ENV,
    label_font,
    missing_glyphs,
    plot_font_families,
    warn_missing_glyphs,
    warn_missing_plot_glyphs,
)


@pytest.mark.parametrize("name", ["très", "Straße", "кошка", "λύκος"])
def test_caption_font_has_accented_greek_and_cyrillic_letters(name: str) -> None:
    """Every letter is drawn as itself, not as the font's box for a missing glyph."""
    font = label_font(20)
    missing = bytes(font.getmask("\ue000"))  # a private-use code point: no glyph
    assert all(bytes(font.getmask(letter)) != missing for letter in name)


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


def test_plots_take_the_font_the_environment_variable_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unset, plots keep matplotlib's font (DejaVu Sans, as the drawings); set, its family
    comes first and matplotlib's own follow for the characters it lacks."""
    monkeypatch.delenv(FONT_ENV, raising=False)
    assert plot_font_families() is None
    monkeypatch.setenv(FONT_ENV, _mono_font())
    assert plot_font_families() == ["DejaVu Sans Mono", *matplotlib.rcParams["font.family"]]


def test_plots_refuse_an_unreadable_font_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "font.ttf").write_text("not a font")
    monkeypatch.setenv(FONT_ENV, str(tmp_path / "font.ttf"))
    with pytest.raises(ValueError, match=f"{FONT_ENV}=.*font.ttf is no font file"):
        plot_font_families()


def test_plot_glyphs_are_warned_about_once_per_character(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    monkeypatch.delenv(FONT_ENV, raising=False)
    for characters in ("猫狗", "狗猫", "", "鸟猫"):  # four plots
        warn_missing_plot_glyphs(characters)
    messages = [r.getMessage() for r in caplog.records if r.name == font.__name__]
    assert len(messages) == 2
    assert "no glyph for 猫 狗:" in messages[0] and "no glyph for 鸟:" in messages[1]
    assert f"set {FONT_ENV} to a font file that has them" in messages[0]


def test_a_command_that_draws_and_plots_names_each_character_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    """The drawings name the classes (their warning comes first in most commands); the plots
    then name only the characters no warning named yet, and the drawings likewise after a
    plot."""
    monkeypatch.delenv(FONT_ENV, raising=False)
    warn_missing_glyphs(["猫", "dog"])
    warn_missing_plot_glyphs("猫")
    warn_missing_plot_glyphs("猫鸟")
    warn_missing_glyphs(["猫", "鸟", "dog"])
    messages = [r.getMessage() for r in caplog.records if r.name == font.__name__]
    assert len(messages) == 2
    assert "class names '猫' (猫):" in messages[0] and "no glyph for 鸟:" in messages[1]

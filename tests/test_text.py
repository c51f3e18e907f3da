"""Wording shared by messages and reports."""

from __future__ import annotations

from sparsercnn.text import counted


def test_counted_puts_the_noun_in_the_plural_unless_there_is_one() -> None:
    assert [counted(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert counted(1, "category", "categories") == "1 category"
    assert counted(3, "category", "categories") == "3 categories"

"""Wording shared by the messages and reports: a count with its noun."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless ``count`` is 1: "1 image", "3 images",
    "2 categories" (``plural`` for a noun that does not just add an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"

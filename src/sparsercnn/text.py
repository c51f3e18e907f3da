"""Wording shared by the messages and reports: a count with its noun, a capped list."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless ``count`` is 1: "1 image", "3 images",
    "2 categories" (``plural`` for a noun that does not just add an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def listing(items: list[str], limit: int = 10) -> str:
    """``items`` joined by commas, the first ``limit`` of them and, past that, how many in
    all: "a, b ... (12 in all)" (the keys a checkpoint lacks, the classes of a dataset)."""
    more = f" ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more

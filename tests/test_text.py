"""Wording shared by messages and reports."""

from __future__ import annotations

from sparsercnn.text import (
    counted,
    listing,
    non_finite_boxes,
    non_finite_outputs,
    shortened,
    some_of_its,
    verb,
)


def test_counted_puts_the_noun_in_the_plural_unless_there_is_one() -> None:
    assert [counted(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert counted(1, "category", "categories") == "1 category"
    assert counted(3, "category", "categories") == "3 categories"


def test_verb_agrees_with_a_count_as_counted_does() -> None:
    """Was written out as "'is' if n == 1 else 'are'" in a dozen messages (and "1 of 3 slots
    were never matched" in one that did not)."""
    assert [verb(n, "is") for n in (0, 1, 2)] == ["are", "is", "are"]
    assert [verb(2, word) for word in ("has", "was", "does")] == ["have", "were", "do"]
    assert [verb(1, "repeats"), verb(3, "repeats"), verb(3, "gives")] == [
        "repeats",
        "repeat",
        "give",
    ]


def test_verb_drops_the_es_a_sibilant_took() -> None:
    """Was: every plural was the singular less its s: "2 boxes passe", "3 names matche"."""
    plurals = [verb(2, word) for word in ("passes", "matches", "pushes", "fixes", "buzzes")]
    assert plurals == ["pass", "match", "push", "fix", "buzz"]
    assert [verb(2, "uses"), verb(2, "lies"), verb(2, "goes")] == ["use", "lie", "go"]
    assert [verb(2, "caches", "cache"), verb(1, "caches", "cache")] == ["cache", "caches"]


def test_listing_shows_the_first_few_and_counts_the_rest() -> None:
    assert listing([]) == ""
    assert listing(["a", "b"]) == "a, b"
    assert listing([str(n) for n in range(10)]) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert listing([str(n) for n in range(12)], limit=3) == "0, 1, 2 ... (12 in all)"
    # The first few of many, and how many in all.
    assert listing(["0", "1", "2"], limit=3, total=40) == "0, 1, 2 ... (40 in all)"
    assert listing(["0", "1", "2"], limit=3, total=3) == "0, 1, 2"


def test_shortened_keeps_both_ends_within_the_limit() -> None:
    assert shortened("circle", 6) == "circle"
    assert shortened("abcdefghijkl", 5) == "ab\u2026kl"
    assert shortened("abcdefghijkl", 2) == "a\u2026"
    assert shortened("abcdefghijkl", 1) == "\u2026"
    long_names = [shortened("a" * 100 + f" ({i})", 20) for i in (3, 7)]
    assert long_names == ["a" * 10 + "\u2026aaaaa (3)", "a" * 10 + "\u2026aaaaa (7)"]


def test_some_of_its_agrees_the_verb_and_says_all_or_only() -> None:
    """Was "1 of its 1 detections have a NaN ..." in three messages, each built on its own."""
    assert [some_of_its(n, 5, "detection", "a NaN") for n in (1, 2, 5)] == [
        "1 of its 5 detections has a NaN",
        "2 of its 5 detections have a NaN",
        "all 5 detections have a NaN",
    ]
    assert some_of_its(1, 1, "box", "a NaN", "boxes") == "its only box has a NaN"
    assert some_of_its(1, 2, "box", "a NaN", "boxes") == "1 of its 2 boxes has a NaN"


def test_non_finite_outputs_is_one_sentence_of_cause_and_remedy() -> None:
    """Was written out in prediction, drawing and COCO evaluation, each its own way."""
    assert non_finite_outputs(2, 5, "which cannot be drawn") == (
        "2 of its 5 detections have a NaN or infinite score or box, which cannot be drawn; a "
        "model gives such outputs after diverged training or from damaged weights: use one "
        "whose outputs are finite"
    )
    assert non_finite_outputs(1, 1, "which cannot be drawn", boxes_only=True).startswith(
        "its only box has a NaN or infinite coordinate, which cannot be drawn; a model gives"
    )


def test_non_finite_outputs_takes_the_remedy_of_detections_not_from_a_model_of_ours() -> None:
    """COCO evaluation of another tool's detections file was told to use another model."""
    assert non_finite_outputs(1, 2, "which cannot be ranked", remedy="evaluate finite ones") == (
        "1 of its 2 detections has a NaN or infinite score or box, which cannot be ranked; a "
        "model gives such outputs after diverged training or from damaged weights: evaluate "
        "finite ones"
    )


def test_non_finite_boxes_counts_boxes_without_scores() -> None:
    assert non_finite_boxes(2, 5) == "2 of its 5 boxes have a NaN or infinite coordinate"
    assert non_finite_boxes(1, 1) == "its only box has a NaN or infinite coordinate"

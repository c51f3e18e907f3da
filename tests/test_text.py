"""Wording shared by messages and reports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sparsercnn
from sparsercnn.text import (
    agreeing_noun,
    counted,
    listing,
    non_finite_boxes,
    non_finite_outputs,
    shortened,
    some_of_its,
    verb,
)

PACKAGE = Path(sparsercnn.__file__).parent


def test_counted_puts_the_noun_in_the_plural_unless_there_is_one() -> None:
    assert [counted(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert [agreeing_noun(n, "id") for n in (0, 1, 2)] == ["ids", "id", "ids"]
    assert counted(1, "category", "categories") == "1 category"
    assert counted(3, "category", "categories") == "3 categories"


def test_verb_agrees_with_a_count_as_counted_does() -> None:
    """Was written out as "'is' if n == 1 else 'are'" in a dozen messages (and "1 of 3 slots
    were never matched" in one that did not)."""
    assert [verb(n, "is") for n in (0, 1, 2)] == ["are", "is", "are"]
    assert [verb(2, word) for word in ("has", "was", "does")] == ["have", "were", "do"]
    assert [verb(1, "repeats"), verb(3, "repeats")] == ["repeats", "repeat"]
    assert [verb(2, "caches", "cache"), verb(1, "caches", "cache")] == ["cache", "caches"]


def test_verb_guesses_no_plural() -> None:
    """Was: a plural guessed from the ending: "2 requests trie", "2 rules applie", and "lies"
    and "tries" cannot both be right by any ending rule. A verb not listed needs its plural."""
    with pytest.raises(ValueError, match=r"verb\(2, 'tries'\): give its plural"):
        verb(2, "tries")
    assert verb(2, "tries", "try") == "try"


def _call_sites(names: tuple[str, ...]) -> list[tuple[str, str, list[ast.expr]]]:
    """``(place, function, arguments)`` of every call of a function of ``names`` in the
    package (``place``: ``file:line``)."""
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id in names:
                place = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                sites.append((place, node.func.id, node.args))
    return sites


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _english_plural(noun: str) -> str:
    """The plural of a noun phrase (its last word), by the spelling rules: an obviously correct
    reference for the nouns the messages count (irregular ones fail the test, to be added)."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


# The nouns the messages count with :func:`counted` / :func:`agreeing_noun`, with the plural each
# call gives (``None``: the default, the noun and an s), found in the package's source.
CALLERS_NOUNS = sorted(
    {
        (noun, _literal(args[2]) if len(args) > 2 else None)
        for _, function, args in _call_sites(("counted", "agreeing_noun"))
        if len(args) >= 2 and (noun := _literal(args[1])) is not None
    },
    key=str,
)
# The verbs the messages make agree with a count, and the plural each call gives.
CALLERS_VERBS = sorted(
    {
        (place, singular, _literal(args[2]) if len(args) > 2 else None)
        for place, _, args in _call_sites(("verb",))
        if len(args) >= 2 and (singular := _literal(args[1])) is not None
    }
)
ENGLISH_VERB_PLURALS = {
    "is": "are",
    "has": "have",
    "was": "were",
    "does": "do",
    "extends": "extend",
    "lies": "lie",
    "repeats": "repeat",
}


def test_the_callers_are_found() -> None:
    nouns = [noun for noun, _ in CALLERS_NOUNS]
    assert {"image", "box", "category", "zero-size box"} <= set(nouns)
    assert {singular for _, singular, _ in CALLERS_VERBS} >= {"is", "has", "was", "lies"}


@pytest.mark.parametrize(("noun", "plural"), CALLERS_NOUNS)
def test_every_caller_s_noun_reads_right_for_0_1_and_2(noun: str, plural: str | None) -> None:
    """Each noun a message counts, as the call gives it: "0 boxes", "1 box", "2 boxes"
    (``counted(n, "box")`` alone would write "2 boxs")."""
    expected = _english_plural(noun) if noun != "image has" else "images have"
    assert [counted(n, noun, plural) for n in (0, 1, 2)] == [
        f"0 {expected}",
        f"1 {noun}",
        f"2 {expected}",
    ]
    assert [agreeing_noun(n, noun, plural) for n in (0, 1, 2)] == [expected, noun, expected]


@pytest.mark.parametrize(("place", "singular", "plural"), CALLERS_VERBS)
def test_every_caller_s_verb_reads_right_for_0_1_and_2(
    place: str, singular: str, plural: str | None
) -> None:
    """Each verb a message makes agree with a count (at ``place``), as the call gives it."""
    expected = ENGLISH_VERB_PLURALS.get(singular, plural)
    assert expected is not None, f"{place}: add the plural of {singular!r} to this test"
    assert [verb(n, singular, plural) for n in (0, 1, 2)] == [expected, singular, expected]


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

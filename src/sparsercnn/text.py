"""Wording shared by the messages and reports: a count with its noun, a noun and a verb agreeing
with a count, how many of some items (a set's, an image's) something holds for, NaN or infinite
boxes and the one message for a model's NaN or infinite outputs, a capped list, a name shortened
to fit."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless ``count`` is 1: "1 image", "3 images", "0 images",
    "2 categories" (``plural`` for a noun that does not just add an s)."""
    return f"{count} {agreeing_noun(count, noun, plural)}"


def agreeing_noun(count: float, noun: str, plural: str | None = None) -> str:
    """``noun`` alone, plural unless ``count`` is 1, for a noun written apart from its count:
    "image 7" / "images 7, 9", "id 3" / "ids 3, 4", "1.5 objects" (a median: a fraction agrees
    as several; ``plural`` as in :func:`counted`)."""
    return noun if count == 1 else plural or noun + "s"


# The plural of every verb the messages make agree with a count (the third person singular,
# as written beside one item, to the form beside several): English has no rule that tells
# "lies"/"lie" from "tries"/"try" or "matches"/"match" from "caches"/"cache", so none is
# guessed. A verb not here is given its plural by the caller.
VERB_PLURALS = {
    "is": "are",
    "has": "have",
    "was": "were",
    "does": "do",
    "extends": "extend",
    "lies": "lie",
    "repeats": "repeat",
}


def verb(count: float, singular: str, plural: str | None = None) -> str:
    """``singular`` (a verb in the third person) where ``count`` is 1, else its plural, to
    agree with a count as :func:`counted` does: f"{counted(n, 'slot')} {verb(n, 'was')} never
    matched" gives "1 slot was", "0 slots were", "2 slots were".

    Args:
        count: how many items the verb is of (a fraction, as a median, agrees as several).
        singular: the verb beside one item ("is", "has", "extends").
        plural: the verb beside several; needed for a verb not in :data:`VERB_PLURALS`.

    Raises:
        ValueError: ``singular`` is not in :data:`VERB_PLURALS` and no ``plural`` is given (a
            programming error, which tests/test_text.py finds in every call that names its verb).
    """
    if plural is None:
        if singular not in VERB_PLURALS:
            raise ValueError(
                f"verb({count}, {singular!r}): give its plural, or add it to text.VERB_PLURALS"
            )
        plural = VERB_PLURALS[singular]
    return singular if count == 1 else plural


def some_of(
    count: int, total: int, noun: str, plural: str | None = None, *, whose: str = "the"
) -> str:
    """``count`` of ``total`` items (``noun``): "2 of the 5 images", "all 3 images", "the only
    image" (``whose`` "its": "2 of its 5 detections", "its only detection"; ``plural`` as in
    :func:`counted`). ``1 <= count <= total``."""
    if count < total:
        return f"{count} of {whose} {counted(total, noun, plural)}"
    return f"{whose} only {noun}" if total == 1 else f"all {counted(total, noun, plural)}"


def some_of_its(
    count: int, total: int, noun: str, predicate: str, plural: str | None = None
) -> str:
    """That ``count`` of the ``total`` items (``noun``) of something (an image) have
    ``predicate``, the verb agreeing: "2 of its 5 detections have a NaN", "1 of its 5
    detections has a NaN", "all 3 detections have a NaN", "its only detection has a NaN"
    (``predicate`` "a NaN"; ``plural`` as in :func:`counted`). ``1 <= count <= total``."""
    which = some_of(count, total, noun, plural, whose="its")
    return f"{which} {verb(count, 'has')} {predicate}"


def non_finite_boxes(num_bad: int, total: int) -> str:
    """That ``num_bad`` of the ``total`` boxes (without scores) of an image are not finite:
    "its only box has a NaN or infinite coordinate", "2 of its 5 boxes have a NaN or infinite
    coordinate" (ground truth, and a model's proposals in :func:`non_finite_outputs`).
    ``1 <= num_bad <= total``."""
    return some_of_its(num_bad, total, "box", "a NaN or infinite coordinate", "boxes")


def non_finite_outputs(
    num_bad: int,
    total: int,
    consequence: str,
    *,
    boxes_only: bool = False,
    remedy: str = "use one whose outputs are finite",
) -> str:
    """Why ``num_bad`` of the ``total`` detections a model gave an image cannot be used, and
    what to do, for the caller to prefix with its subject (an image, a detections file's image
    id): "2 of its 5 detections have a NaN or infinite score or box, which cannot be drawn; a
    model gives such outputs after diverged training or from damaged weights: use one whose
    outputs are finite" (``consequence`` "which cannot be drawn"). ``boxes_only``: boxes
    without scores (proposals, trajectories): :func:`non_finite_boxes`. ``remedy``: what to
    do where the detections need not come from a model the user runs (COCO evaluation, given
    another tool's detections file too: "evaluate finite detections").
    ``1 <= num_bad <= total``."""
    problem = (
        non_finite_boxes(num_bad, total)
        if boxes_only
        else some_of_its(num_bad, total, "detection", "a NaN or infinite score or box")
    )
    return (
        f"{problem}, {consequence}; a model gives such outputs after diverged training or from "
        f"damaged weights: {remedy}"
    )


def listing(items: list[str], limit: int = 10, *, total: int | None = None) -> str:
    """``items`` joined by commas, the first ``limit`` of them and, past that, how many in
    all: "a, b ... (12 in all)" (the keys a checkpoint lacks, the classes of a dataset).
    ``total``: how many there are in all where ``items`` holds only the first of them (a
    caller that names a few of many need not make every one a string)."""
    total = len(items) if total is None else total
    more = f" ... ({total} in all)" if total > limit else ""
    return ", ".join(items[:limit]) + more


def shortened(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long, its middle replaced by an ellipsis where it
    is longer: both ends stay, so that names which differ at the end (``... (3)``, the id
    :func:`~sparsercnn.structures.distinct_names` adds) stay apart. ``limit`` >= 1."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - 1 - head
    return text[:head] + "\u2026" + (text[-tail:] if tail else "")

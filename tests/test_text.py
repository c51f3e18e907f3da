"""Wording shared by messages and reports."""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

import sparsercnn
from sparsercnn import text
from sparsercnn.text import (
    agreeing_noun,
    counted,
    listing,
    non_finite_boxes,
    non_finite_outputs,
    shortened,
    some_of,
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


# The functions of sparsercnn.text that make a word agree with a count, and the names of their
# parameters that give the word and its plural.
WORD_FUNCTIONS = {
    "counted": ("noun", "plural"),
    "agreeing_noun": ("noun", "plural"),
    "some_of": ("noun", "plural"),
    "some_of_its": ("noun", "plural"),
    "verb": ("singular", "plural"),
}
# The plural of every noun the messages count, written by hand (not derived from the code, nor
# from a spelling rule): "0 boxes", "1 box", "2 boxes". A noun used and not here fails the test.
NOUN_PLURALS = {
    "annotation": "annotations",
    "box": "boxes",
    "calibration image": "calibration images",
    "category": "categories",
    "class": "classes",
    "crowd region": "crowd regions",
    "detection": "detections",
    "drawing": "drawings",
    "earlier drawing": "earlier drawings",
    "error": "errors",
    "file": "files",
    "fp32 detection": "fp32 detections",
    "frame": "frames",
    "frame folder": "frame folders",
    "gap": "gaps",
    "hidden file": "hidden files",
    "id": "ids",
    "image": "images",
    "image file": "image files",
    "image has": "images have",
    "image id": "image ids",
    "info": "info",
    "issue": "issues",
    "key": "keys",
    "label": "labels",
    "learned proposal": "learned proposals",
    "minute": "minutes",
    "object": "objects",
    "other": "others",
    "other error": "other errors",
    "pass": "passes",
    "record": "records",
    "score": "scores",
    "shared file": "shared files",
    "slot": "slots",
    "stage": "stages",
    "step": "steps",
    "such file": "such files",
    "temporary folder": "temporary folders",
    "tensor": "tensors",
    "unused tensor": "unused tensors",
    "video": "videos",
    "video file": "video files",
    "warning": "warnings",
    "zero-size box": "zero-size boxes",
}
# The plural of every verb the messages make agree with a count, and of every verb of
# text.VERB_PLURALS, written by hand: "1 box lies", "2 boxes lie".
VERB_PLURALS_BY_HAND = {
    "does": "do",
    "extends": "extend",
    "gives": "give",
    "has": "have",
    "holds": "hold",
    "is": "are",
    "lies": "lie",
    "repeats": "repeat",
    "was": "were",
}
# The calls whose word (or plural) is not written in the call, each read by hand: by file and
# the call as written, the (word, plural) pairs it is given. A call changed is read again.
CALLS_READ_BY_HAND: dict[tuple[str, str], list[tuple[str, str | None]]] = {
    ("sparsercnn/cli/predict.py", "counted(n, what)"): [
        ("image", None),
        ("frame folder", None),
        ("video", None),
    ],
    (
        "sparsercnn/data/dataset_report.py",
        "counted(len(found), noun, noun if noun == 'info' else None)",
    ): [("error", None), ("warning", None), ("info", "info")],
    ("sparsercnn/data/issues.py", "agreeing_noun(len(distinct), noun)"): [
        ("annotation", None),
        ("image", None),
    ],
}


@dataclass(frozen=True)
class WordCall:
    """A call of one of :data:`WORD_FUNCTIONS` in the package."""

    file: str  # relative to the package's parent: "sparsercnn/cli/predict.py"
    line: int
    function: str
    source: str  # the call as written (ast.unparse)
    words: tuple[tuple[str, str | None], ...]  # (word, plural); () where not read

    @property
    def place(self) -> str:
        return f"{self.file}:{self.line}"


def _text_names(tree: ast.Module, in_text: bool) -> tuple[dict[str, str], set[str]]:
    """The local names of :data:`WORD_FUNCTIONS` in a module (``{local: function}``) and the
    names its ``sparsercnn.text`` module goes by."""
    functions = {name: name for name in WORD_FUNCTIONS} if in_text else {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "sparsercnn.text":
            for alias in node.names:
                if alias.name in WORD_FUNCTIONS:
                    functions[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module == "sparsercnn":
            modules |= {alias.asname or "text" for alias in node.names if alias.name == "text"}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sparsercnn.text":
                    modules.add(alias.asname or "sparsercnn.text")
    return functions, modules


def _called(node: ast.expr, functions: dict[str, str], modules: set[str]) -> str | None:
    """The function of :data:`WORD_FUNCTIONS` that ``node`` names (``verb``, ``text.verb``)."""
    if isinstance(node, ast.Name):
        return functions.get(node.id)
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) in modules:
        return node.attr if node.attr in WORD_FUNCTIONS else None
    return None


def _words(
    call: ast.Call, function: str, forwarded: set[str]
) -> tuple[tuple[str, str | None], ...]:
    """The (word, plural) of ``call`` where both are written in it as strings (a plural not
    given: ``None``); ``()`` where not; ``(("", None),)`` where text.py forwards its own
    parameters (``forwarded``), whose callers give the words."""
    parameters = list(inspect.signature(getattr(text, function)).parameters)
    given = dict(zip(parameters, call.args, strict=False))
    given |= {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}
    word_name, plural_name = WORD_FUNCTIONS[function]
    word, plural = given.get(word_name), given.get(plural_name)
    if (
        isinstance(word, ast.Name)
        and word.id in forwarded
        and (plural is None or (isinstance(plural, ast.Name) and plural.id in forwarded))
    ):
        return (("", None),)
    if not (isinstance(word, ast.Constant) and isinstance(word.value, str)):
        return ()
    if plural is None or (isinstance(plural, ast.Constant) and plural.value is None):
        return ((word.value, None),)
    if isinstance(plural, ast.Constant) and isinstance(plural.value, str):
        return ((word.value, plural.value),)
    return ()


def _word_calls() -> tuple[list[WordCall], list[str]]:
    """Every call of :data:`WORD_FUNCTIONS` in the package, and every use of one that is not a
    call (passed as a value: what it is given cannot be read)."""
    calls, other_uses = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        file = path.relative_to(PACKAGE.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions, modules = _text_names(tree, in_text=file == "sparsercnn/text.py")
        callees: set[int] = set()
        scopes = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        forwarded_at: dict[int, set[str]] = {}
        for scope in scopes if file == "sparsercnn/text.py" else []:
            names = {arg.arg for arg in [*scope.args.args, *scope.args.kwonlyargs]}
            forwarded_at |= {id(node): names for node in ast.walk(scope)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            function = _called(node.func, functions, modules)
            if function is not None:
                callees.add(id(node.func))
                words = _words(node, function, forwarded_at.get(id(node), set()))
                source = ast.unparse(node)
                calls.append(WordCall(file, node.lineno, function, source, words))
        for node in ast.walk(tree):
            if (
                id(node) not in callees
                and isinstance(node, ast.Name | ast.Attribute)
                and isinstance(node.ctx, ast.Load)
                and _called(node, functions, modules)
            ):
                other_uses.append(f"{file}:{node.lineno}: {ast.unparse(node)}")
    return calls, other_uses


WORD_CALLS, OTHER_USES = _word_calls()


def _words_in_use(kind: str) -> list[tuple[str, str | None]]:
    """The (word, plural) pairs given to the nouns' functions (``kind`` "noun") or to
    :func:`~sparsercnn.text.verb` (``"verb"``): as the calls write them, or as read by hand."""
    found: set[tuple[str, str | None]] = set()
    for call in WORD_CALLS:
        if (call.function == "verb") == (kind == "verb"):
            read = CALLS_READ_BY_HAND.get((call.file, call.source), [])
            found |= {pair for pair in [*call.words, *read] if pair[0]}
    return sorted(found, key=str)


def test_every_call_s_words_are_read() -> None:
    """Was: a call whose word was not a string literal, or written ``text.verb(...)``, was left
    out without a word, and its English never checked. Each is read here, or by hand
    (:data:`CALLS_READ_BY_HAND`), whose entries must still be in the code."""
    unread = [
        f"{call.place}: {call.source}"
        for call in WORD_CALLS
        if not call.words and (call.file, call.source) not in CALLS_READ_BY_HAND
    ]
    assert not unread, f"add the words of these calls to CALLS_READ_BY_HAND: {unread}"
    assert not OTHER_USES, f"call these where their words can be read: {OTHER_USES}"
    written = {(call.file, call.source) for call in WORD_CALLS}
    assert not set(CALLS_READ_BY_HAND) - written, "CALLS_READ_BY_HAND names calls not in the code"


def test_the_callers_are_found() -> None:
    assert {"image", "box", "category", "zero-size box", "frame folder", "info"} <= {
        noun for noun, _ in _words_in_use("noun")
    }
    assert {"is", "has", "was", "lies", "holds"} <= {word for word, _ in _words_in_use("verb")}
    assert {call.function for call in WORD_CALLS} == set(WORD_FUNCTIONS)


@pytest.mark.parametrize(("noun", "plural"), _words_in_use("noun"))
def test_every_caller_s_noun_reads_right_for_0_1_and_2(noun: str, plural: str | None) -> None:
    """Each noun a message counts, as the call gives it (its own plural too), against the
    English written by hand: "0 boxes", "1 box", "2 boxes" (``counted(n, "box")`` alone would
    write "2 boxs")."""
    expected = NOUN_PLURALS.get(noun)
    assert expected is not None, f"add the plural of {noun!r} to NOUN_PLURALS"
    assert [counted(n, noun, plural) for n in (0, 1, 2)] == [
        f"0 {expected}",
        f"1 {noun}",
        f"2 {expected}",
    ]
    assert [agreeing_noun(n, noun, plural) for n in (0, 1, 2)] == [expected, noun, expected]


@pytest.mark.parametrize(("singular", "plural"), _words_in_use("verb"))
def test_every_caller_s_verb_reads_right_for_0_1_and_2(singular: str, plural: str | None) -> None:
    """Each verb a message makes agree with a count, as the call gives it (its own plural too),
    against the English written by hand."""
    expected = VERB_PLURALS_BY_HAND.get(singular)
    assert expected is not None, f"add the plural of {singular!r} to VERB_PLURALS_BY_HAND"
    assert [verb(n, singular, plural) for n in (0, 1, 2)] == [expected, singular, expected]


def test_the_library_s_verb_plurals_are_english() -> None:
    """text.VERB_PLURALS, used or not yet, against the English written by hand."""
    assert {
        singular: plural
        for singular, plural in text.VERB_PLURALS.items()
        if VERB_PLURALS_BY_HAND.get(singular) != plural
    } == {}


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


def test_some_of_says_all_or_the_only_one() -> None:
    """Was "1 of the 1 images kept" and "1 of 1 images" in the dataset's log lines."""
    assert [some_of(n, 3, "image") for n in (1, 3)] == ["1 of the 3 images", "all 3 images"]
    assert some_of(1, 1, "image") == "the only image"
    assert some_of(2, 4, "box", "boxes", whose="its") == "2 of its 4 boxes"


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

"""Type tests of values parsed from JSON (annotation files, results files, label maps): an
integer or a number, never a bool; and the one rule for ids: the id keys of a COCO file
(:data:`COCO_ID_KEYS`), ids written as whole floats read as the integers, counted.

Exact types: JSON gives plain ``int`` and ``float``, and ``True`` (an ``int`` subclass to
Python) must not pass for ``1``. :func:`is_real` is the test for JSON-like dicts built in memory,
whose numbers may be numpy scalars.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, TypeGuard

from sparsercnn.text import counted, verb

# A float holds every integer up to 2**53 exactly; one past it may have lost digits (pandas
# writes an int64 column with a missing value as float64), so it is no id.
MAX_EXACT_FLOAT_INTEGER = 2**53


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer (``int``, not ``bool``)."""
    return type(value) is int


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a JSON number (``int`` or ``float``, not ``bool``)."""
    return type(value) is int or type(value) is float


def is_real(value: object) -> TypeGuard[numbers.Real]:
    """Whether ``value`` is a real number as a dict built in memory holds one: a JSON number
    (:func:`is_number`) or a numpy scalar (``np.float32``, ``np.int64``), never a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def whole_float(value: object) -> int | None:
    """The integer a float with no fractional part stands for (``3.0`` -> 3), as pandas and some
    exporters write integer ids (a ``float`` or a subclass, as ``np.float64``); ``None`` for
    anything else: an ``int`` (already one), a fraction, NaN, infinity, or a float past
    :data:`MAX_EXACT_FLOAT_INTEGER`."""
    if not isinstance(value, float) or not value.is_integer():
        return None
    return int(value) if abs(value) <= MAX_EXACT_FLOAT_INTEGER else None


# A decimal number as JSON and exporters write one: "4", "-2", "0.9", ".5", "1e-3".
_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# The longest quoted number read: past it a string is no exporter's number, and int() of one
# past 4300 digits raises.
_MAX_NUMBER_LENGTH = 64


def quoted_number(value: object) -> int | float | None:
    """The number a string holding a decimal number stands for (``"0.9"`` -> 0.9, ``"4"`` ->
    4, ``"1e-3"`` -> 0.001), as some exporters quote numbers and ids; ``None`` for anything
    else (``"car"``, ``"nan"``, ``" 4"``, a number), for one past a float's range (``"1e999"``)
    and for a string longer than :data:`_MAX_NUMBER_LENGTH`."""
    if (
        not isinstance(value, str)
        or len(value) > _MAX_NUMBER_LENGTH
        or not _NUMBER.fullmatch(value)
    ):
        return None
    if not any(mark in value for mark in ".eE"):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def quoted_int(value: object) -> int | None:
    """The integer a string of decimal digits stands for (``"4"`` -> 4, ``"-2"`` -> -2), as
    some exporters quote ids; ``None`` for anything else (``"4.0"``, ``"car"``, a number)."""
    number = quoted_number(value)
    return number if type(number) is int else None


def unquoted_fix(value: object, *, integer: bool = False) -> str | None:
    """What to write instead of ``value`` where it is a quoted number (:func:`quoted_number`;
    ``integer``: a quoted integer, :func:`quoted_int`, as an id must be): ``write it as 0.9,
    without quotes`` for ``"0.9"``; ``None`` for anything else."""
    number = quoted_int(value) if integer else quoted_number(value)
    return None if number is None else f"write it as {number!r}, without quotes"


def is_quoted_box(value: object) -> bool:
    """Whether ``value`` is a list of 4 numbers with some of them quoted
    (:func:`quoted_number`), as a ``bbox`` some exporters write (``["1", "2", 3, 4]``); not
    for ``["1", "2", "3"]``, ``["10", "x", 3, 4]``, 4 unquoted numbers or no list: where
    unquoting would not fix it, a message does not suggest it."""
    if not isinstance(value, list) or len(value) != 4:
        return False
    numbers = [item if is_number(item) else quoted_number(item) for item in value]
    return None not in numbers and numbers != value


# The id keys of the entries of each list of a COCO instances file.
COCO_ID_KEYS: Mapping[str, tuple[str, ...]] = {
    "images": ("id",),
    "categories": ("id",),
    "annotations": ("id", "image_id", "category_id"),
}


def with_integer_ids(entries: list[Any], keys: tuple[str, ...]) -> tuple[list[Any], Counter[str]]:
    """``entries`` with every id under ``keys`` that stands for an integer made a Python
    ``int``, and how many were written as whole floats, by key.

    An id stands for an integer where it is a numpy integer (a dict built in memory; not
    counted) or a whole float (:func:`whole_float`, ``3.0`` as pandas writes integer columns;
    counted). Anything else (``2.5``, ``"3"``, ``true``, a float past
    :data:`MAX_EXACT_FLOAT_INTEGER`) is left as it is, for the caller to refuse naming the entry.

    Args:
        entries: parsed JSON entries (objects; anything else is passed through).
        keys: the id keys of an entry (``"image_id"``, ``"category_id"``).

    Returns:
        The entries (the list itself where no id changes, else a new list with new dicts in
        place of the changed entries: ``entries`` is never modified) and the number of ids
        read from whole floats per key (only keys with some).
    """
    counts: Counter[str] = Counter()
    fixed: list[Any] | None = None
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        ints: dict[str, int] = {}
        for key in keys:
            value = entry.get(key)
            if type(value) is int or isinstance(value, bool):
                continue
            if isinstance(value, numbers.Integral):
                ints[key] = int(value)
            elif (whole := whole_float(value)) is not None:
                ints[key] = whole
                counts[key] += 1
        if ints:
            fixed = list(entries) if fixed is None else fixed
            fixed[position] = {**entry, **ints}
    return (entries if fixed is None else fixed), counts


def coco_with_integer_ids(
    data: Mapping[str, Any], id_keys: Mapping[str, tuple[str, ...]]
) -> tuple[dict[str, Any], Counter[str]]:
    """A COCO instances dict with its ids under ``id_keys`` (by list, as :data:`COCO_ID_KEYS`
    or those of it a caller reads) made integers as :func:`with_integer_ids` makes them, and
    how many were whole floats, by list and key (``"annotations[].image_id"``, as
    :func:`whole_float_ids_message` names them).

    Returns:
        A new dict (``data`` and its entries are never modified; lists and entries with no id
        changed are shared) and the counts. A list key that is missing or holds no list is
        left as it is.
    """
    fixed = dict(data)
    counts: Counter[str] = Counter()
    for list_key, keys in id_keys.items():
        if not isinstance(fixed.get(list_key), list):
            continue
        fixed[list_key], found = with_integer_ids(fixed[list_key], keys)
        counts.update({f"{list_key}[].{key}": count for key, count in found.items()})
    return fixed, counts


def id_problem(entry: Mapping[str, Any], key: str) -> str:
    """Why ``entry[key]`` is no id (after :func:`with_integer_ids`, where an id is an ``int``),
    with what to write instead: ``'id' is "4", not an integer: write it as 4, without quotes``.

    The value is shown as the JSON gives it, cut at 40 characters.
    """
    if key not in entry:
        return f"{key!r} is missing"
    value = entry[key]
    shown = json.dumps(value, default=repr)
    shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
    fix = unquoted_fix(value, integer=True)
    if fix is None and type(value) is float and value.is_integer():
        # Past MAX_EXACT_FLOAT_INTEGER (whole_float): an int64 column pandas wrote as float64.
        fix = "a float this large may have lost digits: write ids as integers"
    return f"{key!r} is {shown}, not an integer: {fix or 'COCO ids are integers'}"


def whole_float_ids_message(source: str, counts: Mapping[str, int]) -> str:
    """The one warning that says how many ids of ``source`` were read as integers from whole
    floats (:func:`with_integer_ids`; ``counts`` by key, named as given)."""
    total = sum(counts.values())
    by_key = ", ".join(f"{key} {count}" for key, count in counts.items())
    return (
        f"{source}: {counted(total, 'id')} written as whole floats (3.0, as "
        f"pandas writes integer columns) {verb(total, 'is')} read as the integers "
        f"({by_key}); write ids as integers (e.g. df.astype({{'image_id': int}}))"
    )

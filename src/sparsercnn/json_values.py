"""Type tests of values parsed from JSON (annotation files, results files, label maps): an
integer or a number, never a bool; and the one rule for ids written as whole floats.

Exact types: JSON gives plain ``int`` and ``float``, and ``True`` (an ``int`` subclass to
Python) must not pass for ``1``. :func:`is_real` is the test for JSON-like dicts built in memory,
whose numbers may be numpy scalars.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Mapping
from typing import Any, TypeGuard

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


def with_integer_ids(entries: list[Any], keys: tuple[str, ...]) -> tuple[list[Any], Counter[str]]:
    """``entries`` with every id under ``keys`` written as a whole float (:func:`whole_float`)
    made the integer it stands for, and how many were, by key.

    Args:
        entries: parsed JSON entries (objects; anything else is passed through).
        keys: the id keys of an entry (``"image_id"``, ``"category_id"``).

    Returns:
        The entries (the list itself where no id is a whole float, else a new list with new
        dicts in place of the changed entries: ``entries`` is never modified) and the number of
        ids made integers per key (only keys with some).
    """
    counts: Counter[str] = Counter()
    fixed: list[Any] | None = None
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        ints = {key: whole for key in keys if (whole := whole_float(entry.get(key))) is not None}
        if ints:
            fixed = list(entries) if fixed is None else fixed
            fixed[position] = {**entry, **ints}
            counts.update(ints.keys())
    return (entries if fixed is None else fixed), counts


def whole_float_ids_message(source: str, counts: Mapping[str, int]) -> str:
    """The one warning that says how many ids of ``source`` were read as integers from whole
    floats (:func:`with_integer_ids`; ``counts`` by key, named as given)."""
    total = sum(counts.values())
    by_key = ", ".join(f"{key} {count}" for key, count in counts.items())
    return (
        f"{source}: {total} id{'' if total == 1 else 's'} written as whole floats (3.0, as "
        f"pandas writes integer columns) {'is' if total == 1 else 'are'} read as the integers "
        f"({by_key}); write ids as integers (e.g. df.astype({{'image_id': int}}))"
    )

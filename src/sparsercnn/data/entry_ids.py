"""How the ids of a COCO file's entries are matched and checked: ``4`` and ``"4"`` name one entry,
an image id must fit in 64 bits, and a repeated id gets one error naming both positions.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from sparsercnn.json_values import id_problem, is_int, quoted_int

# The image ids the dataset can hold: it keeps them as 64-bit integers.
INT64_IDS = range(-(2**63), 2**63)


def id_key(value: object) -> Hashable | None:
    """What an id as given (whole floats already integers:
    :func:`~sparsercnn.data.validation.check_coco`) is matched by: ``4`` and ``"4"`` are both 4,
    another string is itself, and anything else (missing, null, true, a fraction, a list)
    matches nothing."""
    if is_int(value):
        return value
    if isinstance(value, str):
        quoted = quoted_int(value)
        return value if quoted is None else quoted
    return None


def entry_id_problem(entry: dict[str, Any], key: str) -> str:
    """Why ``entry[key]`` is no COCO id (an integer, or a whole float that
    :func:`~sparsercnn.data.validation.check_coco` reads as one; an image id within
    :data:`INT64_IDS`), with what to write instead (:func:`~sparsercnn.json_values.id_problem`).
    """
    value = entry.get(key)
    if is_int(value):
        return f"{key!r} {value} does not fit in 64 bits: number the entries from 0 or 1"
    return id_problem(entry, key)


def repeat_message(
    what: str, key: str, pos: int, first_pos: int, first: dict[str, Any], entry: dict[str, Any]
) -> str:
    """The error of an id that ``data[key][pos]`` repeats from ``data[key][first_pos]``."""
    fix = "remove the repeat" if entry == first else "give each entry its own id"
    return (
        f"{what} is repeated at {key}[{pos}], first at {key}[{first_pos}]"
        f"{' (identical)' if entry == first else ''}: {fix} (--skip-invalid keeps the first)"
    )

"""JSON value type tests: one pair for the annotation file, results file and label map checks."""

from __future__ import annotations

import pytest

from sparsercnn.json_values import is_int, is_number


@pytest.mark.parametrize(
    ("value", "integer", "number"),
    [
        (3, True, True),
        (-1, True, True),
        (2.5, False, True),
        (True, False, False),
        (False, False, False),
        ("3", False, False),
        (None, False, False),
        ([1], False, False),
    ],
)
def test_a_bool_is_neither_an_integer_nor_a_number(
    value: object, integer: bool, number: bool
) -> None:
    assert is_int(value) is integer and is_number(value) is number

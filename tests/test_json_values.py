"""JSON value type tests: one pair for the annotation file, results file and label map checks,
and the one rule for ids: the COCO id keys, whole floats read as integers, other values refused
in one wording."""

from __future__ import annotations

import numpy as np
import pytest

from sparsercnn.json_values import (
    COCO_ID_KEYS,
    MAX_EXACT_FLOAT_INTEGER,
    coco_with_integer_ids,
    id_problem,
    is_int,
    is_number,
    is_quoted_box,
    is_real,
    quoted_int,
    quoted_number,
    unquoted_fix,
    whole_float,
    whole_float_ids_message,
    with_integer_ids,
)


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


@pytest.mark.parametrize(
    ("value", "whole"),
    [
        (3.0, 3),
        (-1.0, -1),
        (np.float64(4.0), 4),
        (float(MAX_EXACT_FLOAT_INTEGER), MAX_EXACT_FLOAT_INTEGER),
        (2.0**60, None),  # past 2**53: digits may be lost
        (2.5, None),
        (float("nan"), None),
        (float("inf"), None),
        (3, None),  # already an integer
        (True, None),
        ("3", None),
    ],
)
def test_a_whole_float_stands_for_its_integer(value: object, whole: int | None) -> None:
    assert whole_float(value) == whole


def test_real_numbers_of_memory_include_numpy_scalars_never_bools() -> None:
    assert all(map(is_real, (3, 2.5, np.float32(1), np.int64(2))))
    assert not any(map(is_real, (True, np.bool_(True), "3", None)))


def test_whole_float_ids_become_integers_in_new_entries_and_are_counted() -> None:
    entries = [{"id": 1.0, "image_id": 2.0}, {"id": 2, "image_id": 2.5}, "not an entry"]
    fixed, counts = with_integer_ids(entries, ("id", "image_id"))
    assert fixed == [{"id": 1, "image_id": 2}, {"id": 2, "image_id": 2.5}, "not an entry"]
    assert type(fixed[0]["id"]) is int and dict(counts) == {"id": 1, "image_id": 1}
    assert entries[0] == {"id": 1.0, "image_id": 2.0} and type(entries[0]["id"]) is float
    assert fixed[1] is entries[1]
    unchanged = [{"id": 1}]
    assert with_integer_ids(unchanged, ("id",)) == (unchanged, {})


def test_the_whole_float_ids_warning_agrees_with_one_id() -> None:
    """One id: noun and verb in the singular (the count by text.counted)."""
    assert whole_float_ids_message("x.json", {"image_id": 1}).startswith(
        "x.json: 1 id written as whole floats (3.0, as pandas writes integer columns) is read "
        "as the integers (image_id 1);"
    )


def test_coco_ids_are_made_integers_by_one_table_counted_by_list_and_key() -> None:
    """Was: the ground truth's own loop and table (which left out annotation ids) beside the
    data rules'; numpy integers of a dict built in memory were refused by the data rules."""
    data = {
        "images": [{"id": 1.0}, {"id": np.int64(2)}],
        "categories": [{"id": 3}],
        "annotations": [{"id": 7.0, "image_id": 2.0, "category_id": np.int32(3)}, "no entry"],
        "info": {"id": 1.0},
    }
    fixed, counts = coco_with_integer_ids(data, COCO_ID_KEYS)
    assert fixed["images"] == [{"id": 1}, {"id": 2}]
    assert all(type(image["id"]) is int for image in fixed["images"])
    assert fixed["annotations"][0] == {"id": 7, "image_id": 2, "category_id": 3}
    assert type(fixed["annotations"][0]["category_id"]) is int
    assert dict(counts) == {"images[].id": 1, "annotations[].id": 1, "annotations[].image_id": 1}
    assert fixed["categories"] is data["categories"] and fixed["info"] is data["info"]
    assert type(data["images"][1]["id"]) is np.int64  # the given dict is left as it was
    assert coco_with_integer_ids({"images": None}, COCO_ID_KEYS) == ({"images": None}, {})
    unread = {**COCO_ID_KEYS, "annotations": ("image_id",)}
    fixed, counts = coco_with_integer_ids(data, unread)
    assert fixed["annotations"][0]["id"] == 7.0 and "annotations[].id" not in counts


@pytest.mark.parametrize(
    ("value", "integer"),
    [("4", 4), ("-2", -2), ("007", 7), ("4.0", None), (" 4", None), ("car", None), (4, None)],
)
def test_a_quoted_id_is_read_by_one_rule(value: object, integer: int | None) -> None:
    """The one rule for an id in quotes, which validation matches and id_problem tells."""
    assert quoted_int(value) == integer


@pytest.mark.parametrize(
    ("value", "number", "fix"),
    [
        ("0.9", 0.9, "write it as 0.9, without quotes"),
        ("4", 4, "write it as 4, without quotes"),
        ("-.5", -0.5, "write it as -0.5, without quotes"),
        ("1e-3", 0.001, "write it as 0.001, without quotes"),
        ("nan", None, None),
        ("0.9 ", None, None),
        ("high", None, None),
        (0.9, None, None),
    ],
)
def test_a_quoted_number_is_told_by_one_rule(
    value: object, number: float | None, fix: str | None
) -> None:
    """Was: a results file's quoted score ("0.9") was refused as no number, without the hint
    that quoted ids got."""
    assert quoted_number(value) == number and unquoted_fix(value) == fix


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        (["1", "2.5", 3, 4], True),
        ([1, 2, 3, 4], False),
        (["1", "2", "3"], False),
        (["10", "x", 3, 4], False),
        (["1", "2", "3", True], False),
        (["1e999", "2", 3, 4], False),
        ("1, 2, 3, 4", False),
    ],
)
def test_a_list_is_unquoted_only_where_that_gives_its_numbers(value: object, quoted: bool) -> None:
    """Was: a bbox with any one quoted number was told to unquote its numbers, even where that
    left 3 of them or a "x" (the hint of validation and of a results file alike)."""
    assert is_quoted_box(value) is quoted


@pytest.mark.parametrize("value", ["1e999", "-1E400", "9" * 5000, "1" * 65])
def test_a_quoted_number_past_a_float_or_any_exporter_is_none(value: str) -> None:
    """Was: "1e999" was told "write it as inf, without quotes", and a string of 5000 digits
    raised ValueError from int() while the message was built."""
    assert quoted_number(value) is None and unquoted_fix(value) is None
    assert quoted_int(value) is None and unquoted_fix(value, integer=True) is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"id": "4"}, """'id' is "4", not an integer: write it as 4, without quotes"""),
        ({"id": True}, "'id' is true, not an integer: COCO ids are integers"),
        ({"id": "4.5"}, """'id' is "4.5", not an integer: COCO ids are integers"""),
        ({"id": 2.0**60}, "'id' is 1.152921504606847e+18, not an integer: a float this large"),
        ({"id": "x" * 50}, f"""'id' is "{"x" * 36}..., not an integer: COCO ids are"""),
        ({}, "'id' is missing"),
    ],
)
def test_a_value_that_is_no_id_is_told_as_the_json_gives_it(entry: dict, problem: str) -> None:
    assert id_problem(entry, "id").startswith(problem)

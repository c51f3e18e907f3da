"""CategoryMap: ids in any order -> labels ordered by id, round trips, clear errors; and the
check that two label maps are the same (:func:`check_same_categories`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsercnn.data.categories import CategoryMap, check_same_categories

COCO_CATEGORIES = [
    {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
    {"id": 3, "name": "car"},
    {"id": 7, "name": "train"},
]


def test_labels_are_ordered_by_category_id() -> None:
    category_map = CategoryMap.from_coco(COCO_CATEGORIES)
    assert category_map.num_classes == len(category_map) == 3
    assert category_map.category_ids == [3, 7, 90]
    assert category_map.names == ["car", "train", "toothbrush"]
    assert [category_map.to_label(i) for i in (3, 7, 90)] == [0, 1, 2]
    assert category_map.names[2] == "toothbrush"


def test_distinct_names_add_the_id_to_a_shared_name() -> None:
    category_map = CategoryMap([5, 3, 9], ["car", "car", "bus"])
    assert category_map.names == ["car", "car", "bus"]
    assert category_map.distinct_names == ["car (3)", "car (5)", "bus"]
    assert CategoryMap.from_coco(COCO_CATEGORIES).distinct_names == ["car", "train", "toothbrush"]


def test_id_label_round_trip() -> None:
    category_map = CategoryMap.from_coco(COCO_CATEGORIES)
    for label in range(category_map.num_classes):
        assert category_map.to_label(category_map.category_ids[label]) == label
    for entry in COCO_CATEGORIES:
        assert category_map.category_ids[category_map.to_label(entry["id"])] == entry["id"]
    assert category_map.to_label(np.int64(7)) == 1  # numpy ids from arrays


def test_dict_round_trip_through_json() -> None:
    category_map = CategoryMap.from_coco(COCO_CATEGORIES)
    restored = CategoryMap.from_dict(json.loads(json.dumps(category_map.to_dict())))
    assert restored == category_map
    assert restored.category_ids == [3, 7, 90]
    assert restored.names == category_map.names
    assert category_map.to_dict()["categories"][0] == {"id": 3, "name": "car", "label": 0}


def test_unknown_id_and_label_errors() -> None:
    category_map = CategoryMap.from_coco(COCO_CATEGORIES)
    with pytest.raises(KeyError, match="category id 5"):
        category_map.to_label(5)


def test_invalid_category_lists_are_rejected() -> None:
    with pytest.raises(ValueError, match="category id 3 appears more than once"):
        CategoryMap.from_coco([{"id": 3, "name": "a"}, {"id": 3, "name": "b"}])
    with pytest.raises(ValueError, match="not an integer"):
        CategoryMap.from_coco([{"id": "3", "name": "a"}])
    with pytest.raises(ValueError, match=r"categories\[1\]"):
        CategoryMap.from_coco([{"id": 1, "name": "a"}, {"id": 2}])
    with pytest.raises(ValueError, match="label map"):
        CategoryMap.from_dict({"classes": ["a"]})
    with pytest.raises(ValueError, match="one name per category id"):
        CategoryMap([1, 2], ["a"])


def test_same_categories_in_another_order_pass() -> None:
    check_same_categories(
        CategoryMap.from_coco(COCO_CATEGORIES),
        CategoryMap.from_coco(COCO_CATEGORIES[::-1]),
        "val.json",
    )


@pytest.mark.parametrize(
    ("found", "difference"),
    [
        (CategoryMap([3, 7], ["car", "bus"]), "it alone has [(7, 'bus')] and lacks [(7, 'train')]"),
        (
            CategoryMap([3, 8], ["car", "train"]),
            "it alone has [(8, 'train')] and lacks [(7, 'train')]",
        ),
        # A split whose placeholder category was removed, or one with a category more: only
        # the side that has a difference is named.
        (CategoryMap([3], ["car"]), ": it lacks [(7, 'train')];"),
        (CategoryMap([3, 7, 9], ["car", "train", "bus"]), ": it alone has [(9, 'bus')];"),
    ],
)
def test_other_categories_are_refused_naming_both_lists_and_the_difference(
    found: CategoryMap, difference: str
) -> None:
    expected = CategoryMap([3, 7], ["car", "train"])
    with pytest.raises(ValueError) as error:
        check_same_categories(expected, found, "val.json", "train.json has")
    message = str(error.value)
    assert message.startswith(
        f"val.json has categories {list(zip(found.category_ids, found.names, strict=True))} "
    )
    assert "but train.json has [(3, 'car'), (7, 'train')]" in message
    assert difference in message
    assert message.endswith("use a dataset with the same COCO 'categories' list")


def test_maps_with_nothing_in_common_are_listed_once() -> None:
    with pytest.raises(ValueError) as error:
        check_same_categories(CategoryMap([3], ["car"]), CategoryMap([4], ["bus"]), "val.json")
    assert str(error.value) == (
        "val.json has categories [(4, 'bus')] but the model was trained on [(3, 'car')]; use a "
        "dataset with the same COCO 'categories' list"
    )


def test_a_difference_past_the_first_ten_categories_is_named() -> None:
    """The message showed only the first ten categories of each map: for 80 classes differing
    in one name, two identical lists."""
    ids = list(range(1, 81))
    expected = CategoryMap(ids, [f"class{i}" for i in ids])
    found = CategoryMap(ids, [f"class{i}" if i != 50 else "zebra" for i in ids])
    with pytest.raises(
        ValueError,
        match=r"and 70 more.*it alone has \[\(50, 'zebra'\)\] and lacks "
        r"\[\(50, 'class50'\)\]",
    ):
        check_same_categories(expected, found, "val.json")

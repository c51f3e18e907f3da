"""CategoryMap: ids in any order -> labels ordered by id, round trips, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsercnn.data.categories import CategoryMap

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

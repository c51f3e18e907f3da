"""Tests for the dataset profile the recipe reads (from a COCO file on disk)."""

from __future__ import annotations

import numpy as np

from sparsercnn.recipe import DatasetProfile
from tests.synthetic_coco import Box, WriteCoco


def test_profile_from_a_coco_file(write_coco: WriteCoco) -> None:
    boxes = [[Box(1, (0, 0, 10, 40)), Box(3, (5, 5, 20, 20))], [], [Box(3, (0, 0, 8, 8))]]
    data = write_coco(size=[(96, 128), (64, 64), (200, 100)], boxes=boxes)
    profile = DatasetProfile.from_json(data.json_path)
    assert profile.class_names == ("red", "green")
    assert profile.boxes_per_class.tolist() == [1, 2]
    assert profile.objects_per_image.tolist() == [2, 0, 1] and profile.max_objects == 2
    np.testing.assert_allclose(profile.box_sides, [20.0, 20.0, 8.0])
    assert profile.box_images.tolist() == [0, 0, 2] and profile.box_labels.tolist() == [0, 1, 1]
    assert profile.file_names == tuple(data.file_names)
    assert profile.median_short_side == 96
    # Short side 48: the first image halves, the third (100 px wide) halves too.
    np.testing.assert_allclose(profile.box_sides_at(48, 1000), [10.0, 10.0, 3.84])


def test_padded_batches_of_mixed_orientations_cost_more_ungrouped(write_coco: WriteCoco) -> None:
    boxes = [[Box(1, (0, 0, 10, 10))]] * 4
    landscape = write_coco(size=[(100, 200)] * 4, boxes=boxes)
    mixed = write_coco(size=[(100, 200), (200, 100)] * 2, boxes=boxes)
    # Short side 64: 64x128 images; a batch of both orientations pads to 128x128, which
    # aspect-ratio grouping (the default) avoids.
    same = DatasetProfile.from_json(landscape.json_path)
    both = DatasetProfile.from_json(mixed.json_path)
    for grouped in (True, False):
        assert same.padded_batch_pixels(64, 1000, 4, grouped=grouped) == 64 * 128
    assert both.padded_batch_pixels(64, 1000, 2, grouped=False) > 64 * 128
    assert both.padded_batch_pixels(64, 1000, 2) == 64 * 128
    # Batches of 4 out of 2 + 2 images: every ungrouped one mixes them, a grouped one never.
    assert both.padded_batch_pixels(64, 1000, 4, grouped=False) == 128 * 128
    assert both.padded_batch_pixels(64, 1000, 4) == 64 * 128

"""Tests for the dataset profile the recipe reads (from a COCO file on disk)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
import pytest

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.loader import build_train_loader
from sparsercnn.data.policy import InvalidDataError
from sparsercnn.data.sampler import orientation_groups, training_batches
from sparsercnn.data.transforms import TrainTransform
from sparsercnn.recipe import DatasetProfile
from sparsercnn.structures import ImageBatch, padded_size
from tests.synthetic_coco import Box, WriteCoco, truncate


def test_profile_from_a_coco_file(write_coco: WriteCoco) -> None:
    boxes = [[Box(1, (0, 0, 10, 40)), Box(3, (5, 5, 20, 20))], [], [Box(3, (0, 0, 8, 8))]]
    data = write_coco(size=[(96, 128), (64, 64), (200, 100)], boxes=boxes)
    profile = DatasetProfile.from_dataset(data.json_path, data.image_dir)
    assert profile.class_names == ("red", "green")
    assert profile.boxes_per_class.tolist() == [1, 2]
    assert profile.objects_per_image.tolist() == [2, 0, 1] and profile.max_objects == 2
    np.testing.assert_allclose(profile.box_sides, [20.0, 20.0, 8.0])
    assert profile.box_images.tolist() == [0, 0, 2] and profile.box_labels.tolist() == [0, 1, 1]
    assert profile.file_names == tuple(data.file_names)
    assert profile.median_short_side == 96
    # Short side 48: the first image halves, the third (100 px wide) halves too.
    np.testing.assert_allclose(profile.box_sides_at(48, 1000), [10.0, 10.0, 3.84])


def test_images_have_their_files_sizes_where_the_json_disagrees(write_coco: WriteCoco) -> None:
    """The JSON gives the first image twice its file's size: the profile (what the recipe
    prices and sizes) has the file's, which training resizes, and refuses as training does."""
    boxes = [[Box(1, (0, 0, 20, 20))], [Box(3, (0, 0, 8, 8))]]
    data = write_coco(size=[(96, 128), (64, 64)], boxes=boxes)
    coco = data.read_json()
    coco["images"][0].update(width=256, height=192)
    data.write_json(coco)
    profile = DatasetProfile.from_dataset(data.json_path, data.image_dir)
    assert profile.image_heights.tolist() == [96, 64]
    assert profile.image_widths.tolist() == [128, 64]
    assert profile.median_short_side == 80
    # Short side 48: the first image halves (a quarter at the JSON's size).
    np.testing.assert_allclose(profile.box_sides_at(48, 1000), [10.0, 6.0])
    truncate(data.image_paths[1])
    with pytest.raises(InvalidDataError, match=r"001\.png"):
        DatasetProfile.from_dataset(data.json_path, data.image_dir)
    kept = DatasetProfile.from_dataset(data.json_path, data.image_dir, skip_invalid=True)
    assert kept.num_images == 1


@pytest.mark.parametrize("broken", ["no boxes", "unreadable image", "missing image", "no images"])
def test_the_profile_refuses_a_set_as_trains_check_does(write_coco: WriteCoco, broken: str) -> None:
    """One check of the data (the policy's checked_for_training): the recipe's profile refuses
    what ``train`` refuses before its budget, with the same error, word for word."""
    from sparsercnn.cli.training_setup import check_training_data

    data = write_coco(
        num_images=3, size=(48, 64), objects_per_image=0 if broken == "no boxes" else 1
    )
    if broken == "unreadable image":
        truncate(data.image_paths[1])
    elif broken == "missing image":
        data.image_paths[2].unlink()
    elif broken == "no images":
        data.write_json({**data.read_json(), "images": [], "annotations": []})
    with pytest.raises(DatasetError) as profile_error:
        DatasetProfile.from_dataset(data.json_path, data.image_dir)
    with pytest.raises(DatasetError) as check_error:
        check_training_data((data.json_path, data.image_dir), None, skip_invalid=False)
    assert type(profile_error.value) is type(check_error.value)
    assert str(profile_error.value) == str(check_error.value)


def test_padded_batches_of_mixed_orientations_cost_more_ungrouped(write_coco: WriteCoco) -> None:
    boxes = [[Box(1, (0, 0, 10, 10))]] * 4
    landscape = write_coco(size=[(100, 200)] * 4, boxes=boxes)
    mixed = write_coco(size=[(100, 200), (200, 100)] * 2, boxes=boxes)
    # Short side 64: 64x128 images; a batch of both orientations pads to 128x128, which
    # aspect-ratio grouping (the default) avoids.
    same = DatasetProfile.from_dataset(landscape.json_path, landscape.image_dir)
    both = DatasetProfile.from_dataset(mixed.json_path, mixed.image_dir)
    resize = TrainTransform(min_sizes=(64,), max_size=1000)
    for grouping in ("sample", "image", "none"):
        assert same.padded_batch_pixels(resize, 4, grouping=grouping) == 64 * 128
    assert both.padded_batch_pixels(resize, 2, grouping="none") > 64 * 128
    assert both.padded_batch_pixels(resize, 2) == 64 * 128
    # Batches of 4 out of 2 + 2 images: every ungrouped one mixes them, a grouped one never.
    assert both.padded_batch_pixels(resize, 4, grouping="none") == 128 * 128
    assert both.padded_batch_pixels(resize, 4) == 64 * 128


@pytest.mark.parametrize("grouped", [True, False])
def test_the_price_of_a_batch_is_that_of_the_batches_training_deals(
    write_coco: WriteCoco, grouped: bool
) -> None:
    """Random crops of elongated images: a crop makes a sample larger than its resized image,
    and of either orientation; training groups the samples by their own orientation."""
    sizes = [(40, 120), (120, 40), (60, 100), (50, 150), (100, 60), (40, 40)] * 2
    data = write_coco(size=sizes, boxes=[[Box(1, (2, 2, 20, 20))]] * len(sizes))
    cropping = TrainTransform(
        min_sizes=(32, 48), max_size=96, crop_pre_sizes=(48, 64), crop_size=(40, 64)
    )
    dataset = CocoDataset(data.json_path, data.image_dir, transform=cropping)
    loader = build_train_loader(dataset, 4, 0, seed=3, aspect_ratio_grouping=grouped)
    padded = [
        ImageBatch.from_tensors(next(loader).images, 8).tensor.shape[-2:].numel() for _ in range(10)
    ]
    profile = DatasetProfile.from_dataset(data.json_path, data.image_dir)
    grouping = "sample" if grouped else "none"
    options: dict[str, Any] = {"grouping": grouping, "size_divisibility": 8, "seed": 3}
    price = profile.padded_batch_pixels(cropping, 4, num_batches=10, **options)
    assert price == np.mean(padded)
    # The crops' sizes are what the price counts, not the resized images'.
    resize = TrainTransform(min_sizes=(32, 48), max_size=96)
    assert profile.padded_batch_pixels(resize, 4, num_batches=10, **options) != price


def test_batches_grouped_by_image_pad_as_the_crops_make_them(write_coco: WriteCoco) -> None:
    """Grouping by each image's orientation (``grouping="image"``) deals the batches of the
    images' groups, each padded to the sizes its random crops make (every image, with
    ``max_images=None``)."""
    sizes = [(40, 120), (120, 40), (60, 100), (50, 150), (100, 60), (40, 40)] * 2
    data = write_coco(size=sizes, boxes=[[Box(1, (2, 2, 20, 20))]] * len(sizes))
    cropping = TrainTransform(
        min_sizes=(32, 48), max_size=96, crop_pre_sizes=(48, 64), crop_size=(40, 64)
    )
    profile = DatasetProfile.from_dataset(data.json_path, data.image_dir)
    batches = training_batches(len(sizes), 4, seed=3, groups=orientation_groups(sizes))
    padded = []
    for batch in itertools.islice(batches, 10):
        drawn = [cropping.output_size(*sizes[i], random.Random(seed)) for i, seed in batch]
        padded.append(np.prod(padded_size(*np.max(drawn, axis=0).tolist(), 8)))
    options: dict[str, Any] = {"size_divisibility": 8, "seed": 3, "num_batches": 10}
    price = profile.padded_batch_pixels(cropping, 4, grouping="image", max_images=None, **options)
    assert price == np.mean(padded)
    assert price != profile.padded_batch_pixels(cropping, 4, grouping="sample", **options)
    # Priced on 6 of the 12 images, the batches are others.
    assert price != profile.padded_batch_pixels(
        cropping, 4, grouping="image", max_images=6, **options
    )


def test_images_without_a_size_in_the_json_have_their_files_sizes(write_coco: WriteCoco) -> None:
    """An entry that gives no width/height (as Label Studio writes them) is profiled, as it is
    trained, at its file's size."""
    boxes = [[Box(1, (0, 0, 20, 20))], [Box(3, (0, 0, 8, 8))]]
    data = write_coco(size=[(96, 128), (64, 64)], boxes=boxes)
    coco = data.read_json()
    del coco["images"][0]["width"], coco["images"][0]["height"]
    data.write_json(coco)
    profile = DatasetProfile.from_dataset(data.json_path, data.image_dir)
    assert profile.image_heights.tolist() == [96, 64]
    assert profile.image_widths.tolist() == [128, 64]

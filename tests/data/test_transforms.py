"""Tests for the paired image + box transforms (spec 1.2-1.3)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.config import InputConfig
from sparsercnn.data.transforms import (
    InferenceTransform,
    TrainTransform,
    build_test_transform,
    build_train_transform,
    crop,
    drop_empty,
    hflip,
    resize,
    resized_shape,
    sample_crop_window,
    to_tensor,
)

# Five well separated rectangles, each filled with its own colour in _painted_image.
BOXES = torch.tensor(
    [
        [10.0, 10.0, 90.0, 70.0],
        [120.0, 20.0, 250.0, 110.0],
        [30.0, 130.0, 110.0, 230.0],
        [150.0, 150.0, 290.0, 190.0],
        [260.0, 10.0, 300.0, 120.0],
    ]
)
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def _painted_image(height: int = 240, width: int = 320) -> Image.Image:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    for (x1, y1, x2, y2), colour in zip(BOXES.int().tolist(), COLOURS, strict=True):
        array[y1:y2, x1:x2] = colour
    return Image.fromarray(array)


@pytest.mark.parametrize(
    ("size", "short_edge", "max_size", "expected"),
    [
        ((480, 640), 800, 1333, (800, 1067)),  # landscape: 640 * 800 / 480 = 1066.67
        ((640, 480), 800, 1333, (1067, 800)),  # portrait
        ((400, 1200), 800, 1333, (444, 1333)),  # capped: scale = 1333 / 1200, 400 * s = 444.33
        ((1200, 400), 800, 1333, (1333, 444)),
        ((300, 500), 288, 480, (288, 480)),  # exactly at the cap: 500 * 0.96 = 480
        ((1000, 1500), 500, 10**9, (500, 750)),  # downscale, no cap (crop policy pre-resize)
        ((333, 333), 100, 1333, (100, 100)),
        ((1, 3000), 800, 1333, (1, 1333)),  # a 1-px strip keeps one row (0.44 rounds to 0)
        ((3000, 2), 160, 160, (160, 1)),
    ],
)
def test_resized_shape_follows_spec_formula(
    size: tuple[int, int], short_edge: int, max_size: int, expected: tuple[int, int]
) -> None:
    assert resized_shape(*size, short_edge, max_size) == expected


def test_hflip_maps_boxes_and_pixels() -> None:
    array = np.zeros((4, 10, 3), dtype=np.uint8)
    array[1, 2] = 255
    image, boxes = hflip(Image.fromarray(array), torch.tensor([[1.0, 2.0, 4.0, 3.0]]))
    assert boxes.tolist() == [[6.0, 2.0, 9.0, 3.0]]
    assert np.asarray(image)[1, 7].tolist() == [255, 255, 255]


def test_hflip_twice_is_identity() -> None:
    image = _painted_image()
    boxes = BOXES + torch.rand(BOXES.shape)
    twice, twice_boxes = hflip(*hflip(image, boxes))
    assert np.array_equal(np.asarray(twice), np.asarray(image))
    torch.testing.assert_close(twice_boxes, boxes)


def test_resize_scales_boxes_with_image() -> None:
    image, boxes = resize(_painted_image(240, 320), BOXES, (120, 480))
    assert (image.height, image.width) == (120, 480)
    expected = BOXES * torch.tensor([1.5, 0.5, 1.5, 0.5])
    torch.testing.assert_close(boxes, expected)


def test_crop_clips_and_drop_empty_updates_keep() -> None:
    image = Image.new("RGB", (100, 80))
    boxes = torch.tensor(
        [
            [25.0, 15.0, 35.0, 25.0],  # inside the window
            [10.0, 30.0, 30.0, 50.0],  # straddles the left edge
            [70.0, 0.0, 90.0, 10.0],  # entirely outside
            [50.0, 35.0, 80.0, 60.0],  # straddles the right and bottom edges
        ]
    )
    cropped, shifted = crop(image, boxes, (10, 20, 30, 40))  # top, left, h, w
    assert (cropped.height, cropped.width) == (30, 40)
    kept, keep = drop_empty(shifted, torch.arange(4))
    assert keep.tolist() == [0, 1, 3]
    assert kept.tolist() == [
        [5.0, 5.0, 15.0, 15.0],
        [0.0, 20.0, 10.0, 30.0],
        [30.0, 25.0, 40.0, 30.0],
    ]


def test_sample_crop_window_ranges() -> None:
    rng = random.Random(0)
    heights, widths = set(), set()
    for _ in range(300):
        top, left, crop_h, crop_w = sample_crop_window(500, 300, (384, 600), rng)
        assert 384 <= crop_h <= 500 and crop_w == 300  # crop_w ~ U[min(W, 384), min(W, 600)]
        assert 0 <= top <= 500 - crop_h and left == 0
        heights.add(crop_h)
        widths.add(crop_w)
    assert min(heights) < 400 and max(heights) > 480  # the whole range is used


def _check_output(image: torch.Tensor, boxes: torch.Tensor, keep: torch.Tensor) -> None:
    assert image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3
    assert boxes.dtype == torch.float32 and keep.dtype == torch.int64
    assert boxes.shape == (keep.shape[0], 4)
    height, width = image.shape[1:]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (keep.diff() > 0).all()


@pytest.mark.parametrize("crop_enabled", [False, True])
def test_train_transform_keeps_boxes_on_their_objects(crop_enabled: bool) -> None:
    """Every surviving box still covers the rectangle of the colour of the box it came from."""
    cfg = InputConfig(
        train_min_sizes=(160, 200, 240),
        train_max_size=400,
        crop=crop_enabled,
        crop_pre_sizes=(200, 260),
        crop_size=(60, 150),
    )
    transform = build_train_transform(cfg)
    sizes, dropped = set(), 0
    for seed in range(40):
        image, boxes, keep = transform(_painted_image(), BOXES, random.Random(seed))
        _check_output(image, boxes, keep)
        sizes.add(tuple(image.shape[1:]))
        dropped += len(BOXES) - len(keep)
        for box, index in zip(boxes.tolist(), keep.tolist(), strict=True):
            x1, y1, x2, y2 = box
            # Small slivers are blurred by resizing; larger boxes have their colour in the middle.
            if x2 - x1 >= 24 and y2 - y1 >= 24:
                pixel = image[:, int((y1 + y2) / 2), int((x1 + x2) / 2)].int()
                assert (pixel - torch.tensor(COLOURS[index])).abs().max() <= 8
    if crop_enabled:
        assert dropped > 0 and len(sizes) > 10
    else:
        assert dropped == 0
        assert sizes <= {resized_shape(240, 320, s, 400) for s in cfg.train_min_sizes}


def test_train_transform_source_size_is_the_largest_resize() -> None:
    multi_scale = TrainTransform(min_sizes=(160, 240, 200), max_size=300)
    # 1000x2000: the long-side cap binds from a short side of 150 on.
    assert multi_scale.source_size(1000, 2000) == (150, 300)
    assert multi_scale.source_size(900, 1000) == (240, 267)
    # The crop policy's pre-resize has no cap and may need more than the final resize.
    cropping = TrainTransform(min_sizes=(160,), max_size=300, crop_pre_sizes=(200, 400))
    assert cropping.source_size(1000, 2000) == (400, 800)


def test_train_transform_flip_probability_one() -> None:
    transform = TrainTransform(min_sizes=(240,), max_size=1000, flip_prob=1.0)
    image, boxes, keep = transform(_painted_image(), BOXES, random.Random(0))
    flipped, flipped_boxes = hflip(_painted_image(), BOXES)
    assert torch.equal(image, to_tensor(flipped))
    assert keep.tolist() == list(range(len(BOXES)))
    torch.testing.assert_close(boxes, flipped_boxes)


@pytest.mark.parametrize("crop_prob", [0.0, 1.0])
def test_train_transform_crop_probability(crop_prob: float) -> None:
    """``crop_prob`` 1 crops every image (here fixed 100x100 windows of a 2x pre-resize, kept at
    that scale by a final resize to 100), 0 none; both keep the random stream's draws."""
    transform = TrainTransform(
        min_sizes=(100,),
        max_size=100,
        crop_pre_sizes=(480,),
        crop_size=(100, 100),
        crop_prob=crop_prob,
    )
    for seed in range(10):
        image, boxes, _ = transform(_painted_image(240, 320), BOXES, random.Random(seed))
        if crop_prob == 1.0:
            assert tuple(image.shape) == (3, 100, 100)
        else:
            assert tuple(image.shape) == (3, 75, 100)  # the whole 240x320 image fitted
            assert len(boxes) == len(BOXES)


def test_train_transform_is_deterministic_given_rng_seed() -> None:
    transform = TrainTransform(
        min_sizes=(128, 160, 192, 224), max_size=400, crop_pre_sizes=(200, 300), crop_size=(80, 200)
    )
    outputs = [transform(_painted_image(), BOXES, random.Random(s)) for s in (7, 7, 8, 9, 10, 11)]
    for a, b in zip(outputs[0], outputs[1], strict=True):
        assert torch.equal(a, b)
    shapes = {tuple(out[0].shape) for out in outputs}
    assert len(shapes) > 1


@pytest.mark.parametrize("crop_prob", [0.0, 0.5])
def test_train_transform_output_size_is_the_output_shape_without_the_image(
    crop_prob: float,
) -> None:
    """The size known from the image's size and the seed alone is the output's, and only a
    random crop changes an output's orientation."""
    transform = TrainTransform(
        min_sizes=(128, 160, 192),
        max_size=400,
        crop_pre_sizes=(200, 300),
        crop_size=(80, 200),
        crop_prob=crop_prob,
    )
    orientations = set()
    for seed in range(40):
        image, _, _ = transform(_painted_image(), BOXES, random.Random(seed))
        size = transform.output_size(240, 320, random.Random(seed))
        assert size == tuple(image.shape[1:])
        orientations.add(size[1] > size[0])
    assert transform.changes_orientation == (crop_prob > 0)
    assert orientations == ({True, False} if crop_prob else {True})


def test_output_sizes_of_many_samples_and_whether_the_draws_change_them() -> None:
    sizes, seeds = np.array([[240, 320], [320, 240], [100, 400]]), np.array([3, 5, 7])
    crops = TrainTransform(min_sizes=(128,), max_size=400, crop_pre_sizes=(200,), crop_prob=1.0)
    multi_scale = TrainTransform(min_sizes=(128, 160), max_size=400)
    resize = TrainTransform(min_sizes=(128, 128), max_size=400)
    for transform in (crops, multi_scale, resize):
        expected = [
            transform.output_size(h, w, random.Random(seed))
            for (h, w), seed in zip(sizes.tolist(), seeds.tolist(), strict=True)
        ]
        assert transform.output_sizes(sizes, seeds).tolist() == [list(s) for s in expected]
    assert crops.draws_size and multi_scale.draws_size and not resize.draws_size
    assert (
        resize.output_sizes(sizes, seeds + 1).tolist() == resize.output_sizes(sizes, seeds).tolist()
    )
    # Grouped by their own size where a crop can turn them, else by their images'.
    assert crops.grouping_sizes(sizes, seeds).tolist() == crops.output_sizes(sizes, seeds).tolist()
    assert multi_scale.grouping_sizes(sizes, seeds).tolist() == sizes.tolist()


def test_test_transform_resizes_to_formula_without_randomness() -> None:
    transform = build_test_transform(InputConfig(test_min_size=120, test_max_size=1000))
    assert isinstance(transform, InferenceTransform)
    image, boxes, keep = transform(_painted_image(240, 320), BOXES, random.Random(0))
    assert tuple(image.shape) == (3, 120, 160)
    torch.testing.assert_close(boxes, BOXES / 2)
    assert keep.tolist() == list(range(len(BOXES)))
    again = transform(_painted_image(240, 320), BOXES, random.Random(123))
    assert torch.equal(again[0], image)


def test_transform_accepts_no_boxes_and_converts_grayscale() -> None:
    transform = InferenceTransform(min_size=50, max_size=100)
    image, boxes, keep = transform(Image.new("L", (80, 40)), torch.zeros((0, 4)), random.Random())
    assert tuple(image.shape) == (3, 50, 100)
    assert boxes.shape == (0, 4) and keep.shape == (0,)


def test_transform_rejects_bad_box_shape() -> None:
    transform = InferenceTransform(min_size=50, max_size=100)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        transform(Image.new("RGB", (80, 40)), torch.zeros((3, 5)), random.Random())


def _bright_pixels_box(image: torch.Tensor) -> list[float]:
    """xyxy of the pixels brighter than mid-grey (the edges of a resampled white rectangle)."""
    ys, xs = torch.nonzero(image[0] > 127, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("seed", range(12))
def test_train_transform_boxes_frame_their_pixels_within_a_pixel(seed: int) -> None:
    """A white rectangle on black: after flip, crop and resizes its box still frames it."""
    rng = random.Random(seed)
    height, width = rng.randint(120, 700), rng.randint(120, 700)
    x1, y1 = rng.randint(0, width - 40), rng.randint(0, height - 40)
    x2, y2 = rng.randint(x1 + 30, width), rng.randint(y1 + 30, height)
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[y1:y2, x1:x2] = 255
    transform = TrainTransform(
        min_sizes=(96, 160, 320), max_size=500, crop_pre_sizes=(200, 300), crop_size=(80, 200)
    )
    box = torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32)
    for draw in range(8):
        image, boxes, _ = transform(Image.fromarray(array), box, random.Random(draw))
        if len(boxes) == 0:  # cropped away: no rectangle pixel left
            assert not (image[0] > 127).any()
            continue
        width_out, height_out = (boxes[0, 2:] - boxes[0, :2]).tolist()
        if min(width_out, height_out) >= 3:  # thinner slivers are blurred below mid-grey
            expected = torch.tensor(_bright_pixels_box(image))
            torch.testing.assert_close(boxes[0], expected, atol=1.0, rtol=0)

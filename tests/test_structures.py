"""Shared structures: the pixel map of an image decoded at a reduced scale, a batch's way of
taking its post-processed detections to the original images with it, and detections brought to
the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsercnn.structures import (
    Batch,
    Detections,
    PixelMap,
    Target,
    coco_area,
    detections_to_cpu,
)

# A JPEG decoded at 1/8 and mirrored by EXIF: its grid starts 5 full pixels before the image.
DECODED = PixelMap(8.0, 8.0, -5.0, -3.0)


def test_a_resize_composes_onto_the_map() -> None:
    """Pixels of a 161x321 image resized to 80x160 map as the resize's inverse, then the map;
    a resize to the same size leaves the map as it is, bit for bit."""
    resized = DECODED.after_resize((161, 321), (80, 160))
    boxes = torch.tensor([[0.0, 0.0, 160.0, 80.0], [10.5, 20.25, 30.0, 41.0]], dtype=torch.float64)
    in_decoded = boxes * torch.tensor([321 / 160, 161 / 80] * 2, dtype=torch.float64)
    torch.testing.assert_close(resized.boxes_to_full(boxes), DECODED.boxes_to_full(in_decoded))
    torch.testing.assert_close(resized.boxes_to_decoded(resized.boxes_to_full(boxes)), boxes)
    assert resized.after_resize((80, 160), (80, 160)) == resized
    assert (resized.offset_x, resized.offset_y) == (-5.0, -3.0)


def test_detections_reach_the_full_image_clipped_as_post_processing_clips() -> None:
    """The decoded grid reaches past the full image: clipping brings boxes back into it and
    drops those it empties, the others in order; without clipping nothing changes but the map."""
    detections = Detections(
        boxes=torch.tensor(
            [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.5, 1.0], [300.0, 100.0, 321.0, 161.0]]
        ),
        scores=torch.tensor([0.9, 0.8, 0.7]),
        labels=torch.tensor([1, 0, 1]),
    )
    full_size = (1283, 2563)  # the grid of 321x161 decoded pixels ends at x 2563, y 1285

    clipped = DECODED.detections_to_full_image(detections, full_size, clip=True)
    torch.testing.assert_close(
        clipped["boxes"], torch.tensor([[0.0, 0.0, 11.0, 13.0], [2395.0, 797.0, 2563.0, 1283.0]])
    )
    assert torch.equal(clipped["scores"], detections["scores"][[0, 2]])  # the second emptied
    assert torch.equal(clipped["labels"], detections["labels"][[0, 2]])

    kept = DECODED.detections_to_full_image(detections, full_size, clip=False)
    torch.testing.assert_close(kept["boxes"], DECODED.boxes_to_full(detections["boxes"]))
    assert torch.equal(kept["scores"], detections["scores"])


def _batch(pixel_maps: list[PixelMap | None]) -> Batch:
    images = [torch.zeros(3, 80, 160, dtype=torch.uint8), torch.zeros(3, 64, 48, dtype=torch.uint8)]
    targets = [Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))] * 2
    return Batch(images, targets, [1, 2], [(1283, 2563), (128, 96)], pixel_maps=pixel_maps)


def test_a_batch_rescales_by_the_ratio_unless_an_image_has_a_pixel_map() -> None:
    detections = [
        Detections(
            boxes=torch.tensor([[1.0, 2.0, 3.0, 4.0]]),
            scores=torch.ones(1),
            labels=torch.zeros(1, dtype=torch.int64),
        )
    ] * 2
    for plain in (_batch([]), _batch([None, None])):
        assert plain.rescale_sizes == [(1283, 2563), (128, 96)]
        assert all(
            a is b for a, b in zip(plain.to_original(detections, True), detections, strict=True)
        )

    to_input = DECODED.after_resize((161, 321), (80, 160))
    mixed = _batch([to_input, None])
    assert mixed.rescale_sizes == [(80, 160), (128, 96)]  # the input's own size: the identity
    mapped, plain_image = mixed.to_original(detections, True)
    torch.testing.assert_close(mapped["boxes"], to_input.boxes_to_full(detections[0]["boxes"]))
    assert plain_image is detections[1]


def test_detections_reach_the_cpu_as_float32_whatever_the_model_ran_in() -> None:
    detections = Detections(
        boxes=torch.tensor([[1.5, 2.0, 3.0, 4.25]], dtype=torch.bfloat16),
        scores=torch.tensor([0.75], dtype=torch.float16),
        labels=torch.tensor([3]),
    )
    on_cpu = detections_to_cpu(detections)
    assert on_cpu["boxes"].dtype == on_cpu["scores"].dtype == torch.float32
    assert on_cpu["labels"].dtype == torch.int64
    torch.testing.assert_close(on_cpu["boxes"], torch.tensor([[1.5, 2.0, 3.0, 4.25]]))
    torch.testing.assert_close(on_cpu["scores"], torch.tensor([0.75]))


@pytest.mark.parametrize("area", [900, 900.0, np.float32(900.0), np.float64(900.0), np.int64(900)])
def test_coco_area_reads_the_area_field_as_memory_holds_it(area: object) -> None:
    """Was: an ``np.float32`` or ``np.int64`` area (a dict built in memory, as from pandas) was
    passed over for the box's w*h, unsaid; a bool or a string still is."""
    assert coco_area({"area": area, "bbox": [0, 0, 10, 20]}) == 900.0
    assert coco_area({"area": True, "bbox": [0, 0, 10, 20]}) == 200.0
    assert coco_area({"area": "900", "bbox": [0, 0, 10, 20]}) == 200.0

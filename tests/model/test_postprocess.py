"""Tests of inference post-processing (spec 8)."""

from __future__ import annotations

import torch

from sparsercnn.model import PostProcessor
from sparsercnn.structures import ModelOutput, PixelMap, StageOutput, detections_to_cpu


def make_output(logits: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> ModelOutput:
    sizes = torch.tensor([size] * logits.shape[0])
    return ModelOutput([StageOutput(logits, boxes)], sizes, boxes)


def test_top_k_over_flattened_scores_and_rescale() -> None:
    logits = torch.full((1, 3, 2), -10.0)
    logits[0, 1, 0] = 5.0  # proposal 1, class 0
    logits[0, 1, 1] = 4.0  # same box, class 1: a box may appear with several classes
    logits[0, 2, 1] = 3.0
    boxes = torch.tensor(
        [[[0.0, 0.0, 10.0, 10.0], [10.0, 20.0, 30.0, 40.0], [5.0, 5.0, 50.0, 50.0]]]
    )
    output = make_output(logits, boxes, (100, 50))  # input h=100, w=50
    (det,) = PostProcessor(clip_boxes=False)(output, [(200, 100)])
    assert det["labels"].tolist() == [0, 1, 1]
    torch.testing.assert_close(det["scores"][:3], torch.sigmoid(torch.tensor([5.0, 4.0, 3.0])))
    torch.testing.assert_close(det["boxes"][0], torch.tensor([20.0, 40.0, 60.0, 80.0]))
    torch.testing.assert_close(det["boxes"][1], torch.tensor([20.0, 40.0, 60.0, 80.0]))
    assert det["boxes"].shape == (3, 4)  # k = N = 3, no threshold


def test_official_clips_and_drops_empty_boxes_mmdet_keeps_them() -> None:
    logits = torch.tensor([[[2.0], [1.0]]])
    boxes = torch.tensor([[[-10.0, -5.0, 20.0, 200.0], [120.0, 10.0, 130.0, 20.0]]])
    output = make_output(logits, boxes, (100, 100))
    (official,) = PostProcessor(clip_boxes=True)(output, [(100, 100)])
    assert official["boxes"].tolist() == [[0.0, 0.0, 20.0, 100.0]]  # second box is outside: dropped
    (mmdet,) = PostProcessor(clip_boxes=False)(output, [(100, 100)])
    assert mmdet["boxes"].shape == (2, 4)
    assert mmdet["boxes"][0].tolist() == [-10.0, -5.0, 20.0, 200.0]


def test_broken_boxes_are_kept_for_the_callers_to_refuse_not_dropped_as_empty() -> None:
    """A diverged model's NaN box is not an empty one: dropped, it would pass for no detection."""
    logits = torch.tensor([[[2.0], [1.0]]])
    boxes = torch.tensor([[[float("nan"), 0.0, 20.0, 20.0], [120.0, 10.0, 130.0, 20.0]]])
    output = make_output(logits, boxes, (100, 100))
    (official,) = PostProcessor(clip_boxes=True)(output, [(100, 100)])
    assert len(official["boxes"]) == 1 and official["boxes"][0, 0].isnan()


def test_each_image_is_clipped_to_its_own_size() -> None:
    """A batch of two images of other sizes: each box is clipped to its own image's ``(h, w)``
    (one clip, :func:`~sparsercnn.ops.boxes.clip_boxes`, for boxes of any leading shape)."""
    logits = torch.tensor([[[1.0]], [[1.0]]])
    boxes = torch.tensor([[[-4.0, 10.0, 90.0, 300.0]], [[5.0, -2.0, 300.0, 40.0]]])
    output = make_output(logits, boxes, (100, 100))
    wide, tall = PostProcessor(clip_boxes=True)(output, [(50, 200), (300, 60)])
    assert wide["boxes"].tolist() == [[0.0, 5.0, 180.0, 50.0]]  # x * 2, y / 2, then clipped
    assert tall["boxes"].tolist() == [[3.0, 0.0, 60.0, 120.0]]  # x * 0.6, y * 3, then clipped


def test_top_k_to_full_image_keeps_what_the_predictors_map_keeps() -> None:
    """:meth:`TopKDetections.to_full_image` (the per-stage diagnostics) and
    :meth:`PixelMap.detections_to_full_image` (the predictor, evaluation) give the same boxes and
    drop the same detections: one inside, one that the full-image clip empties, one kept only
    without clipping."""
    logits = torch.tensor([[[3.0], [2.0], [1.0]]])
    boxes = torch.tensor([[[1.0, 1.0, 10.0, 8.0], [30.0, 2.0, 40.0, 9.0], [-9.0, 0.0, -1.0, 5.0]]])
    output = make_output(logits, boxes, (10, 40))
    pixel_map = PixelMap(8.0, 8.0, -5.0, -5.0)  # a 1/8 decode whose grid starts 5 px early
    for clip in (True, False):
        top_k = PostProcessor(clip_boxes=clip).select(output, [(10, 40)])
        (expected,) = top_k.per_image()
        expected = pixel_map.detections_to_full_image(detections_to_cpu(expected), (60, 200), clip)
        (found,) = top_k.to_cpu().to_full_image(pixel_map, (60, 200), clip).per_image()
        assert torch.equal(found["boxes"], expected["boxes"])
        assert torch.equal(found["scores"], expected["scores"])
        assert torch.equal(found["labels"], expected["labels"])
        assert len(found["scores"]) == (1 if clip else 3)


def test_per_image_detections_own_their_storage() -> None:
    """Each image's tensors are the valid rows of its own, not views of the batch's (keeping
    one image's detections must not keep the batch alive, nor pickle it along)."""
    logits = torch.tensor([1.0, -1.0]).repeat(3, 4, 1)  # top 4: every slot once, class 0
    boxes = torch.tensor([0.0, 0.0, 10.0, 10.0]).repeat(3, 4, 1)
    boxes[1, 2] = torch.tensor([150.0, 10.0, 160.0, 20.0])  # outside: clipping drops it
    output = make_output(logits, boxes, (100, 100))
    top_k = PostProcessor(clip_boxes=True).select(output, [(100, 100)] * 3)
    detections = top_k.per_image()
    assert [len(d["boxes"]) for d in detections] == [4, 3, 4]
    for i, det in enumerate(detections):
        keep = top_k.valid[i]
        for key, batched in (("boxes", top_k.boxes), ("scores", top_k.scores)):
            assert torch.equal(det[key], batched[i][keep])
            assert det[key].untyped_storage().nbytes() == det[key].nbytes
        assert torch.equal(det["labels"], top_k.labels[i][keep])

"""Hungarian matcher: brute force, batching, empty and crowded images, bad inputs, low precision."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import Tensor

from sparsercnn.loss.matcher import HungarianMatcher, PaddedTargets
from sparsercnn.structures import Target


def random_boxes(num: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    """``(num, 4)`` well-formed absolute xyxy boxes inside a ``height x width`` image."""
    x1 = torch.rand(num, generator=generator) * width * 0.7
    y1 = torch.rand(num, generator=generator) * height * 0.7
    bw = 4 + torch.rand(num, generator=generator) * width * 0.3
    bh = 4 + torch.rand(num, generator=generator) * height * 0.3
    return torch.stack((x1, y1, x1 + bw, y1 + bh), dim=-1)


def random_problem(
    num_gts: list[int], num_preds: int, num_classes: int, seed: int
) -> tuple[Tensor, Tensor, list[Target], Tensor]:
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([[60 + 20 * i, 100 - 10 * i] for i in range(len(num_gts))])
    logits = torch.randn(len(num_gts), num_preds, num_classes, generator=generator) * 2
    boxes = torch.stack([random_boxes(num_preds, int(h), int(w), generator) for h, w in sizes])
    targets = [
        Target(
            boxes=random_boxes(m, int(h), int(w), generator),
            labels=torch.randint(0, num_classes, (m,), generator=generator),
        )
        for m, (h, w) in zip(num_gts, sizes, strict=True)
    ]
    return logits, boxes, targets, sizes


def reference_cost(
    logit: Tensor, box: Tensor, label: int, gt: Tensor, height: int, width: int
) -> float:
    """Spec 7.1 for one (prediction, ground truth) pair, with plain Python floats."""
    p = 1 / (1 + math.exp(-float(logit[label])))
    eps = 1e-8
    cls = 0.25 * (1 - p) ** 2 * -math.log(p + eps) - 0.75 * p**2 * -math.log(1 - p + eps)
    scale = (width, height, width, height)
    l1 = sum(abs(float(box[k]) - float(gt[k])) / scale[k] for k in range(4))
    ax1, ay1, ax2, ay2 = (float(v) for v in box)
    bx1, by1, bx2, by2 = (float(v) for v in gt)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    giou = inter / union - (hull - union) / hull
    return 2 * cls + 5 * l1 - 2 * giou


def reference_matrix(
    logits: Tensor, boxes: Tensor, target: Target, height: int, width: int
) -> list[list[float]]:
    return [
        [
            reference_cost(
                logits[i], boxes[i], int(target.labels[j]), target.boxes[j], height, width
            )
            for j in range(len(target))
        ]
        for i in range(logits.shape[0])
    ]


@pytest.mark.parametrize(
    ("num_preds", "num_gt", "seed"), [(5, 3, 0), (5, 3, 1), (4, 4, 2), (6, 1, 3)]
)
def test_matches_brute_force_minimum(num_preds: int, num_gt: int, seed: int) -> None:
    logits, boxes, targets, sizes = random_problem([num_gt], num_preds, 4, seed)
    h, w = (int(v) for v in sizes[0])
    cost = reference_matrix(logits[0], boxes[0], targets[0], h, w)
    best = min(
        sum(cost[pred][gt] for gt, pred in enumerate(perm))
        for perm in itertools.permutations(range(num_preds), num_gt)
    )

    ((pred_ids, gt_ids),) = HungarianMatcher()(logits, boxes, targets, sizes)

    assert pred_ids.dtype == gt_ids.dtype == torch.int64
    assert sorted(gt_ids.tolist()) == list(range(num_gt))
    assert len(set(pred_ids.tolist())) == num_gt
    assert pred_ids.tolist() == sorted(pred_ids.tolist())
    total = sum(cost[i][j] for i, j in zip(pred_ids.tolist(), gt_ids.tolist(), strict=True))
    assert total == pytest.approx(best, abs=1e-4)


def test_more_ground_truth_than_predictions_matches_every_prediction() -> None:
    num_preds, num_gt = 3, 5
    logits, boxes, targets, sizes = random_problem([num_gt], num_preds, 4, seed=7)
    h, w = (int(v) for v in sizes[0])
    cost = reference_matrix(logits[0], boxes[0], targets[0], h, w)
    best = min(
        sum(cost[pred][gt] for pred, gt in enumerate(perm))
        for perm in itertools.permutations(range(num_gt), num_preds)
    )

    ((pred_ids, gt_ids),) = HungarianMatcher()(logits, boxes, targets, sizes)

    assert pred_ids.tolist() == [0, 1, 2]
    assert len(set(gt_ids.tolist())) == num_preds
    total = sum(cost[i][j] for i, j in zip(pred_ids.tolist(), gt_ids.tolist(), strict=True))
    assert total == pytest.approx(best, abs=1e-4)


def test_batched_equals_per_image() -> None:
    num_gts = [3, 0, 7, 1]
    logits, boxes, targets, sizes = random_problem(num_gts, 10, 5, seed=11)
    matcher = HungarianMatcher()

    batched = matcher(logits, boxes, targets, sizes)

    assert len(batched) == len(num_gts)
    for i, (pred_ids, gt_ids) in enumerate(batched):
        ((single_pred, single_gt),) = matcher(
            logits[i : i + 1], boxes[i : i + 1], [targets[i]], sizes[i : i + 1]
        )
        assert len(pred_ids) == num_gts[i]
        assert torch.equal(pred_ids, single_pred)
        assert torch.equal(gt_ids, single_gt)


def test_padded_batch_cost_equals_each_image_alone() -> None:
    # Images with different numbers of ground-truth boxes are costed together, padded to the
    # largest; each image's costs must equal those of the image costed on its own.
    num_gts = [3, 0, 7, 1]
    logits, boxes, targets, sizes = random_problem(num_gts, 10, 5, seed=12)
    matcher = HungarianMatcher()
    padded = PaddedTargets.from_targets(targets, logits.device)
    (costs,) = matcher._image_costs([logits], [boxes], padded, sizes)
    whwh = sizes.flip(-1).repeat(1, 2).float()
    for i, target in enumerate(targets):
        alone = matcher.cost_matrix(logits[i], boxes[i], target.labels, target.boxes, whwh[i])
        cost = costs[i, :, : num_gts[i]]
        assert cost.shape == (10, num_gts[i])
        # Equal up to the last bit's rounding of vectorised versus scalar log/pow.
        torch.testing.assert_close(torch.from_numpy(cost).float(), alone, rtol=1e-6, atol=1e-6)
        reference = np.array(reference_matrix(logits[i], boxes[i], target, *sizes[i].tolist()))
        np.testing.assert_allclose(cost, reference.reshape(10, num_gts[i]), atol=1e-4)


def test_empty_targets_give_empty_indices() -> None:
    logits, boxes, targets, sizes = random_problem([0, 2], 6, 3, seed=5)
    matcher = HungarianMatcher()

    (pred0, gt0), (pred1, gt1) = matcher(logits, boxes, targets, sizes)
    assert pred0.shape == gt0.shape == (0,)
    assert pred0.dtype == gt0.dtype == torch.int64
    assert len(pred1) == len(gt1) == 2

    no_boxes = [Target(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64))] * 2
    for pred, gt in matcher(logits, boxes, no_boxes, sizes):
        assert pred.shape == gt.shape == (0,) and pred.dtype == torch.int64


@pytest.mark.parametrize("what", ["logits", "boxes"])
def test_non_finite_cost_raises_naming_the_image_and_stage(what: str) -> None:
    logits, boxes, targets, sizes = random_problem([2, 3, 1], 5, 3, seed=3)
    if what == "logits":
        logits[1, 2] = float("nan")
    else:
        boxes[1, 4] = torch.tensor([float("inf"), 0.0, float("nan"), 5.0])
    with pytest.raises(ValueError, match=r"image 1 of the batch at stage 3") as info:
        HungarianMatcher()(logits, boxes, targets, sizes, stage=3)
    assert f"finite predicted {what}: False" in str(info.value)
    assert "learning rate" in str(info.value)


def test_mismatched_batch_raises() -> None:
    logits, boxes, targets, sizes = random_problem([2, 3], 5, 3, seed=3)
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        HungarianMatcher()(logits, boxes, targets[:1], sizes)


@pytest.mark.parametrize("eps", [0.0, -1e-8])
def test_a_focal_eps_that_is_not_positive_is_refused(eps: float) -> None:
    """Without it, a saturated class probability gave an infinite cost, reported as divergence."""
    with pytest.raises(ValueError, match="focal cost needs 0 < eps <= 1"):
        HungarianMatcher(eps=eps)


def test_a_zero_area_ground_truth_box_is_matched_to_its_exact_prediction() -> None:
    """Its GIoU with an identical prediction was 0/0: a non-finite cost, refused as divergence."""
    logits, boxes, targets, sizes = random_problem([2], 4, 3, seed=2)
    point = torch.tensor([10.0, 12.0, 10.0, 12.0])
    targets[0].boxes[1] = point
    boxes[0, 3] = point
    pred, gt = HungarianMatcher(class_weight=0.0)(logits, boxes, targets, sizes)[0]
    assert dict(zip(gt.tolist(), pred.tolist(), strict=True))[1] == 3


class RecordingMatcher(HungarianMatcher):
    """Records the dtype of every cost matrix it computes."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def cost_matrix(self, *args: Tensor) -> Tensor:
        cost = super().cost_matrix(*args)
        self.dtypes.append(cost.dtype)
        return cost


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_are_matched_in_float32(dtype: torch.dtype) -> None:
    logits, boxes, targets, sizes = random_problem([3, 2], 8, 4, seed=9)
    logits_low, boxes_low = logits.to(dtype), boxes.to(dtype)
    targets_low = [Target(t.boxes.to(dtype), t.labels) for t in targets]
    matcher = RecordingMatcher()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        matches = matcher(logits_low, boxes_low, targets_low, sizes)
    reference = HungarianMatcher()(
        logits_low.float(),
        boxes_low.float(),
        [Target(t.boxes.float(), t.labels) for t in targets_low],
        sizes,
    )

    assert matcher.dtypes == [torch.float32]  # one cost matrix for the whole batch
    for (pred, gt), (ref_pred, ref_gt) in zip(matches, reference, strict=True):
        assert torch.equal(pred, ref_pred) and torch.equal(gt, ref_gt)


def test_stages_matched_together_equal_each_stage_matched_alone() -> None:
    """The criterion costs every stage in one call against targets padded once."""
    num_gts = [3, 0, 7, 1]
    stages = [random_problem(num_gts, 10, 5, seed=seed) for seed in (21, 22, 23)]
    targets, sizes = stages[0][2], stages[0][3]
    matcher = HungarianMatcher()
    padded = PaddedTargets.from_targets(targets, torch.device("cpu"))
    together = matcher.match_stages(
        [logits for logits, *_ in stages],
        [boxes for _, boxes, *_ in stages],
        padded,
        sizes,
        [0, 1, 2],
    )
    for (logits, boxes, _, _), matches in zip(stages, together, strict=True):
        alone = matcher(logits, boxes, targets, sizes)
        assert matches.sizes == [min(10, m) for m in num_gts]
        expected_images = [i for i, size in enumerate(matches.sizes) for _ in range(size)]
        assert matches.image_ids.tolist() == expected_images
        for (pred, gt), (ref_pred, ref_gt) in zip(matches.per_image(), alone, strict=True):
            assert torch.equal(pred, ref_pred) and torch.equal(gt, ref_gt)


def test_padded_targets_hold_each_image_in_its_first_rows() -> None:
    _, _, targets, _ = random_problem([2, 0, 3], 4, 5, seed=4)
    padded = PaddedTargets.from_targets(targets, torch.device("cpu"))
    assert padded.counts == [2, 0, 3] and padded.boxes.shape == (3, 3, 4)
    for i, target in enumerate(targets):
        assert torch.equal(padded.labels[i, : len(target)], target.labels)
        assert torch.equal(padded.boxes[i, : len(target)], target.boxes.float())
        assert (padded.boxes[i, len(target) :] == torch.tensor([0.0, 0.0, 1.0, 1.0])).all()

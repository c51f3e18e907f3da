"""SetCriterion: loss keys, perfect predictions, gradients, normaliser, validation (spec 7.2)."""

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import Tensor

from sparsercnn.config import Config
from sparsercnn.loss import (
    HungarianMatcher,
    NonFiniteCostError,
    SetCriterion,
    build_criterion,
    sigmoid_focal_loss,
)
from sparsercnn.structures import ModelOutput, StageOutput, Target

NUM_CLASSES = 5
SIZES = torch.tensor([[80, 120], [64, 48]])  # (h, w) per image


def random_boxes(num: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    x1 = torch.rand(num, generator=generator) * width * 0.6
    y1 = torch.rand(num, generator=generator) * height * 0.6
    bw = 4 + torch.rand(num, generator=generator) * width * 0.3
    bh = 4 + torch.rand(num, generator=generator) * height * 0.3
    return torch.stack((x1, y1, x1 + bw, y1 + bh), dim=-1)


def make_targets(num_gts: list[int], seed: int = 0) -> list[Target]:
    generator = torch.Generator().manual_seed(seed)
    return [
        Target(
            boxes=random_boxes(m, int(h), int(w), generator),
            labels=torch.randint(0, NUM_CLASSES, (m,), generator=generator),
        )
        for m, (h, w) in zip(num_gts, SIZES, strict=True)
    ]


def make_output(num_stages: int, num_preds: int = 8, seed: int = 0) -> ModelOutput:
    """Random leaf predictions (requires_grad) for a batch of ``len(SIZES)`` images."""
    generator = torch.Generator().manual_seed(seed)
    stages = []
    for _ in range(num_stages):
        logits = torch.randn(len(SIZES), num_preds, NUM_CLASSES, generator=generator)
        boxes = torch.stack([random_boxes(num_preds, int(h), int(w), generator) for h, w in SIZES])
        stages.append(StageOutput(logits.requires_grad_(), boxes.requires_grad_()))
    return ModelOutput(stages=stages, image_sizes=SIZES, proposal_boxes=stages[0].boxes.detach())


def expected_keys(stage_ids: list[int]) -> set[str]:
    return {f"loss_{term}/stage{t}" for t in stage_ids for term in ("cls", "l1", "giou")}


def make_criterion(deep_supervision: bool = True) -> SetCriterion:
    return SetCriterion(NUM_CLASSES, HungarianMatcher(), deep_supervision=deep_supervision)


@pytest.mark.parametrize("num_stages", [2, 6])
def test_terms_are_keyed_by_term_and_stage(num_stages: int) -> None:
    loss = make_criterion()(make_output(num_stages), make_targets([3, 2]))

    assert set(loss.terms) == expected_keys(list(range(num_stages)))
    assert len(loss.indices) == num_stages
    assert all(len(per_image) == len(SIZES) for per_image in loss.indices)
    torch.testing.assert_close(loss.total, sum(loss.terms.values()))


def test_without_deep_supervision_only_the_last_stage_is_supervised() -> None:
    output = make_output(6)
    loss = make_criterion(deep_supervision=False)(output, make_targets([3, 2]))

    assert set(loss.terms) == expected_keys([5])
    assert len(loss.indices) == 1
    loss.total.backward()
    assert output.stages[5].logits.grad is not None
    assert output.stages[0].logits.grad is None


def test_loss_is_finite_and_every_stage_gets_gradients() -> None:
    output = make_output(3)
    loss = make_criterion()(output, make_targets([4, 1]))

    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in loss.terms.values())
    loss.total.backward()
    for stage in output.stages:
        for tensor in (stage.logits, stage.boxes):
            assert tensor.grad is not None
            assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_perfect_predictions_give_zero_box_losses() -> None:
    targets = make_targets([3, 2], seed=4)
    num_preds = 6
    slots = [[4, 0, 2], [1, 5]]  # where each image's ground truth is planted
    generator = torch.Generator().manual_seed(1)
    stages = []
    for _ in range(2):
        logits = torch.full((len(SIZES), num_preds, NUM_CLASSES), -50.0)
        boxes = torch.stack([random_boxes(num_preds, int(h), int(w), generator) for h, w in SIZES])
        for i, target in enumerate(targets):
            logits[i, slots[i], target.labels] = 50.0
            boxes[i, slots[i]] = target.boxes
        stages.append(StageOutput(logits, boxes))
    output = ModelOutput(stages=stages, image_sizes=SIZES, proposal_boxes=boxes)

    loss = make_criterion()(output, targets)

    for t in range(2):
        assert float(loss.terms[f"loss_l1/stage{t}"]) == pytest.approx(0.0, abs=1e-6)
        assert float(loss.terms[f"loss_giou/stage{t}"]) == pytest.approx(0.0, abs=1e-6)
        assert float(loss.terms[f"loss_cls/stage{t}"]) == pytest.approx(0.0, abs=1e-6)
        for i, (pred, gt) in enumerate(loss.indices[t]):
            assert dict(zip(pred.tolist(), gt.tolist(), strict=True)) == {
                slot: j for j, slot in enumerate(slots[i])
            }


def test_a_zero_area_box_predicted_exactly_gives_finite_losses_and_gradients() -> None:
    """A zero-area ground-truth box (the Python API takes one; `validate` drops them from files)
    with an identical prediction: its GIoU was 0/0, which the matcher refused as non-finite."""
    output = make_output(2, num_preds=4, seed=5)
    targets = make_targets([2, 1], seed=5)
    targets[0].boxes[1] = torch.tensor([30.0, 20.0, 30.0, 20.0])  # a point
    targets[1].boxes[0] = torch.tensor([5.0, 9.0, 25.0, 9.0])  # a line
    with torch.no_grad():
        for stage in output.stages:
            stage.boxes[0, 3] = targets[0].boxes[1]
            stage.boxes[1, 2] = targets[1].boxes[0]

    loss = make_criterion()(output, targets)

    assert all(torch.isfinite(v) for v in loss.terms.values())
    loss.total.backward()
    for stage in output.stages:
        assert stage.boxes.grad is not None and torch.isfinite(stage.boxes.grad).all()


def test_terms_match_a_direct_computation() -> None:
    output = make_output(1, seed=2)
    targets = make_targets([3, 2], seed=2)
    loss = make_criterion()(output, targets)
    (matches,) = loss.indices
    stage = output.stages[0]
    num_gt = 5

    cls_targets = torch.zeros_like(stage.logits)
    l1 = giou = torch.tensor(0.0)
    for i, ((pred, gt), target) in enumerate(zip(matches, targets, strict=True)):
        h, w = (float(v) for v in SIZES[i])
        whwh = torch.tensor([w, h, w, h])
        cls_targets[i, pred, target.labels[gt]] = 1.0
        pred_boxes, gt_boxes = stage.boxes[i, pred], target.boxes[gt]
        l1 = l1 + (pred_boxes / whwh - gt_boxes / whwh).abs().sum()
        for b, g in zip(pred_boxes, gt_boxes, strict=True):
            inter_wh = (torch.min(b[2:], g[2:]) - torch.max(b[:2], g[:2])).clamp(min=0)
            inter = inter_wh.prod()
            union = (b[2:] - b[:2]).prod() + (g[2:] - g[:2]).prod() - inter
            hull = (torch.max(b[2:], g[2:]) - torch.min(b[:2], g[:2])).prod()
            giou = giou + 1 - (inter / union - (hull - union) / hull)
    focal = sigmoid_focal_loss(stage.logits, cls_targets).sum()

    torch.testing.assert_close(loss.terms["loss_cls/stage0"], 2 * focal / num_gt)
    torch.testing.assert_close(loss.terms["loss_l1/stage0"], 5 * l1 / num_gt)
    torch.testing.assert_close(loss.terms["loss_giou/stage0"], 2 * giou / num_gt)


def test_no_ground_truth_clamps_the_normaliser_to_one() -> None:
    output = make_output(2)
    loss = make_criterion()(output, make_targets([0, 0]))

    for t, stage in enumerate(output.stages):
        focal = sigmoid_focal_loss(stage.logits, torch.zeros_like(stage.logits)).sum()
        torch.testing.assert_close(loss.terms[f"loss_cls/stage{t}"], 2 * focal)
        assert loss.terms[f"loss_l1/stage{t}"].item() == 0.0
        assert loss.terms[f"loss_giou/stage{t}"].item() == 0.0
    assert torch.isfinite(loss.total)
    loss.total.backward()
    assert output.stages[0].logits.grad is not None


def test_more_ground_truth_than_proposals_does_not_crash() -> None:
    output = make_output(2, num_preds=3)
    loss = make_criterion()(output, make_targets([5, 1]))

    assert torch.isfinite(loss.total)
    assert [len(pred) for pred, _ in loss.indices[0]] == [3, 1]


def test_low_precision_under_autocast_gives_float32_losses() -> None:
    output = make_output(2)
    low = ModelOutput(
        stages=[StageOutput(s.logits.bfloat16(), s.boxes.bfloat16()) for s in output.stages],
        image_sizes=SIZES,
        proposal_boxes=output.proposal_boxes,
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = make_criterion()(low, make_targets([3, 2]))

    assert loss.total.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in loss.terms.values())
    loss.total.backward()
    assert output.stages[0].boxes.grad is not None


def test_normaliser_is_averaged_over_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    output, targets = make_output(1), make_targets([3, 2])
    calls = []

    def all_reduce(tensor: Tensor) -> None:
        calls.append(tensor.item())
        tensor += 7.0  # another rank holding 7 boxes

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    # Not averaged: no collective call at all (a lone process inside a process group, as the
    # recipe's timing on rank 0 is: a collective there waits forever for the other ranks).
    single = make_criterion()(output, targets)
    assert not calls
    averaged = SetCriterion(NUM_CLASSES, HungarianMatcher(), average_over_ranks=True)
    distributed = averaged(output, targets)

    # n_gt goes from 5 to (5 + 7) / 2 = 6.
    assert calls == [5.0]
    torch.testing.assert_close(distributed.total, single.total * 5 / 6)


def test_normaliser_with_a_real_single_rank_group(tmp_path: Path) -> None:
    output, targets = make_output(1), make_targets([3, 2])
    single = make_criterion()(output, targets)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        criterion = SetCriterion(NUM_CLASSES, HungarianMatcher(), average_over_ranks=True)
        distributed = criterion(output, targets)
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(distributed.total, single.total)


@pytest.mark.parametrize("label", [NUM_CLASSES, -1])
def test_out_of_range_label_raises_naming_the_image(label: int) -> None:
    targets = make_targets([3, 2])
    targets[1].labels[1] = label
    with pytest.raises(ValueError, match=rf"image 1 in the batch has label {label} outside"):
        make_criterion()(make_output(2), targets)


def test_inverted_target_boxes_raise_naming_the_image() -> None:
    """COCO's [x, y, w, h] passed as xyxy: a finite loss against the wrong boxes, silently."""
    targets = make_targets([3, 2])
    x1, y1, x2, y2 = targets[1].boxes[0].tolist()
    targets[1].boxes[0] = torch.tensor([x2, y1, x1, y2])
    with pytest.raises(ValueError, match=r"image 1 in the batch has box .* with x2 < x1"):
        make_criterion()(make_output(2), targets)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_target_boxes_raise_naming_the_image(value: float) -> None:
    """A data error, not diverged predictions: the matcher's NonFiniteCostError would make the
    trainer skip the step and carry on."""
    targets = make_targets([3, 2])
    targets[1].boxes[0, 2] = value
    with pytest.raises(ValueError, match=r"image 1 in the batch has box .* NaN or infinite") as e:
        make_criterion()(make_output(2), targets)
    assert not isinstance(e.value, NonFiniteCostError)


def test_empty_image_size_raises_naming_the_image() -> None:
    output = make_output(2)
    output.image_sizes = torch.tensor([[80, 120], [0, 48]])
    with pytest.raises(ValueError, match=r"image 1 in the batch has size \(h, w\) = \[0, 48\]"):
        make_criterion()(output, make_targets([3, 2]))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.int8, torch.uint8])
def test_any_integer_label_dtype_gives_the_int64_loss(dtype: torch.dtype) -> None:
    """uint8 labels used to index the class targets as a mask, int8 ones to raise IndexError."""
    output, targets = make_output(2), make_targets([3, 2])
    narrow = [Target(t.boxes, t.labels.to(dtype)) for t in targets]

    expected = make_criterion()(output, targets)
    loss = make_criterion()(output, narrow)

    torch.testing.assert_close(loss.total, expected.total)


def test_malformed_targets_raise() -> None:
    criterion, output = make_criterion(), make_output(2)
    with pytest.raises(ValueError, match="got 1 targets for a batch of 2 images"):
        criterion(output, make_targets([3, 2])[:1])
    bad_boxes = make_targets([3, 2])
    bad_boxes[0] = Target(torch.zeros(3, 5), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"image 0 in the batch: boxes must be \(M, 4\)"):
        criterion(output, bad_boxes)
    float_labels = make_targets([3, 2])
    float_labels[1] = Target(float_labels[1].boxes, float_labels[1].labels.float())
    with pytest.raises(ValueError, match="image 1 in the batch: labels must be integers"):
        criterion(output, float_labels)


def test_wrong_number_of_classes_raises() -> None:
    with pytest.raises(ValueError, match=r"stage 0: expected logits \(B, N, 7\)"):
        SetCriterion(7, HungarianMatcher())(make_output(2), make_targets([1, 1]))


def test_build_criterion_reads_the_config() -> None:
    cfg = Config()
    cfg.model.num_classes = 3
    cfg.loss.l1_weight = 4.0
    cfg.loss.cost_eps = 1e-12
    cfg.loss.deep_supervision = False
    criterion = build_criterion(cfg)

    assert criterion.num_classes == 3
    assert criterion.l1_weight == 4.0 and criterion.matcher.l1_weight == 4.0
    assert criterion.matcher.eps == 1e-12
    assert not criterion.deep_supervision

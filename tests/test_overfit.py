"""End to end: a tiny Sparse R-CNN overfits two synthetic images (issue 2's sanity check)."""

from __future__ import annotations

import torch

from sparsercnn import build_model, build_postprocessor, get_preset
from sparsercnn.loss import build_criterion
from sparsercnn.ops.boxes import box_iou
from sparsercnn.structures import Target


def synthetic_image(boxes: list[list[float]], colours: list[tuple[int, int, int]]) -> torch.Tensor:
    image = torch.full((3, 96, 96), 40, dtype=torch.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes, colours, strict=True):
        image[:, int(y1) : int(y2), int(x1) : int(x2)] = torch.tensor(colour)[:, None, None]
    return image


def test_tiny_model_overfits_two_images() -> None:
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    cfg.model.proposal_init = "grid"
    cfg.model.backbone_width = 32  # the demo's half-width ResNet-18: the same test, 2x faster
    model = build_model(cfg)
    criterion = build_criterion(cfg)
    boxes = [[[8.0, 10.0, 40.0, 50.0], [56.0, 30.0, 88.0, 80.0]], [[20.0, 20.0, 70.0, 60.0]]]
    labels = [[0, 1], [1]]
    colours = [[(220, 40, 40), (40, 220, 40)], [(40, 220, 40)]]
    images = [synthetic_image(b, c) for b, c in zip(boxes, colours, strict=True)]
    targets = [
        Target(torch.tensor(b), torch.tensor(lab)) for b, lab in zip(boxes, labels, strict=True)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    losses = []
    for _ in range(150):
        loss = criterion(model(images), targets).total
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    model.eval()
    with torch.no_grad():
        detections = build_postprocessor(cfg)(model(images), [(96, 96), (96, 96)])
    for det, target in zip(detections, targets, strict=True):
        # Every ground-truth box is found, with the right class, among the top detections.
        top = det["scores"].argsort(descending=True)[:5]
        iou, _ = box_iou(target.boxes, det["boxes"][top])
        for gt_index, gt_label in enumerate(target.labels.tolist()):
            hits = (iou[gt_index] > 0.5) & (det["labels"][top] == gt_label)
            assert hits.any(), f"ground truth {gt_index} not found: {det}"

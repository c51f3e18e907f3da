"""Inference over a loader and COCO evaluation of a (random) tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.loader import build_test_loader
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.engine.inference import evaluate, run_inference
from sparsercnn.model import PostProcessor, SparseRCNN, build_model, build_postprocessor
from tests.synthetic_coco import SyntheticCoco, tiny_config


def _setup(data: SyntheticCoco) -> tuple[SparseRCNN, PostProcessor, CocoDataset]:
    cfg = tiny_config()
    cfg.model.clip_boxes = False  # keep every box: check the rescaling itself
    torch.manual_seed(0)
    dataset = CocoDataset(
        data.json_path, data.image_dir, build_test_transform(cfg.input), skip_unreadable=False
    )
    return build_model(cfg), build_postprocessor(cfg), dataset


def test_run_inference_returns_original_pixel_boxes(tiny_coco: SyntheticCoco) -> None:
    model, postprocessor, dataset = _setup(tiny_coco)
    model.train()
    loader = build_test_loader(dataset, batch_size=4, num_workers=0)
    image_ids, detections, timing = run_inference(model, postprocessor, loader)
    assert model.training  # mode restored
    assert image_ids == dataset.image_ids
    assert timing.num_images == tiny_coco.num_images
    assert 0 < timing.model_seconds <= timing.total_seconds
    # Same as running the model by hand and rescaling to the original (not the input) size.
    sample = dataset[0]
    assert sample.image.shape[1:] != sample.original_size  # the transform resized it
    with torch.no_grad():
        expected = postprocessor(model.eval()([sample.image]), [sample.original_size])[0]
    # Padding to a batch changes the float rounding a little; rescaling errors are pixels.
    torch.testing.assert_close(detections[0]["boxes"], expected["boxes"], atol=0.05, rtol=1e-3)
    torch.testing.assert_close(detections[0]["scores"], expected["scores"], atol=1e-3, rtol=1e-3)
    assert all(d["boxes"].device.type == "cpu" for d in detections)


def test_evaluate_scores_and_writes_results(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    model, postprocessor, dataset = _setup(tiny_coco)
    evaluation = evaluate(model, postprocessor, dataset, batch_size=3)
    assert evaluation is not None
    result = evaluation.result
    assert evaluation.timing.num_images == tiny_coco.num_images
    assert 0 < evaluation.timing.model_seconds <= evaluation.timing.total_seconds
    assert result.num_images == tiny_coco.num_images
    assert 0.0 <= result.AP <= 1.0
    assert evaluation is not None
    results_path = evaluation.write_results(dataset.category_map.category_ids, tmp_path / "r.json")
    records = json.loads(results_path.read_text())
    assert len(records) == result.num_detections
    assert {r["category_id"] for r in records} <= {1, 3}

"""Training's own evaluation is the evaluation: ``sparsercnn eval`` of the saved model file
reproduces it exactly, and the end of training reuses it instead of running the model again."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparsercnn.engine import inference
from sparsercnn.engine.pipeline import (
    evaluate_model_file,
    train_from_coco,
)
from tests.synthetic_coco import SyntheticCoco, tiny_config


def test_eval_of_the_saved_model_reproduces_training_evaluation(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config()
    cfg.train.batch_size = 2  # the training batch no longer decides the evaluation batches
    cfg.input.test_batch_size = 3
    passes: list[int] = []
    evaluate = inference.evaluate

    def counting_evaluate(*args: object, **kwargs: object) -> inference.Evaluation | None:
        passes.append(1)
        return evaluate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("sparsercnn.engine.trainer.evaluate", counting_evaluate)
    data = {"train_json": tiny_coco.json_path, "train_images": tiny_coco.image_dir}
    result = train_from_coco(
        cfg,
        **data,
        val_json=tiny_coco.json_path,
        val_images=tiny_coco.image_dir,
        output_dir=tmp_path / "run",
    )
    assert len(passes) == 1  # eval_period 0: one evaluation, at the end
    report = result.evaluation_report
    assert report is not None and report.evaluation is result.best_evaluation
    assert report.model_file == result.model_best_path

    again = evaluate_model_file(
        report.model_file, tiny_coco.json_path, tiny_coco.image_dir, num_workers=0
    )
    assert again.evaluation.image_ids == report.evaluation.image_ids
    for trained, evaluated in zip(
        report.evaluation.detections, again.evaluation.detections, strict=True
    ):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(trained[key], evaluated[key]), key
    assert again.result.to_dict() == report.result.to_dict()

"""Training's own evaluation is the evaluation: ``sparsercnn eval`` of the saved model file
reproduces it exactly, and the end of training reuses it instead of running the model again."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.engine import inference
from sparsercnn.engine.model_evaluation import evaluate_model_file
from sparsercnn.engine.pipeline import train_from_coco
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

    monkeypatch.setattr("sparsercnn.engine.training_evaluation.evaluate", counting_evaluate)
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


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_during_the_final_evaluation_keeps_the_last_steps(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final evaluation and checkpoint defer a Ctrl-C as the periodic ones do: the run stops
    once the last step is checkpointed (with that evaluation), instead of losing every step
    since the last periodic checkpoint."""
    cfg = tiny_config()
    evaluate = inference.evaluate

    def interrupted_evaluate(*args: object, **kwargs: object) -> inference.Evaluation | None:
        signal.raise_signal(signal.SIGINT)
        return evaluate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("sparsercnn.engine.training_evaluation.evaluate", interrupted_evaluate)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_from_coco(
            cfg,
            train_json=tiny_coco.json_path,
            train_images=tiny_coco.image_dir,
            val_json=tiny_coco.json_path,
            val_images=tiny_coco.image_dir,
            output_dir=run,
        )
    assert [p.name for p in run.glob("checkpoint_*.pt")] == ["checkpoint_0000003.pt"]
    assert not (run / "model_final.safetensors").exists()
    assert '"eval"' in (run / "metrics.jsonl").read_text()


def test_after_a_resume_the_report_is_of_model_best(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluations at 2 and 4, resumed in between: the best AP (at 2, the model of
    model_best) was kept only as a number, so the result had no best and the report drew
    model_final; a finished run resumed reported nothing at all. One pass of each model an
    invocation reports or evaluates: the resumed run's of iteration 4 and of model_best (whose
    detections no earlier invocation kept), the finished run's of model_best alone."""
    passes: list[int] = []
    run_inference = inference.run_inference

    def counted(*args: Any, **kwargs: Any) -> Any:
        passes.append(1)
        return run_inference(*args, **kwargs)

    monkeypatch.setattr(inference, "run_inference", counted)
    cfg = tiny_config()
    cfg.train.checkpoint_period = cfg.train.eval_period = 2
    cfg.train.max_iter = 2
    data = {
        "train_json": tiny_coco.json_path,
        "train_images": tiny_coco.image_dir,
        "val_json": tiny_coco.json_path,
        "val_images": tiny_coco.image_dir,
        "output_dir": tmp_path / "run",
    }
    train_from_coco(cfg, **data)
    cfg.train.max_iter = 4
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evaluated_at_2 = next(r["eval"] for r in records if "eval" in r)
    for expected_passes in (2, 1):  # resumed from 2 to 4, then the finished run resumed
        passes.clear()
        result = train_from_coco(cfg, **data, resume=True)
        assert len(passes) == expected_passes
        # The tiny model's AP does not improve over 2 steps: the first evaluation stays best.
        assert result.best_iteration == 2 and result.best_ap == evaluated_at_2["AP"]
        report = result.evaluation_report
        assert report is not None and report.model_file == result.model_best_path
        assert report.result.to_dict() == evaluated_at_2

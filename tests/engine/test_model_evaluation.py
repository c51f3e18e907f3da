"""``evaluate_model_file`` and ``evaluate_onnx_file``: their checks before the evaluation, and
the report and files they write."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine import model_evaluation
from sparsercnn.export import onnx_runtime
from tests.synthetic_coco import SyntheticCoco, tiny_config
from tests.tiny_model import write_tiny_model_file


def test_eval_of_some_stages_says_so_and_writes_fractions(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    metrics, results = tmp_path / "metrics.json", tmp_path / "results.json"
    report = model_evaluation.evaluate_model_file(
        model,
        tiny_coco.json_path,
        tiny_coco.image_dir,
        num_stages=1,
        num_workers=0,
        metrics_path=metrics,
        results_path=results,
    )
    assert "scored: the detections of stage 1 (--stages 1)" in report.format()
    assert "images/s model only (forward pass)," in report.format()
    written = json.loads(metrics.read_text())
    assert written["model_time_covers"] == "forward pass"
    assert written["num_stages"] == 1 and written["num_images"] == tiny_coco.num_images
    for name in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"):
        assert written[name] == getattr(report.result, name) and 0 <= written[name] <= 1
    assert written["num_detections"] == len(json.loads(results.read_text()))
    full = model_evaluation.evaluate_model_file(model, tiny_coco.json_path, tiny_coco.image_dir)
    assert "--stages" not in full.format()


def test_batch_size_zero_is_refused_not_taken_as_the_default(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """``batch_size or test_batch_size`` took 0 for "the model's own"; None means that."""
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=f"batch_size must be an integer >= 1.*got {bad}"):
            model_evaluation.evaluate_model_file(
                model, tiny_coco.json_path, tiny_coco.image_dir, batch_size=bad
            )  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=f"batch_size must be an integer >= 1.*got {bad}"):
            model_evaluation.evaluate_onnx_file(
                tmp_path / "m.onnx", tiny_coco.json_path, tiny_coco.image_dir, batch_size=bad
            )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_stages \(--stages\) 1.5: .* has stages 1..2"):
        model_evaluation.evaluate_model_file(
            model, tiny_coco.json_path, tiny_coco.image_dir, num_stages=1.5
        )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "device 'gpu' is not a device; use 'cpu', 'cuda' or 'cuda:N'"),
        ("mps", "device 'mps': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
    ],
)
def test_a_device_that_is_not_one_here_is_refused_in_the_runtime_s_words(
    tiny_coco: SyntheticCoco, tmp_path: Path, device: str, message: str
) -> None:
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    data = (model, tiny_coco.json_path, tiny_coco.image_dir)
    with pytest.raises(ValueError, match=f"^{message}$"):
        model_evaluation.evaluate_model_file(*data, device=device)
    with pytest.raises(ValueError, match=f"^{message}$"):
        model_evaluation.load_model_and_dataset(*data, device=device)
    report = model_evaluation.evaluate_model_file(*data, device=torch.device("cpu"), num_workers=0)
    assert report.device == "cpu" and report.to_dict()["device"] == "cpu"


def test_output_paths_it_cannot_write_are_refused_before_evaluating(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder as results_path failed only after the whole evaluation; one path for both
    files had the metrics silently replace the results."""

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("evaluated before checking its outputs")

    monkeypatch.setattr(model_evaluation, "evaluate", evaluate)
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    data = (tiny_coco.json_path, tiny_coco.image_dir)
    with pytest.raises(ValueError, match=f"results_path {tmp_path} is a folder"):
        model_evaluation.evaluate_model_file(model, *data, results_path=tmp_path)
    with pytest.raises(ValueError, match=f"metrics_path {tmp_path} is a folder"):
        model_evaluation.evaluate_onnx_file(tmp_path / "m.onnx", *data, metrics_path=tmp_path)
    same = tmp_path / "out.json"
    with pytest.raises(ValueError, match="results_path and metrics_path both name"):
        model_evaluation.evaluate_model_file(model, *data, results_path=same, metrics_path=same)


def test_on_accepted_runs_after_every_check_and_before_the_evaluation(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``eval`` warns there that its outputs will be replaced: it warned before the model's
    refusals (--stages, --precision), for a command that then replaced nothing."""
    events: list[str] = []

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        events.append("evaluate")
        raise RuntimeError("stop here")

    monkeypatch.setattr(model_evaluation, "evaluate", evaluate)
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    data = (model, tiny_coco.json_path, tiny_coco.image_dir)
    refused: list[dict[str, Any]] = [{"num_stages": 3}, {"precision": "int8"}]
    for options in refused:
        with pytest.raises(ValueError):
            model_evaluation.evaluate_model_file(
                *data, on_accepted=lambda: events.append("accepted"), **options
            )
    other = write_tiny_model_file(tmp_path / "other.safetensors")  # another label map
    with pytest.raises(ValueError, match="categories"):
        model_evaluation.evaluate_model_file(
            other, *data[1:], on_accepted=lambda: events.append("accepted")
        )
    assert events == []
    with pytest.raises(RuntimeError, match="stop here"):
        model_evaluation.evaluate_model_file(*data, on_accepted=lambda: events.append("accepted"))
    assert events == ["accepted", "evaluate"]


@pytest.mark.parametrize(
    ("device", "provider", "reported"),
    [
        ("cpu", "CPUExecutionProvider", "cpu (onnxruntime CPUExecutionProvider)"),
        ("cuda:0", "CUDAExecutionProvider", "cuda:0 (onnxruntime CUDAExecutionProvider)"),
    ],
)
def test_an_onnx_report_names_the_device_and_provider_its_session_ran_on(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    provider: str,
    reported: str,
) -> None:
    """``evaluate_onnx_file`` made a CPU session whatever ``--device`` asked; the session is
    made on the device asked, and the report names it and the provider that ran it."""
    asked: list[Any] = []

    class Session:
        runs_on = onnx_runtime.OnnxPredictor.runs_on  # the words of the report

        def __init__(self, path: Path, **kwargs: Any) -> None:
            asked.append(kwargs["device"])
            self.path, self.device, self.provider = path, device, provider
            self.precision, self.fixed_batch = "fp32", None
            self.config = tiny_config()
            self.categories = CategoryMap.from_coco(tiny_coco.categories)

    timing = SimpleNamespace(
        model_seconds_per_image=0.5, total_seconds_per_image=1.0, model_covers="x", num_images=1
    )
    evaluation = SimpleNamespace(
        result=SimpleNamespace(to_dict=dict), timing=timing, num_stages=None
    )
    monkeypatch.setattr(onnx_runtime, "OnnxPredictor", Session)
    monkeypatch.setattr(model_evaluation, "evaluate", lambda *args, **kwargs: evaluation)
    metrics = tmp_path / "metrics.json"
    report = model_evaluation.evaluate_onnx_file(
        tmp_path / "m.onnx",
        tiny_coco.json_path,
        tiny_coco.image_dir,
        device=device,
        metrics_path=metrics,
    )
    assert asked == [device]
    assert report.device == reported
    assert json.loads(metrics.read_text())["device"] == reported

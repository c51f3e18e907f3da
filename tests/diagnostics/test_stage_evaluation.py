"""Per-stage evaluation: the last stage equals ordinary evaluation, the first equals evaluation
stopped after one stage, latency per k, and the written JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.diagnostics import stage_evaluation
from sparsercnn.diagnostics.stage_evaluation import (
    StageEvaluation,
    evaluate_model_file_stages,
    measure_stage_latency,
    write_stage_evaluation,
)
from sparsercnn.engine.inference import evaluate
from sparsercnn.engine.model_evaluation import evaluate_model_file
from sparsercnn.evaluation import CocoEvaluator
from sparsercnn.model import build_model, build_postprocessor
from sparsercnn.model_file import load_model_file
from tests import synthetic_coco
from tests.diagnostics.diagnostics_data import DiagnosticsData


@pytest.fixture(scope="module")
def evaluation(data: DiagnosticsData) -> StageEvaluation:
    return evaluate_model_file_stages(
        data.model_file, data.json_path, data.image_dir, num_latency_images=1
    )


def test_last_stage_equals_normal_evaluation(
    evaluation: StageEvaluation, data: DiagnosticsData
) -> None:
    report = evaluate_model_file(data.model_file, data.json_path, data.image_dir, num_workers=0)
    assert report.result.AP > 0  # the comparison means something
    assert evaluation.results[-1].to_dict() == report.result.to_dict()
    assert evaluation.stages[-1].AP == report.result.AP


def test_first_stage_equals_evaluation_stopped_after_one_stage(
    evaluation: StageEvaluation, data: DiagnosticsData
) -> None:
    report = evaluate_model_file(
        data.model_file, data.json_path, data.image_dir, num_workers=0, num_stages=1
    )
    assert evaluation.results[0].to_dict() == report.result.to_dict()
    assert evaluation.results[0].to_dict() != evaluation.results[1].to_dict()


def test_rows_and_latency(evaluation: StageEvaluation) -> None:
    assert [row.stage for row in evaluation.stages] == [1, 2]
    assert evaluation.num_images == 5 and evaluation.num_latency_images == 1
    for row, result in zip(evaluation.stages, evaluation.results, strict=True):
        assert (row.AP, row.AP50, row.AP75) == (result.AP, result.AP50, result.AP75)
        assert row.seconds_per_image is not None and row.seconds_per_image > 0
    table = evaluation.format_table()
    assert "ms/image" in table and len(table.splitlines()) == 4


def test_write_stage_evaluation(evaluation: StageEvaluation, tmp_path: Path) -> None:
    paths = write_stage_evaluation(evaluation, tmp_path / "out")
    assert json.loads(paths["json"].read_text()) == evaluation.to_dict()
    with Image.open(paths["plot"]) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_latency_needs_images() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        measure_stage_latency(build_model("tiny"), [])


def test_latency_restores_training_mode() -> None:
    model = build_model("tiny").train()
    seconds = measure_stage_latency(model, [torch.zeros(3, 64, 64, dtype=torch.uint8)], warmup=0)
    assert len(seconds) == model.num_stages and model.training


class _ClockedModel(torch.nn.Module):
    """A stand-in detector on a fake clock: a pass costs ``k`` ms for ``k`` stages, plus
    100 ms the first time an input size meets a stage (a cold cache), and is recorded."""

    num_stages = 3

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.now = 0.0
        self.calls: list[tuple[tuple[int, ...], int]] = []
        self._warm: set[tuple[tuple[int, ...], int]] = set()

    def forward(self, images: list[torch.Tensor], num_stages: int) -> None:
        size = tuple(images[0].shape[1:])
        self.calls.append((size, num_stages))
        self.now += num_stages / 1000
        for stage in range(num_stages):
            if (size, stage) not in self._warm:
                self._warm.add((size, stage))
                self.now += 0.1


def test_latency_warms_every_image_size_through_every_stage_before_timing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Warming up the first image's size only left the other sizes cold for k = 1, the first
    timed: k = 1 came out slowest (2630 ms against 469 ms for all stages on a GPU)."""
    model = _ClockedModel()
    monkeypatch.setattr(stage_evaluation.time, "perf_counter", lambda: model.now)
    sizes = [(64, 96), (96, 64), (64, 96)]
    images = [torch.zeros(3, *size, dtype=torch.uint8) for size in sizes]
    seconds = measure_stage_latency(model, images)  # type: ignore[arg-type]
    # Every image once with all stages, untimed; then every image for k = 1, 2, 3.
    assert model.calls == [(size, 3) for size in sizes] + [
        (size, k) for k in (1, 2, 3) for size in sizes
    ]
    assert seconds == pytest.approx([0.001, 0.002, 0.003])


def test_reduced_jpegs_are_mapped_as_ordinary_evaluation_maps_them(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2563x1283 JPEGs decoded at 1/8 (321x161 pixels covering 2568x1288): the last stage's
    records are ordinary evaluation's, which maps them by the decoded grid (the ratio of sizes
    would put the far edge up to 5 px off)."""
    coco = synthetic_coco.write_coco(tmp_path, num_images=2, size=(1283, 2563), file_format="jpg")
    evaluators: list[CocoEvaluator] = []

    class Recording(CocoEvaluator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            evaluators.append(self)

    monkeypatch.setattr(stage_evaluation, "CocoEvaluator", Recording)
    loaded = load_model_file(data.model_file)
    transform = build_test_transform(loaded.config.input)
    dataset = CocoDataset(
        coco.json_path, coco.image_dir, transform, decode_size=transform.source_size
    )
    assert dataset[0].pixel_map is not None
    postprocessor = build_postprocessor(loaded.config)

    stage_evaluation.evaluate_every_stage(loaded.model, postprocessor, dataset)
    expected = evaluate(loaded.model, postprocessor, dataset)

    assert expected is not None
    records = [
        r for image in expected.coco_results(dataset.category_map.category_ids) for r in image
    ]
    assert records and evaluators[-1].coco_results() == records


def test_every_stage_is_scored_against_one_prepared_ground_truth(
    data: DiagnosticsData, coco_index_builds: list[int]
) -> None:
    """Each stage's evaluator copied the ground truth and built its own COCO index of it."""

    indexed = coco_index_builds
    evaluation = evaluate_model_file_stages(
        data.model_file, data.json_path, data.image_dir, num_latency_images=0
    )
    assert len(evaluation.results) == 2 and len(indexed) == 1

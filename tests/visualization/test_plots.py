"""Run plots: valid PNGs from synthetic metrics, missing pieces handled, backend untouched."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from PIL import Image

from sparsercnn.evaluation import PrecisionRecallCurve
from sparsercnn.visualization import plot_precision_recall, plot_training_curves
from sparsercnn.visualization.plots import read_metrics_jsonl


def _training_record(step: int) -> dict[str, Any]:
    record: dict[str, Any] = {"iter": step, "lr": 2.5e-5 * min(1.0, step / 100), "time": 0.5}
    total = 0.0
    for stage in range(6):
        for term, scale in (("loss_cls", 2.0), ("loss_bbox", 5.0), ("loss_giou", 2.0)):
            value = scale * math.exp(-step / 400) / (stage + 1) + 0.1
            record[f"{term}/stage{stage}"] = value
            total += value
    record["loss"] = total
    return record


def _write_jsonl(path: Path, records: list[dict[str, Any]], extra_lines: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra_lines)
    return path


def _assert_png(path: Path) -> None:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
        image.verify()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_training_curves_with_eval(tmp_path: Path) -> None:
    records = [_training_record(step) for step in range(0, 1000, 10)]
    records += [
        {"iter": step, "eval": {"AP": step / 4000, "AP50": step / 2000}} for step in (250, 500, 750)
    ]
    jsonl = _write_jsonl(tmp_path / "metrics.jsonl", records, extra_lines='{"iter": 10, "lo')
    backend = matplotlib.get_backend()
    out = plot_training_curves(jsonl, tmp_path / "plots" / "training.png")
    assert out == tmp_path / "plots" / "training.png"
    _assert_png(out)
    assert matplotlib.get_backend() == backend


def test_training_curves_without_eval_or_stages(tmp_path: Path) -> None:
    records = [{"iter": i, "loss": 10.0 / (i + 1)} for i in range(5)]
    jsonl = _write_jsonl(tmp_path / "metrics.jsonl", records)
    _assert_png(plot_training_curves(jsonl, tmp_path / "training.png"))


def test_training_curves_from_empty_file(tmp_path: Path) -> None:
    jsonl = _write_jsonl(tmp_path / "metrics.jsonl", [])
    _assert_png(plot_training_curves(jsonl, tmp_path / "training.png"))


def test_read_metrics_skips_broken_lines(tmp_path: Path) -> None:
    jsonl = _write_jsonl(tmp_path / "m.jsonl", [{"iter": 1}], extra_lines="\nnot json\n[1, 2]\n")
    assert read_metrics_jsonl(jsonl) == [{"iter": 1}]


@pytest.mark.parametrize("num_classes", [0, 3, 30])
def test_precision_recall_plot(tmp_path: Path, num_classes: int) -> None:
    recall = np.linspace(0.0, 1.0, 101)
    curves = [
        PrecisionRecallCurve(
            name=f"class{k}",
            category_id=k + 1,
            recall=recall,
            precision_50=np.clip(1.0 - recall**4 * (k + 1) / num_classes, 0, 1),
            precision_50_95=np.clip(1.0 - recall**2 * (k + 1) / num_classes, 0, 1),
        )
        for k in range(num_classes)
    ]
    _assert_png(plot_precision_recall(curves, tmp_path / "pr.png"))

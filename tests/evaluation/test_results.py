"""COCO result records: xyxy -> xywh, label -> category id, atomic JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparsercnn.evaluation import detections_to_coco_results, write_results_json
from sparsercnn.evaluation.results import coco_results_to_detections
from sparsercnn.ops.boxes import box_xywh_to_xyxy
from sparsercnn.structures import Detections


def _detections() -> Detections:
    return {
        "boxes": torch.tensor([[10.0, 20.0, 110.5, 70.25], [0.123, 0.456, 3.789, 9.0]]),
        "scores": torch.tensor([0.9, 1.5e-7]),
        "labels": torch.tensor([2, 0]),
    }


def test_xyxy_to_xywh_and_category_ids() -> None:
    results = detections_to_coco_results(42, _detections(), [3, 7, 90], file_name="a/b.jpg")
    assert results[0] == {
        "image_id": 42,
        "category_id": 90,
        "bbox": [10.0, 20.0, 100.5, 50.25],
        "score": pytest.approx(0.9, abs=1e-6),
        "file_name": "a/b.jpg",
    }
    assert results[1]["category_id"] == 3
    assert results[1]["bbox"] == [0.12, 0.46, 3.67, 8.54]  # 2 decimals
    assert results[1]["score"] == pytest.approx(1.5e-7, rel=1e-5)  # tiny scores survive
    assert isinstance(results[0]["score"], float) and isinstance(results[0]["image_id"], int)


def test_mapping_label_map_equals_list() -> None:
    as_list = detections_to_coco_results(1, _detections(), [3, 7, 90])
    as_mapping = detections_to_coco_results(1, _detections(), {2: 90, 0: 3, 1: 7})
    assert as_list == as_mapping
    assert "file_name" not in as_list[0]
    with pytest.raises(ValueError, match="contiguous"):
        detections_to_coco_results(1, _detections(), {0: 3, 2: 90})


def test_json_round_trip(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=generator) * 500
    boxes = torch.cat([xy, xy + 1 + torch.rand(20, 2, generator=generator) * 200], dim=1)
    detections: Detections = {
        "boxes": boxes,
        "scores": torch.rand(20, generator=generator),
        "labels": torch.randint(0, 3, (20,), generator=generator),
    }
    results = detections_to_coco_results(7, detections, [3, 7, 90])
    path = write_results_json(results, tmp_path / "out" / "results.json")
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left
    loaded = json.loads(path.read_text())
    assert loaded == results
    back = box_xywh_to_xyxy(torch.tensor([r["bbox"] for r in loaded], dtype=torch.float64))
    torch.testing.assert_close(back, boxes.double(), atol=0.011, rtol=0)
    assert [r["category_id"] for r in loaded] == [[3, 7, 90][i] for i in detections["labels"]]


def test_empty_detections_give_no_records(tmp_path: Path) -> None:
    empty: Detections = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    assert detections_to_coco_results(1, empty, [1]) == []
    assert json.loads(write_results_json([], tmp_path / "r.json").read_text()) == []


def test_invalid_detections_raise() -> None:
    bad_label = _detections()
    bad_label["labels"] = torch.tensor([3, 0])
    with pytest.raises(ValueError, match="image 5: labels span"):
        detections_to_coco_results(5, bad_label, [3, 7, 90])
    bad_shape = _detections()
    bad_shape["scores"] = torch.tensor([0.5])
    with pytest.raises(ValueError, match="image 5"):
        detections_to_coco_results(5, bad_shape, [3, 7, 90])


def test_records_back_to_detections() -> None:
    """``eval --detections`` draws its report from a file's records: the inverse conversion."""
    detections = {
        "boxes": torch.tensor([[10.0, 20.0, 110.5, 70.25]]),
        "scores": torch.tensor([0.5]),
        "labels": torch.tensor([2]),
    }
    records = detections_to_coco_results(1, detections, [3, 7, 90])  # type: ignore[arg-type]
    back = coco_results_to_detections(records, {3: 0, 7: 1, 90: 2})
    torch.testing.assert_close(back["boxes"], detections["boxes"])
    torch.testing.assert_close(back["scores"], detections["scores"])
    assert back["labels"].tolist() == [2] and back["labels"].dtype == torch.int64
    empty = coco_results_to_detections([], {3: 0})
    assert empty["boxes"].shape == (0, 4) and empty["scores"].shape == empty["labels"].shape == (0,)

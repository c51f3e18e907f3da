"""``EvaluationReport.format``: the lines printed under the COCO table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sparsercnn.engine.evaluation_report import EvaluationReport


class _Dataset:
    """What ``format`` reads of a dataset: its length and what ``skip_invalid`` left out."""

    def __init__(self, kept: int, dropped_images: int, dropped_annotations: int) -> None:
        self.kept = kept
        self.num_dropped_images = dropped_images
        self.num_dropped_annotations = dropped_annotations

    def __len__(self) -> int:
        return self.kept


def _report(kept: int, dropped_images: int, dropped_annotations: int) -> EvaluationReport:
    evaluation = SimpleNamespace(
        result=SimpleNamespace(format_table=lambda: "COCO table"),
        timing=SimpleNamespace(
            model_seconds_per_image=0.1,
            total_seconds_per_image=0.2,
            model_covers="forward pass",
            num_images=kept,
        ),
        num_stages=None,
    )
    return EvaluationReport(
        evaluation=evaluation,  # type: ignore[arg-type]
        dataset=_Dataset(kept, dropped_images, dropped_annotations),  # type: ignore[arg-type]
        model_file=Path("model.safetensors"),
        device="cpu",
        num_proposals=16,
    )


def test_what_skip_invalid_left_out_is_counted_in_words() -> None:
    """It printed "left out 1 images and 1 annotations" and "over 1 images"."""
    text = _report(kept=1, dropped_images=1, dropped_annotations=1).format()
    assert "scored on the 1 image kept: --skip-invalid left out 1 image and 1 annotation " in text
    assert text.endswith("over 1 image")
    text = _report(kept=7, dropped_images=2, dropped_annotations=0).format()
    assert "scored on the 7 images kept: --skip-invalid left out 2 images and 0 annotations" in text
    assert "--skip-invalid" not in _report(kept=7, dropped_images=0, dropped_annotations=0).format()


def test_a_detections_file_s_report_says_it_has_no_speed() -> None:
    report = _report(kept=3, dropped_images=0, dropped_annotations=0)
    report.evaluation.timing = None
    detections = EvaluationReport(
        report.evaluation, report.dataset, None, None, None, detections_file=Path("d.json")
    )
    assert detections.detections_file == Path("d.json") and report.detections_file is None
    text = detections.format()
    assert text.endswith("scored: the detections of d.json (no model ran: no images/s figures)")
    assert "speed" not in text
    with pytest.raises(RuntimeError, match=r"^no model ran: the detections were read from d.json"):
        detections.timing  # noqa: B018


def test_a_report_is_of_a_model_file_or_of_a_detections_file() -> None:
    """Was: a detections file's report held it as its model_file, told by device None."""
    report = _report(kept=3, dropped_images=0, dropped_annotations=0)
    for model_file, detections_file in ((Path("m.safetensors"), Path("d.json")), (None, None)):
        with pytest.raises(ValueError, match="of a model file or of a detections file"):
            EvaluationReport(
                report.evaluation,
                report.dataset,
                model_file,
                "cpu",
                None,
                detections_file=detections_file,
            )

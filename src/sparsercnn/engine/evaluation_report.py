"""The record of one evaluation of a model file, ONNX file or detections file:
:class:`EvaluationReport`.

What :mod:`~sparsercnn.engine.model_evaluation` and
:mod:`~sparsercnn.engine.detections_evaluation` return and training's final evaluation
reuses: the metrics, the speed (where a model ran) and the detections behind them, printed as a
table (:meth:`EvaluationReport.format`), written as JSON (:meth:`EvaluationReport.write_files`), and
drawn as plots by :mod:`~sparsercnn.diagnostics.evaluation_plots`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.data.coco import CocoDataset
from sparsercnn.engine.inference import Evaluation, Timing
from sparsercnn.evaluation.coco_evaluator import EvaluationResult
from sparsercnn.text import counted


@dataclass
class EvaluationReport:
    """One evaluation of a model file (or of a detections file): metrics, speed and the
    detections behind them.

    Attributes:
        evaluation: metrics, timing and per-image detections (:func:`evaluate`); no timing for
            a detections file.
        dataset: the evaluated dataset (ground truth, label map, image folder), for plots.
        model_file: the model or ONNX file that ran; None for a detections file.
        device: where the model ran (``cpu``, ``cuda:0``); for an ONNX file, where its
            onnxruntime session ran and by which execution provider
            (:class:`~sparsercnn.export.onnx_runtime.OnnxPredictor`'s ``device`` and
            ``provider``): ``cpu (onnxruntime CPUExecutionProvider)``, ``cuda:0 (onnxruntime
            CUDAExecutionProvider)``; None for a detections file.
        num_proposals: the model's N; None for a detections file.
        precision: how it computed: ``fp32``, ``bf16`` (autocast), ``winograd`` (fp32 with
            Winograd 3x3 convolutions) or ``int8`` (a model file's int8 backbone and FPN, or
            an ONNX file quantized by ``export --int8``).
        cuda_graphs: the forward passes were replayed from CUDA graphs.
        detections_file: the COCO results file whose detections were scored, no model run
            (``model_file`` None); None where a model ran.

    Raises:
        ValueError: neither or both of ``model_file`` and ``detections_file`` are given.
    """

    evaluation: Evaluation
    dataset: CocoDataset
    model_file: Path | None
    device: str | None
    num_proposals: int | None
    precision: str = "fp32"
    cuda_graphs: bool = False
    detections_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.model_file is None) == (self.detections_file is None):
            raise ValueError(
                "an evaluation report is of a model file or of a detections file: give one of "
                f"model_file ({self.model_file}) and detections_file ({self.detections_file})"
            )

    @property
    def result(self) -> EvaluationResult:
        return self.evaluation.result

    @property
    def timing(self) -> Timing:
        """The inference pass's timing (a report of a model file only)."""
        if self.evaluation.timing is None:
            raise RuntimeError(
                f"no model ran: the detections were read from {self.detections_file}"
            )
        return self.evaluation.timing

    def to_dict(self) -> dict[str, Any]:
        """The metrics (0-1 floats under AP, AP50, AP75, APs, APm, APl, per_class), the
        annotation file scored against (``ground_truth_file``, an absolute path), the images
        scored and what ``skip_invalid`` left out of the file, and (of a model file) the speed;
        of a detections file, ``detections_file`` in place of the model's keys."""
        scope = {
            "ground_truth_file": str(self.dataset.coco_json.absolute()),
            "num_images": len(self.dataset),
            "dropped_invalid": {
                "images": self.dataset.num_dropped_images,
                "annotations": self.dataset.num_dropped_annotations,
            },
        }
        if self.detections_file is not None:
            return {**self.result.to_dict(), "detections_file": str(self.detections_file), **scope}
        return {
            **self.result.to_dict(),
            "model_file": str(self.model_file),
            **scope,
            "num_stages": self.evaluation.num_stages,
            "device": self.device,
            "precision": self.precision,
            "cuda_graphs": self.cuda_graphs,
            "model_images_per_second": 1.0 / max(self.timing.model_seconds_per_image, 1e-12),
            "model_time_covers": self.timing.model_covers,
            "end_to_end_images_per_second": 1.0 / max(self.timing.total_seconds_per_image, 1e-12),
        }

    def write_files(
        self, *, results_path: Path | None = None, metrics_path: Path | None = None
    ) -> None:
        """Write the COCO results JSON and/or :meth:`to_dict` as JSON (atomically)."""
        if results_path is not None:
            self.evaluation.write_results(self.dataset.category_map.category_ids, results_path)
        if metrics_path is not None:
            atomic_write_text(metrics_path, json.dumps(self.to_dict(), indent=2))

    def format(self) -> str:
        """The COCO table followed by the speed, saying what each figure measures (of a
        detections file, that there is none)."""
        dataset = self.dataset
        dropped = (
            f"scored on the {counted(len(dataset), 'image')} kept: --skip-invalid left out "
            f"{counted(dataset.num_dropped_images, 'image')} and "
            f"{counted(dataset.num_dropped_annotations, 'annotation')} of the file\n"
            if dataset.num_dropped_images or dataset.num_dropped_annotations
            else ""
        )
        stages = self.evaluation.num_stages
        scope = f"scored: the detections of stage {stages} (--stages {stages})\n" if stages else ""
        if self.detections_file is not None:
            return (
                f"{self.result.format_table()}\n{dropped}scored: the detections of "
                f"{self.detections_file} (no model ran: no images/s figures)"
            )
        how = self.precision + (", CUDA graphs" if self.cuda_graphs else "")
        model_rate = 1.0 / max(self.timing.model_seconds_per_image, 1e-12)
        total_rate = 1.0 / max(self.timing.total_seconds_per_image, 1e-12)
        return (
            f"{self.result.format_table()}\n{scope}{dropped}"
            f"speed on {self.device} ({how}): {model_rate:.2f} images/s model only "
            f"({self.timing.model_covers}), {total_rate:.2f} images/s end to end (decode, "
            f"resize, forward, post-processing) over {counted(self.timing.num_images, 'image')}"
        )

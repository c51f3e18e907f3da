"""COCO evaluation: detections -> COCO result records -> bbox metrics (never imports the model)."""

from sparsercnn.evaluation.coco_evaluator import (
    CocoEvaluator,
    EvaluationResult,
    PrecisionRecallCurve,
    precision_recall_curves,
)
from sparsercnn.evaluation.ground_truth import CocoGroundTruth
from sparsercnn.evaluation.results import (
    CocoResult,
    detections_to_coco_results,
    write_results_json,
)

__all__ = [
    "CocoEvaluator",
    "CocoGroundTruth",
    "CocoResult",
    "EvaluationResult",
    "PrecisionRecallCurve",
    "detections_to_coco_results",
    "precision_recall_curves",
    "write_results_json",
]

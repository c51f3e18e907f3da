"""Diagnostics: see what a trained model does, beyond its COCO metrics.

- :mod:`~sparsercnn.diagnostics.stage_boxes`: the learned proposals and every stage's boxes on
  an image, and the refinement figure (paper Fig. 5);
- :mod:`~sparsercnn.diagnostics.stage_evaluation`: AP of every stage's output from one pass,
  and the latency of stopping after k stages;
- :mod:`~sparsercnn.diagnostics.slot_statistics`: what each of the N proposal slots matches;
- :mod:`~sparsercnn.diagnostics.confusion` and :mod:`~sparsercnn.diagnostics.ground_truth`:
  the confusion matrix and the dataset label summary;
- :mod:`~sparsercnn.diagnostics.evaluation_plots`: the plots of an evaluation run.

This package sits beside the engine: it may import the model, loss, data, evaluation,
visualization, engine and predictor, never the CLI. The figures themselves are drawn by
:mod:`sparsercnn.visualization`.
"""

from sparsercnn.diagnostics.confusion import confusion_matrix, greedy_match, image_confusion
from sparsercnn.diagnostics.evaluation_plots import (
    write_detection_plots,
    write_evaluation_report,
)
from sparsercnn.diagnostics.ground_truth import LabelSummary, ground_truth_by_image
from sparsercnn.diagnostics.slot_statistics import (
    SlotStatistics,
    collect_slot_statistics,
    slot_statistics_of_model_file,
    write_slot_statistics,
)
from sparsercnn.diagnostics.stage_boxes import (
    DetectionTracks,
    StageBoxes,
    compute_stage_boxes,
    default_figure_stages,
    draw_model_stage_figure,
    final_detection_tracks,
    write_stage_figure,
)
from sparsercnn.diagnostics.stage_evaluation import (
    StageEvaluation,
    StageMetrics,
    evaluate_every_stage,
    evaluate_model_file_stages,
    evaluate_stages,
    measure_stage_latency,
    write_stage_evaluation,
)

__all__ = [
    "DetectionTracks",
    "LabelSummary",
    "SlotStatistics",
    "StageBoxes",
    "StageEvaluation",
    "StageMetrics",
    "collect_slot_statistics",
    "compute_stage_boxes",
    "confusion_matrix",
    "default_figure_stages",
    "draw_model_stage_figure",
    "evaluate_every_stage",
    "evaluate_model_file_stages",
    "evaluate_stages",
    "final_detection_tracks",
    "greedy_match",
    "ground_truth_by_image",
    "image_confusion",
    "measure_stage_latency",
    "slot_statistics_of_model_file",
    "write_detection_plots",
    "write_evaluation_report",
    "write_slot_statistics",
    "write_stage_evaluation",
    "write_stage_figure",
]

"""Visualization: detections drawn on images and run plots (never imports the model)."""

from sparsercnn.visualization.diagnostic_plots import (
    plot_confusion_matrix,
    plot_dataset_summary,
    plot_slot_centres,
    plot_slot_match_counts,
    plot_slot_size_histograms,
    plot_stage_metrics,
)
from sparsercnn.visualization.draw import (
    class_color,
    draw_detections,
    draw_ground_truth_and_predictions,
)
from sparsercnn.visualization.plots import plot_precision_recall, plot_training_curves
from sparsercnn.visualization.stage_figure import (
    StagePanel,
    Trajectories,
    compose_panels,
    draw_proposals,
    draw_stage_figure,
    draw_trajectories,
)

__all__ = [
    "StagePanel",
    "Trajectories",
    "class_color",
    "compose_panels",
    "draw_detections",
    "draw_ground_truth_and_predictions",
    "draw_proposals",
    "draw_stage_figure",
    "draw_trajectories",
    "plot_confusion_matrix",
    "plot_dataset_summary",
    "plot_precision_recall",
    "plot_slot_centres",
    "plot_slot_match_counts",
    "plot_slot_size_histograms",
    "plot_stage_metrics",
    "plot_training_curves",
]

"""Visualization: detections drawn on images and run plots (never imports the model)."""

from sparsercnn.visualization.draw import (
    class_color,
    draw_detections,
    draw_ground_truth_and_predictions,
)
from sparsercnn.visualization.plots import plot_precision_recall, plot_training_curves

__all__ = [
    "class_color",
    "draw_detections",
    "draw_ground_truth_and_predictions",
    "plot_precision_recall",
    "plot_training_curves",
]

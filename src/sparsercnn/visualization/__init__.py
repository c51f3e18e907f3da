"""Visualization: detections drawn on images and run plots (never imports the model).

Names are resolved lazily, so that a module of plain numbers such as
:mod:`~sparsercnn.visualization.panel_size` imports without torch or matplotlib (the command
line's ``--help`` reads it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsercnn.lazy_import import lazy_exports as _lazy_exports

_EXPORTS = {
    "plot_confusion_matrix": "sparsercnn.visualization.diagnostic_plots",
    "plot_dataset_summary": "sparsercnn.visualization.diagnostic_plots",
    "plot_slot_centres": "sparsercnn.visualization.diagnostic_plots",
    "plot_slot_match_counts": "sparsercnn.visualization.diagnostic_plots",
    "plot_slot_size_histograms": "sparsercnn.visualization.diagnostic_plots",
    "plot_stage_metrics": "sparsercnn.visualization.diagnostic_plots",
    "class_color": "sparsercnn.visualization.draw",
    "draw_detections": "sparsercnn.visualization.draw",
    "draw_ground_truth_and_predictions": "sparsercnn.visualization.draw",
    "compose_panels": "sparsercnn.visualization.panels",
    "plot_precision_recall": "sparsercnn.visualization.plots",
    "plot_training_curves": "sparsercnn.visualization.plots",
    "StagePanel": "sparsercnn.visualization.stage_figure",
    "Trajectories": "sparsercnn.visualization.stage_figure",
    "draw_proposals": "sparsercnn.visualization.stage_figure",
    "draw_stage_figure": "sparsercnn.visualization.stage_figure",
    "draw_trajectories": "sparsercnn.visualization.stage_figure",
}

if TYPE_CHECKING:
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
    from sparsercnn.visualization.panels import compose_panels
    from sparsercnn.visualization.plots import plot_precision_recall, plot_training_curves
    from sparsercnn.visualization.stage_figure import (
        StagePanel,
        Trajectories,
        draw_proposals,
        draw_stage_figure,
        draw_trajectories,
    )


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())


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

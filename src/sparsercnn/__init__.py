"""Sparse R-CNN: end-to-end object detection with learnable proposals, in pure PyTorch.

Public entry points: :class:`Predictor` (a trained model file on paths, folders, PIL images or
arrays) and its :class:`Prediction` per image (detections as absolute xyxy pixels of the original
image); :func:`train_from_coco`, :func:`evaluate_model_file` and :func:`evaluate_onnx_file`
(whole jobs on COCO-format data); :func:`load_model_file` and :func:`save_model_file` (the
``.safetensors`` model file, with its :class:`CategoryMap` label map); :func:`build_model` (a
randomly initialised detector from a preset or config) with :func:`build_postprocessor`,
:func:`get_preset`, and the data contracts in :mod:`sparsercnn.structures`. Names are resolved
lazily so that ``import sparsercnn.data`` (or the CLI's ``--help``) does not load the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsercnn.lazy_import import lazy_exports as _lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "sparsercnn.config",
    "PRESETS": "sparsercnn.presets",
    "get_preset": "sparsercnn.presets",
    "SparseRCNN": "sparsercnn.model",
    "PostProcessor": "sparsercnn.model",
    "build_model": "sparsercnn.model",
    "build_postprocessor": "sparsercnn.model",
    "Predictor": "sparsercnn.predictor",
    "Prediction": "sparsercnn.prediction",
    "CategoryMap": "sparsercnn.data.categories",
    "LoadedModel": "sparsercnn.model_file",
    "load_model_file": "sparsercnn.model_file",
    "save_model_file": "sparsercnn.model_file",
    "train_from_coco": "sparsercnn.engine.pipeline",
    "evaluate_model_file": "sparsercnn.engine.model_evaluation",
    "evaluate_onnx_file": "sparsercnn.engine.model_evaluation",
}

if TYPE_CHECKING:
    from sparsercnn.config import Config
    from sparsercnn.data.categories import CategoryMap
    from sparsercnn.engine.model_evaluation import evaluate_model_file, evaluate_onnx_file
    from sparsercnn.engine.pipeline import train_from_coco
    from sparsercnn.model import PostProcessor, SparseRCNN, build_model, build_postprocessor
    from sparsercnn.model_file import LoadedModel, load_model_file, save_model_file
    from sparsercnn.prediction import Prediction
    from sparsercnn.predictor import Predictor
    from sparsercnn.presets import PRESETS, get_preset


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "PRESETS",
    "CategoryMap",
    "Config",
    "LoadedModel",
    "PostProcessor",
    "Prediction",
    "Predictor",
    "SparseRCNN",
    "__version__",
    "build_model",
    "build_postprocessor",
    "evaluate_model_file",
    "evaluate_onnx_file",
    "get_preset",
    "load_model_file",
    "save_model_file",
    "train_from_coco",
]

"""Sparse R-CNN: end-to-end object detection with learnable proposals, in pure PyTorch.

Public entry points: :class:`Predictor` (a trained model file on paths, folders, PIL images or
arrays; detections as absolute xyxy pixels of each original image), :func:`build_model` (a
randomly initialised detector from a preset or config) with :func:`build_postprocessor`,
:func:`get_preset`, and the data contracts in :mod:`sparsercnn.structures`. Names are resolved
lazily so that ``import sparsercnn.data`` (or the CLI's ``--help``) does not load the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
}

if TYPE_CHECKING:
    from sparsercnn.config import Config
    from sparsercnn.model import PostProcessor, SparseRCNN, build_model, build_postprocessor
    from sparsercnn.predictor import Predictor
    from sparsercnn.presets import PRESETS, get_preset


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sparsercnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, for dir() and tab completion.
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "PRESETS",
    "Config",
    "PostProcessor",
    "Predictor",
    "SparseRCNN",
    "__version__",
    "build_model",
    "build_postprocessor",
    "get_preset",
]

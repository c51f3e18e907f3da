"""The Sparse R-CNN model: backbone, FPN, learned proposals, dynamic head, post-processing."""

from sparsercnn.model.build import build_model, build_postprocessor
from sparsercnn.model.detector import SparseRCNN
from sparsercnn.model.postprocess import PostProcessor

__all__ = ["PostProcessor", "SparseRCNN", "build_model", "build_postprocessor"]

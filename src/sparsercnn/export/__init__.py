"""Deployment: ONNX export of the detector and onnxruntime inference.

:func:`export_onnx` writes a self-describing, NMS-free ``.onnx`` file (see
:mod:`sparsercnn.export.onnx_export`); :class:`OnnxPredictor` runs it with onnxruntime and returns
the same :class:`~sparsercnn.prediction.Prediction` objects as the PyTorch
:class:`~sparsercnn.predictor.Predictor`. The optional dependencies (``onnx``, ``onnxscript``,
``onnxruntime``: the ``export`` extra) are imported only when used.
"""

from sparsercnn.export.onnx_export import ExportReport, OnnxCheckError, ParityCheck, export_onnx
from sparsercnn.export.onnx_runtime import OnnxPredictor
from sparsercnn.export.onnx_wrapper import SparseRCNNOnnxModel

__all__ = [
    "ExportReport",
    "OnnxCheckError",
    "OnnxPredictor",
    "ParityCheck",
    "SparseRCNNOnnxModel",
    "export_onnx",
]

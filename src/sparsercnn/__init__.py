"""Sparse R-CNN: end-to-end object detection with learnable proposals, in pure PyTorch."""

__version__ = "0.1.0"

"""Fixtures of the int8 model-file tests: the tiny model of tests/conftest.py with the label map
of the synthetic data set (:func:`tests.synthetic_coco.write_coco`: red id 1, green id 3), so
that its exports can be evaluated on that set. test_quantization overrides it with the session's
model, whose ONNX export it shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.data.categories import CategoryMap
from tests.tiny_model import write_tiny_model_file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with the synthetic set's categories, written once per test module."""
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return write_tiny_model_file(path, CategoryMap([1, 3], ["red", "green"]))

"""The README's Python examples run as written, on a tiny model and made-up files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sparsercnn
from tests.tiny_model import write_tiny_model_file

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_its_python_examples() -> None:
    assert len(BLOCKS) >= 3
    assert any("Predictor.from_file" in block for block in BLOCKS)


def test_the_names_the_readme_imports_from_the_package_are_exported() -> None:
    names = re.findall(r"^from sparsercnn import (.+)$", README.read_text(), flags=re.MULTILINE)
    imported = {name.strip() for line in names for name in line.split(",")}
    assert imported and imported <= set(sparsercnn.__all__)
    for name in sparsercnn.__all__:
        assert getattr(sparsercnn, name) is not None and name in dir(sparsercnn)


def test_the_python_api_is_exported_from_the_package() -> None:
    """A Python user trains, evaluates, loads and predicts with names from ``sparsercnn``
    alone (they were only in submodules), each the submodule's own object."""
    from sparsercnn.data.categories import CategoryMap
    from sparsercnn.engine import model_evaluation, pipeline
    from sparsercnn.model_file import load_model_file, save_model_file
    from sparsercnn.prediction import Prediction

    for name, value in {
        "Prediction": Prediction,
        "CategoryMap": CategoryMap,
        "load_model_file": load_model_file,
        "save_model_file": save_model_file,
        "train_from_coco": pipeline.train_from_coco,
        "evaluate_model_file": model_evaluation.evaluate_model_file,
        "evaluate_onnx_file": model_evaluation.evaluate_onnx_file,
    }.items():
        assert name in sparsercnn.__all__ and getattr(sparsercnn, name) is value


def test_the_readme_python_blocks_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one namespace, as a reader pastes them: the video example uses the predictor of the
    one before it. Only the files they name are made here."""
    monkeypatch.chdir(tmp_path)
    write_tiny_model_file(tmp_path / "model.safetensors")
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save("photo.jpg")
    (tmp_path / "folder").mkdir()
    Image.fromarray(np.full((50, 70, 3), 128, np.uint8)).save("folder/a.png")
    has_av = importlib.util.find_spec("av") is not None
    if has_av:
        from tests.video.clips import write_clip

        write_clip(tmp_path / "clip.mp4")
    namespace: dict[str, object] = {}
    for index, block in enumerate(BLOCKS):
        if "sparsercnn.video" in block and not has_av:
            continue  # the `video` extra (PyAV) is not installed
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    assert len(namespace["detections"]) == 1  # type: ignore[arg-type]
    if has_av:
        assert (tmp_path / "drawn.mp4").stat().st_size > 0

"""The released model file: save/load round trip and one-line errors for files it cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sparsercnn.model_file import load_model_file, read_model_file


def test_round_trip(model_file: Path) -> None:
    loaded = load_model_file(model_file)
    tensors, config, categories = read_model_file(model_file)
    assert config == loaded.config and config.model.num_classes == 2
    assert categories.names == ["cat", "dog"]
    state = loaded.model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in tensors.items())


def one_line_error(path: Path) -> str:
    with pytest.raises((ValueError, OSError)) as info:
        read_model_file(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    assert "does not exist" in one_line_error(tmp_path / "none.safetensors")
    assert "is a folder" in one_line_error(tmp_path)


@pytest.mark.parametrize("cut", [0, 5, 0.5])
def test_truncated_file_says_damaged(model_file: Path, cut: float) -> None:
    data = model_file.read_bytes()
    damaged = model_file.with_name("damaged.safetensors")
    damaged.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    assert "is damaged or not a model file" in one_line_error(damaged)


def test_an_onnx_export_points_to_the_onnx_flag(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x08\x12\x07pytorch")  # how an ONNX ModelProto starts
    assert "is an ONNX export, not a model file (.safetensors): give it with --onnx" in (
        one_line_error(path)
    )


def test_pytorch_checkpoint_points_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    message = one_line_error(path)
    assert "is a PyTorch checkpoint" in message and "sparsercnn convert" in message


def test_foreign_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    assert "not a sparsercnn model" in one_line_error(path)

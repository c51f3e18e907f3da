"""The released model file: save/load round trip (with its int8 calibration) and one-line errors
for files it cannot load."""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sparsercnn.model.int8_features import Int8Calibration, calibrate
from sparsercnn.model_file import (
    BACKBONE_FORMAT_NAME,
    INT8_CALIBRATION_KEY,
    load_model_file,
    load_state_dict_strict,
    save_model_file,
)
from sparsercnn.predictor import Predictor
from sparsercnn.runtime import check_device
from sparsercnn.safetensors_file import DIGEST_KEY, HEADER_DIGEST_KEY
from sparsercnn.torch_archive import ZIP_MAGIC
from tests.damaged_safetensors import UnreadableTensorData, flip_a_tensor_byte
from tests.wrapped_safe_open import WrappedSafeOpen


def test_round_trip(model_file: Path) -> None:
    loaded = load_model_file(model_file)
    assert loaded.config.model.num_classes == 2 and loaded.categories.names == ["cat", "dog"]
    state = loaded.model.state_dict()
    tensors = load_file(model_file)
    assert tensors.keys() == state.keys()
    assert all(torch.equal(state[key], value) for key, value in tensors.items())
    with safe_open(str(model_file), framework="pt") as handle:
        assert len(handle.metadata()[DIGEST_KEY]) == 8


def test_a_byte_flipped_inside_a_tensor_is_refused(model_file: Path) -> None:
    """safetensors checks the header and sizes only: a bad copy was loaded with a wrong weight."""
    flip_a_tensor_byte(model_file)
    damaged = f"{model_file} is damaged: its tensor data do not match the CRC-32"
    assert damaged in one_line_error(model_file)
    assert "; copy, download or save it again. If another program re-saved it" in (
        one_line_error(model_file)
    )
    for load in (load_model_file, Predictor.from_file):
        with pytest.raises(ValueError, match=re.escape(damaged)):
            load(model_file)


def test_a_config_damaged_in_the_header_is_refused(model_file: Path) -> None:
    """Was: a byte changed in the stored config (still valid JSON, still a valid config: a pixel
    mean of 923.675) loaded a model that detects otherwise than the one saved; only the tensor
    data were summed."""
    data = model_file.read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert data[8 : 8 + size].count(b" 123.675,") == 1  # model.pixel_mean[0]
    model_file.write_bytes(data.replace(b" 123.675,", b" 923.675,", 1))
    message = one_line_error(model_file)
    assert message == (
        f"{model_file} is damaged: its header does not match the CRC-32 stored in it (a bad copy "
        "or a disk error); copy, download or save it again. If another program re-saved it with "
        f"changed tensors or metadata, it copied our {DIGEST_KEY} and {HEADER_DIGEST_KEY} "
        "metadata entries, which no longer fit: save it without them"
    )
    for load in (load_model_file, Predictor.from_file):
        with pytest.raises(ValueError, match="its header does not match"):
            load(model_file)


def test_a_refused_file_loads_no_tensor(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: every tensor loaded, then the file read again for its CRC-32 or its metadata
    refused. The header is checked first (format version, its CRC-32); the tensors are loaded
    only from a file whose header passes (their data are checked as they load)."""
    loaded: list[str] = []

    class CountingHandle(WrappedSafeOpen):
        def get_tensor(self, key: str) -> torch.Tensor:
            loaded.append(key)
            return super().get_tensor(key)

    monkeypatch.setattr("sparsercnn.model_file.safe_open", CountingHandle)
    wrong_version = with_metadata(model_file, tmp_path, format_version="0")
    data = model_file.read_bytes()
    model_file.write_bytes(data.replace(b" 123.675,", b" 923.675,", 1))  # a config value
    for refused in (model_file, wrong_version):
        with pytest.raises(ValueError):
            load_model_file(refused)
    assert loaded == []


def test_a_model_file_is_opened_once_and_its_data_read_once(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: opened by safetensors twice, and its tensor data read whole through ``open`` for
    their CRC-32 besides being loaded (then its header twice, for its CRC-32 and the tensors'
    order). Now one handle reads the header and loads the tensors, whose CRC-32 is summed from
    the loaded tensors: ``open`` reads the header alone, once, and the 4 bytes before it that
    tell what a file safetensors refuses is (a PyTorch checkpoint, ...)."""
    opened: list[str] = []
    read_bytes = 0
    real_open, real_safe_open = open, safe_open

    def counting_safe_open(path: str, framework: str) -> Any:
        opened.append(path)
        return real_safe_open(path, framework=framework)

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and Path(file) == model_file:
            read = handle.read

            def counted_read(*size: int) -> bytes:
                nonlocal read_bytes
                data = read(*size)
                read_bytes += len(data)
                return data

            handle.read = counted_read
        return handle

    header_size = 8 + int.from_bytes(model_file.read_bytes()[:8], "little")
    monkeypatch.setattr("sparsercnn.model_file.safe_open", counting_safe_open)
    monkeypatch.setattr("builtins.open", counting_open)
    load_model_file(model_file)
    assert opened == [str(model_file)]
    assert read_bytes == header_size + len(ZIP_MAGIC) < model_file.stat().st_size / 10
    monkeypatch.undo()
    flip_a_tensor_byte(model_file)
    with pytest.raises(ValueError, match="its tensor data do not match the CRC-32"):
        load_model_file(model_file)


def test_a_file_written_before_the_digest_loads_unchecked(model_file: Path, tmp_path: Path) -> None:
    """Model files of earlier versions have no digest, and the same format version."""
    path = with_metadata(model_file, tmp_path, **{DIGEST_KEY: None})
    with safe_open(str(path), framework="pt") as handle:
        assert DIGEST_KEY not in handle.metadata()
    assert_same_weights(path, model_file)
    flip_a_tensor_byte(path)
    load_model_file(path)


def test_a_model_file_re_saved_by_safetensors_with_its_metadata_loads(
    model_file: Path, tmp_path: Path
) -> None:
    """Was: refused as damaged, the header's CRC-32 being of its bytes, which safetensors' own
    save_file lays out in another key order; now of what the header says."""
    with safe_open(str(model_file), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        path = tmp_path / "resaved.safetensors"
        save_file(tensors, str(path), metadata=handle.metadata())
    assert path.read_bytes() != model_file.read_bytes()
    loaded = load_model_file(path).model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in tensors.items())
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert data[8 : 8 + size].count(b" 123.675,") == 1  # model.pixel_mean[0], in the config
    path.write_bytes(data.replace(b" 123.675,", b" 923.675,", 1))
    assert "its header does not match the CRC-32" in one_line_error(path)


def test_the_same_model_saved_twice_gives_the_same_bytes(model_file: Path, tmp_path: Path) -> None:
    loaded = load_model_file(model_file)
    again = save_model_file(
        tmp_path / "again.safetensors", loaded.model, loaded.config, loaded.categories
    )
    assert again.read_bytes() == model_file.read_bytes()


def one_line_error(path: Path) -> str:
    with pytest.raises((ValueError, OSError)) as info:
        load_model_file(path)
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


def test_tensor_data_it_cannot_read_says_damaged(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error in the tensor data (a disk error) is the model file's one line, as a file
    safetensors cannot open is (the readers of convert and --init-from give their own)."""

    monkeypatch.setattr("sparsercnn.model_file.safe_open", UnreadableTensorData)
    assert one_line_error(model_file) == (
        f"{model_file} is damaged or not a model file (safetensors: [Errno 5] Input/output "
        "error); copy it again, or convert official/mmdetection checkpoints with `sparsercnn "
        "convert`"
    )


def test_a_header_it_cannot_read_says_damaged(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a raw OSError (a traceback) for a read error in the header, once safe_open had
    opened the file; the model file's one line, as for its tensor data."""

    def unreadable_header(path: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("sparsercnn.model_file.read_header", unreadable_header)
    assert "is damaged or not a model file (safetensors: [Errno 5]" in one_line_error(model_file)


def test_a_file_safetensors_cannot_open_is_told_from_the_bytes_already_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the message read the file again to tell a PyTorch checkpoint, after safe_open had
    failed: on a disk that fails from then on, a raw OSError (a traceback) instead of the line.
    The first bytes are read once, before safe_open, and the message is made of them."""
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    failed: list[bool] = []
    real_open = open

    def disk_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if failed:
            raise OSError(errno.EIO, "Input/output error")
        return real_open(file, *args, **kwargs)

    def failing_safe_open(file: str, framework: str) -> None:
        failed.append(True)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("sparsercnn.model_file.open", disk_open, raising=False)
    monkeypatch.setattr("sparsercnn.model_file.safe_open", failing_safe_open)
    assert "is a PyTorch checkpoint, not a model file" in one_line_error(path)


def test_a_file_the_user_may_not_read_is_told_apart_from_a_damaged_one(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "... is damaged or not a model file (safetensors: [Errno 13] Permission denied ...);
    copy it again": a file the user may not read (chmod has no effect as root: open refuses)."""
    real_open = open

    def denied_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(file) == model_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("sparsercnn.model_file.open", denied_open, raising=False)
    with pytest.raises(PermissionError) as raised:
        load_model_file(model_file)
    assert str(raised.value) == (
        f"model file {model_file} cannot be read (Permission denied); check its permissions"
    )


def test_an_onnx_export_points_to_the_onnx_flag(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x08\x12\x07pytorch")  # how an ONNX ModelProto starts
    message = one_line_error(path)
    assert "is an ONNX export, not a model file (.safetensors): predict and eval take it" in message
    assert "other commands need the .safetensors it was exported from" in message


def test_pytorch_checkpoint_points_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    message = one_line_error(path)
    assert "is a PyTorch checkpoint" in message and "sparsercnn convert" in message


def test_foreign_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    assert "not a sparsercnn model" in one_line_error(path)


def test_a_backbone_file_is_named_as_one(tmp_path: Path) -> None:
    """What `convert` makes of a torchvision ResNet was said to need `convert`, which refuses it."""
    path = tmp_path / "resnet18.safetensors"
    save_file(
        {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)},
        str(path),
        {"format": BACKBONE_FORMAT_NAME},
    )
    message = one_line_error(path)
    assert "holds only a ResNet's weights" in message and "--backbone-weights" in message
    assert "convert it" not in message


def calibration_of(path: Path) -> Int8Calibration:
    """The int8 calibration of the model in ``path`` on one random 64x96 image."""
    model = load_model_file(path).model.eval()
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    with torch.no_grad():
        batch = model.preprocess([image]).tensor
        return calibrate(model.backbone, model.fpn, [batch])


def test_int8_calibration_round_trips(model_file: Path, tmp_path: Path) -> None:
    assert load_model_file(model_file).model.int8_calibration is None
    calibration = calibration_of(model_file)
    assert calibration.num_images == 1
    assert {"stem", "layer1.0", "layer1.0.conv1", "fpn.merged2", "fpn.merged5"} <= set(
        calibration.ranges
    )
    assert any(r.high > 0 for r in calibration.ranges.values())
    loaded = load_model_file(model_file)
    path = save_model_file(
        tmp_path / "int8.safetensors",
        loaded.model,
        loaded.config,
        loaded.categories,
        int8_calibration=calibration,
    )
    restored = load_model_file(path).model.int8_calibration
    assert restored == calibration  # floats through JSON: exact
    assert_same_weights(path, model_file)  # those of the file without calibration


@pytest.mark.parametrize(
    "record",
    [
        "{not json",
        "[]",
        '{"ranges": {}}',  # no image count
        '{"num_images": 1, "ranges": {"stem": [0.0]}}',  # a range without its high end
        '{"num_images": 1, "ranges": {"stem": ["low", 1.0]}}',
    ],
)
def test_a_damaged_int8_calibration_names_the_file(
    model_file: Path, tmp_path: Path, record: str
) -> None:
    path = with_metadata(model_file, tmp_path, **{INT8_CALIBRATION_KEY: record})
    with pytest.raises(ValueError, match="damaged int8 calibration record") as info:
        load_model_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def assert_same_weights(path: Path, expected: Path) -> None:
    """The model files ``path`` and ``expected`` load the same weights, bit for bit."""
    tensors = load_model_file(path).model.state_dict()
    original = load_model_file(expected).model.state_dict()
    assert all(torch.equal(tensors[key], original[key]) for key in original)


def with_metadata(model_file: Path, tmp_path: Path, **changes: str | None) -> Path:
    """A copy of ``model_file`` whose metadata entries are replaced (``None``: removed), as
    another program or an earlier sparsercnn writes it: without the header's CRC-32, which an
    edited header would not match."""
    with safe_open(str(model_file), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    metadata.pop(HEADER_DIGEST_KEY)
    for key, value in changes.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    path = tmp_path / "changed.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("version", ["2", None])
def test_another_format_version_is_refused(
    model_file: Path, tmp_path: Path, version: str | None
) -> None:
    """A file of a newer (or an unversioned) format is not read as if it were this one."""
    path = with_metadata(model_file, tmp_path, format_version=version)
    assert f"has model file format version {version!r}; this sparsercnn reads version 1" in (
        one_line_error(path)
    )


def test_a_label_map_of_another_size_than_the_model_is_refused(
    model_file: Path, tmp_path: Path
) -> None:
    """A label map shorter than the class logits would mislabel (or crash on) the last labels."""
    categories = '{"categories": [{"id": 1, "name": "cat", "label": 0}]}'
    path = with_metadata(model_file, tmp_path, categories=categories)
    assert "the label map has 1 classes but the config has model.num_classes=2" in (
        one_line_error(path)
    )


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("config", lambda config: config.replace('"model": {', '"model": {"new_option": 1, ', 1)),
        ("config", lambda config: config.replace('"num_classes": 2', '"num_classes": "two"')),
        ("config", lambda config: "[]"),
        ("categories", lambda categories: "[1, 2]"),
    ],
)
def test_a_config_or_label_map_it_cannot_read_names_the_file(
    model_file: Path, tmp_path: Path, key: str, change: Callable[[str], str]
) -> None:
    """Unknown config keys (a newer sparsercnn), wrong types: the message names the file."""
    with safe_open(str(model_file), framework="pt") as handle:
        changed = change(handle.metadata()[key])
    path = with_metadata(model_file, tmp_path, **{key: changed})
    assert "damaged metadata, or written by another version of sparsercnn" in one_line_error(path)


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [("num_proposals", 1, "proposals.features.weight"), ("num_stages", 1, "head.stages.1.")],
)
def test_a_config_its_weights_do_not_fit_names_the_keys_and_what_to_do(
    model_file: Path, tmp_path: Path, field: str, value: int, key: str
) -> None:
    """Metadata edited by hand (a readable config that no longer describes the weights): the
    message names the file and the keys and says the file, not the user's setup, is at fault."""
    with safe_open(str(model_file), framework="pt") as handle:
        config = json.loads(handle.metadata()["config"])
    config["model"][field] = value
    path = with_metadata(model_file, tmp_path, config=json.dumps(config))
    with pytest.raises(ValueError) as info:
        load_model_file(path)
    message = str(info.value)
    assert str(path) in message and key in message and "\n" not in message
    assert "the config stored with the weights does not describe them" in message
    assert "convert the model again" in message


def test_weights_that_do_not_fit_list_each_kind_of_key_once() -> None:
    """Missing, unexpected and mis-shaped keys, each listed as every key message lists
    (:func:`~sparsercnn.text.listing`: ten, then the count); nothing is loaded."""
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(6)])
    tensors = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("5.")}
    tensors["0.weight"] = torch.zeros(3, 2)
    tensors |= {f"extra.{n}": torch.zeros(1) for n in range(12)}
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError) as info:
        load_state_dict_strict(model, tensors, "w.safetensors")
    extra = sorted(f"extra.{n}" for n in range(12))
    assert str(info.value) == (
        "w.safetensors does not fit the model: missing keys: 5.bias, 5.weight; "
        f"unexpected keys: {', '.join(extra[:10])} ... (12 in all); "
        "mis-shaped keys: 0.weight: file (3, 2) vs model (2, 2)"
    )
    assert torch.equal(model[0].weight, before)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 3.5])
def test_a_device_that_is_none_is_one_clear_error(model_file: Path, device: object) -> None:
    """torch's own error lists twenty device types ("gpu" is not one), or is a TypeError."""
    with pytest.raises(ValueError, match=r"device .* is not a device; use 'cpu', 'cuda'"):
        load_model_file(model_file, device=device)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_before_the_file_is_read(tmp_path: Path) -> None:
    """Was torch's "AssertionError: Torch not compiled with CUDA enabled" after building the
    model."""
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda': no CUDA device is available here"):
        load_model_file(tmp_path / "missing.safetensors", device="cuda")

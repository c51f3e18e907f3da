"""Our safetensors files: reproducible bytes, and the CRC-32 of their tensor data, stored when
written and checked when read."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sparsercnn.safetensors_file import DIGEST_KEY, check_tensor_data, write_safetensors
from tests.damaged_safetensors import flip_a_tensor_byte

TENSORS = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
AGAIN = "copy it again"


def metadata_of(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


def test_the_digest_is_the_crc32_of_the_bytes_after_the_header(tmp_path: Path) -> None:
    """Defined by the file alone: anyone can check it with zlib and the safetensors layout."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {"format": "x"})
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    assert list(header) == sorted(header)
    assert list(header["__metadata__"]) == ["format", DIGEST_KEY]
    assert header["__metadata__"][DIGEST_KEY] == f"{zlib.crc32(data[8 + size :]):08x}"
    with safe_open(str(path), framework="pt") as handle:
        assert all(torch.equal(handle.get_tensor(k), v) for k, v in TENSORS.items())
    check_tensor_data(path, metadata_of(path), AGAIN)


def test_the_same_tensors_and_metadata_give_the_same_bytes(tmp_path: Path) -> None:
    first = write_safetensors(tmp_path / "1.safetensors", TENSORS, {"a": "1", "b": "2"})
    second = write_safetensors(
        tmp_path / "2.safetensors", dict(reversed(TENSORS.items())), {"b": "2", "a": "1"}
    )
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_a_byte_flipped_in_the_tensor_data_is_refused(tmp_path: Path, fraction: float) -> None:
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {})
    flip_a_tensor_byte(path, fraction)
    with pytest.raises(ValueError) as info:
        check_tensor_data(path, metadata_of(path), AGAIN)
    assert str(info.value) == (
        f"{path} is damaged: its tensor data do not match the CRC-32 stored in its header (a bad "
        "copy or a disk error); copy it again"
    )


def test_a_file_without_the_digest_is_not_checked(tmp_path: Path) -> None:
    """Files of other programs, and ours written before the digest: nothing to check them by."""
    path = tmp_path / "t.safetensors"
    save_file(TENSORS, str(path), metadata={"format": "x"})
    flip_a_tensor_byte(path)
    check_tensor_data(path, metadata_of(path), AGAIN)

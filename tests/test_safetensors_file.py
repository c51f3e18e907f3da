"""Our safetensors files: reproducible bytes, and the CRC-32 of their header and of their tensor
data, stored when written and checked when read."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sparsercnn.safetensors_file import (
    DIGEST_KEY,
    HEADER_DIGEST_KEY,
    check_header_crc32,
    file_tensors_crc32,
    load_tensors,
    read_header,
    stored_tensors_crc32,
    tensors_crc32,
    write_safetensors,
)
from tests.damaged_safetensors import flip_a_tensor_byte

TENSORS = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
AGAIN = "copy it again"
RESAVED = (
    "If another program re-saved it with changed tensors or metadata, it copied our "
    f"{DIGEST_KEY} and {HEADER_DIGEST_KEY} metadata entries, which no longer fit: save it without "
    "them"
)


def again() -> str:
    return AGAIN


def check_crc32(path: Path, again: Callable[[], str]) -> None:
    """Read ``path`` as the readers do: its header read and checked, then its tensors loaded,
    checked."""
    header = read_header(path)
    check_header_crc32(path, header, again)
    with safe_open(str(path), framework="pt") as handle:
        assert sorted(load_tensors(handle, path, header, again)) == sorted(TENSORS)


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
    assert list(header["__metadata__"]) == ["format", HEADER_DIGEST_KEY, DIGEST_KEY]
    assert header["__metadata__"][DIGEST_KEY] == f"{zlib.crc32(data[8 + size :]):08x}"
    stored = header["__metadata__"].pop(HEADER_DIGEST_KEY)
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    assert stored == f"{zlib.crc32(canonical):08x}"
    with safe_open(str(path), framework="pt") as handle:
        assert all(torch.equal(handle.get_tensor(k), v) for k, v in TENSORS.items())
    check_crc32(path, again)


def test_the_stored_digest_is_read_from_the_header_alone(tmp_path: Path) -> None:
    """What tells one model file from another (a run's model_best) is read where the digest is
    defined; no file, or one that is no safetensors file, has none."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {})
    assert stored_tensors_crc32(path) == metadata_of(path)[DIGEST_KEY]
    assert stored_tensors_crc32(tmp_path / "missing.safetensors") is None
    (tmp_path / "text.safetensors").write_text("not a model")
    assert stored_tensors_crc32(tmp_path / "text.safetensors") is None


def test_a_header_is_read_whole_and_only_from_a_whole_file(tmp_path: Path) -> None:
    """read_header, the one reader of a header, stands without safe_open: a file cut short in
    its data or its header, or one that is no safetensors file, is refused naming it, and has
    no stored digest (a run's model_best cut short is no longer the model it records)."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {})
    whole = path.read_bytes()
    assert read_header(path).metadata[DIGEST_KEY] == metadata_of(path)[DIGEST_KEY]
    size = int.from_bytes(whole[:8], "little")
    for cut, what in [(len(whole) - 1, "the file has"), (8 + size // 2, "runs past the end")]:
        path.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=rf"^{path} is no whole safetensors file: .*{what}"):
            read_header(path)
        assert stored_tensors_crc32(path) is None
    path.write_bytes(whole[:8] + b"[" + whole[9:])
    with pytest.raises(ValueError, match="its header is not the JSON safetensors writes"):
        read_header(path)


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
        check_crc32(path, again)
    assert str(info.value) == (
        f"{path} is damaged: its tensor data do not match the CRC-32 stored in its header (a bad "
        f"copy or a disk error); copy it again. {RESAVED}"
    )


def test_the_digest_of_a_file_or_of_tensors_is_the_one_their_file_stores(
    tmp_path: Path,
) -> None:
    """What ``export`` records of the weights it exports (a model file, or a model in memory)
    and ``serve`` compares with its ``--model``: read from the header where it is there, else
    computed from the file's data; of tensors, what writing them would store."""
    many = {
        f"t{i}": torch.full((i + 1,), float(i), dtype=dtype)
        for i, dtype in enumerate(
            (torch.float32, torch.int64, torch.float16, torch.uint8, torch.bfloat16)
        )
    }
    path = write_safetensors(tmp_path / "t.safetensors", many, {})
    stored = metadata_of(path)[DIGEST_KEY]
    assert file_tensors_crc32(path) == tensors_crc32(many) == stored
    plain = tmp_path / "plain.safetensors"
    save_file(many, str(plain))  # no digest stored: computed
    assert file_tensors_crc32(plain) == stored
    assert tensors_crc32({**many, "t0": many["t0"] + 1}) != stored


def test_a_file_without_the_digest_is_not_checked(tmp_path: Path) -> None:
    """Files of other programs, and ours written before the digest: nothing to check them by."""
    path = tmp_path / "t.safetensors"
    save_file(TENSORS, str(path), metadata={"format": "x"})
    flip_a_tensor_byte(path)
    check_crc32(path, again)


def replace_in_header(path: Path, old: bytes, new: bytes) -> None:
    """Change ``old`` to ``new`` (as long) in ``path``'s header: damage that keeps it valid."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert len(old) == len(new) and data[8 : 8 + size].count(old) == 1
    path.write_bytes(data[:8] + data[8 : 8 + size].replace(old, new) + data[8 + size :])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"dtype":"F32"', b'"dtype":"I32"'),  # the same size: safetensors reads it
        (b'"shape":[2,3]', b'"shape":[3,2]'),
        (b'"format":"x"', b'"format":"y"'),
    ],
)
def test_a_header_damaged_but_still_valid_is_refused(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    """Was: only the tensor data were summed, and a file whose header said I32 for F32, or
    another shape, or other metadata loaded with wrong tensors."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {"format": "x"})
    replace_in_header(path, old, new)
    with safe_open(str(path), framework="pt") as handle:
        handle.get_tensor("b")  # safetensors itself finds nothing wrong
    with pytest.raises(ValueError) as info:
        check_crc32(path, again)
    assert str(info.value) == (
        f"{path} is damaged: its header does not match the CRC-32 stored in it (a bad copy or a "
        f"disk error); copy it again. {RESAVED}"
    )


def test_a_data_offset_changed_in_the_header_is_refused(tmp_path: Path) -> None:
    """An offset that no longer adds up is safetensors' to refuse; the CRC-32 catches it too,
    and an end past the file's is refused as the header is read."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {"format": "x"})
    whole = path.read_bytes()
    replace_in_header(path, b'"data_offsets":[16,40]', b'"data_offsets":[17,40]')
    with pytest.raises(ValueError, match="its header does not match"):
        check_crc32(path, again)
    path.write_bytes(whole)
    replace_in_header(path, b'"data_offsets":[16,40]', b'"data_offsets":[16,48]')
    with pytest.raises(ValueError, match="its header says 256 bytes, the file has 248"):
        check_crc32(path, again)


def resave(path: Path, out: Path) -> Path:
    """``path`` loaded with safetensors and saved again by its own ``save_file``, metadata kept,
    as another program re-saves a file: its header in another key order and layout."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(out), metadata=metadata)
    return out


def test_the_same_tensors_and_metadata_saved_by_another_program_are_not_damage(
    tmp_path: Path,
) -> None:
    """Was: the header's CRC-32 was of its bytes, and a file safetensors' own save_file had
    re-saved with the same tensors and metadata (another key order) was called damaged."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {"format": "x", "z": "é"})
    resaved = resave(path, tmp_path / "resaved.safetensors")
    assert resaved.read_bytes() != path.read_bytes()
    check_crc32(resaved, again)
    replace_in_header(resaved, b'"format":"x"', b'"format":"y"')
    with pytest.raises(ValueError, match="its header does not match"):
        check_crc32(resaved, again)


def test_a_damaged_header_digest_is_refused(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {})
    stored = metadata_of(path)[HEADER_DIGEST_KEY]
    damaged = f"{int(stored, 16) ^ 1:08x}"
    replace_in_header(path, stored.encode(), damaged.encode())
    with pytest.raises(ValueError, match="its header does not match"):
        check_crc32(path, again)


def test_the_advice_is_made_only_for_a_damaged_file(tmp_path: Path) -> None:
    """Was: the advice (which looks for the file's download record) was built for every read."""
    path = write_safetensors(tmp_path / "t.safetensors", TENSORS, {})

    def not_called() -> str:
        raise AssertionError("advice built for an intact file")

    check_crc32(path, not_called)


def test_a_file_without_the_header_digest_has_its_data_checked(tmp_path: Path) -> None:
    """Files sparsercnn wrote before the header digest: their tensor data are still checked."""
    path = tmp_path / "t.safetensors"
    save_file(TENSORS, str(path), metadata={DIGEST_KEY: "00000000"})
    with pytest.raises(ValueError, match="its tensor data do not match"):
        check_crc32(path, again)

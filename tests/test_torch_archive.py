"""The record checksums of torch.save's archives: a changed byte is found, unsummed records pass."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from sparsercnn.torch_archive import damaged_record


def flip_a_byte_of_the_largest_record(path: Path) -> str:
    """Change one byte in the middle of ``path``'s largest record; return the record's name."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    # Past the local header (30 bytes, the name and at most 64 bytes of alignment padding).
    offset = record.header_offset + 30 + len(record.filename) + 64 + record.file_size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return record.filename


def test_a_changed_byte_names_its_record(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"weight": torch.arange(1000.0)}, path)
    assert damaged_record(path) is None
    name = flip_a_byte_of_the_largest_record(path)
    assert name.endswith("data/0")
    assert damaged_record(path) == name
    assert torch.load(path, weights_only=True)["weight"].shape == (1000,)  # torch.load: no check


def test_records_saved_without_sums_and_other_files_are_left_to_torch_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "no_sums.pth"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"weight": torch.arange(1000.0)}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    flip_a_byte_of_the_largest_record(path)
    assert damaged_record(path) is None
    text = tmp_path / "page.html"
    text.write_text("<html>")
    assert damaged_record(text) is None

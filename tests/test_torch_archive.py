"""The record checksums of torch.save's archives: a changed byte is found, unsummed records pass."""

from __future__ import annotations

from pathlib import Path

import torch

from sparsercnn.torch_archive import damaged_record
from tests.damaged_archive import flip_a_byte_of_the_largest_record


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

"""check_image_files: missing, zero-byte, not-an-image and truncated files, decoded sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparsercnn.data.image_check import check_image_files


def noise_jpeg(path: Path, width: int = 64, height: int = 48) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def truncate(path: Path) -> None:
    """Keep the first third of the bytes: the header still reads, the pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def entry(image_id: int, file_name: str, width: int = 64, height: int = 48) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("good.jpg", "truncated.jpg", "small.jpg"):
        noise_jpeg(tmp_path / name)
    truncate(tmp_path / "truncated.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a JPEG")
    noise_jpeg(tmp_path / "small.jpg", 32, 48)
    return tmp_path


def test_decoding_finds_every_unreadable_file(folder: Path) -> None:
    images = [
        entry(1, "good.jpg"),
        entry(2, "truncated.jpg"),
        entry(3, "empty.jpg"),
        entry(4, "text.jpg"),
        entry(5, "gone.jpg"),
        entry(6, "small.jpg"),
    ]
    issues = check_image_files(images, folder, decode=True, num_threads=3)
    found = {(issue.image_id, issue.code, issue.severity) for issue in issues}
    assert found == {
        (2, "image_file_unreadable", "error"),
        (3, "image_file_unreadable", "error"),
        (4, "image_file_unreadable", "error"),
        (5, "image_file_missing", "error"),
        (6, "image_size_mismatch", "warning"),
    }
    by_id = {issue.image_id: issue for issue in issues}
    assert "truncated" in by_id[2].message and by_id[2].file == "truncated.jpg"
    assert "64x48" in by_id[6].message and "32x48" in by_id[6].message
    # Same findings, in the same order, whatever the number of threads.
    assert check_image_files(images, folder, decode=True, num_threads=1) == issues


def test_without_decoding_only_missing_files_are_found(folder: Path) -> None:
    images = [entry(1, "truncated.jpg"), entry(2, "empty.jpg"), entry(3, "gone.jpg")]
    issues = check_image_files(images, folder, decode=False)
    assert [(issue.image_id, issue.code) for issue in issues] == [(3, "image_file_missing")]

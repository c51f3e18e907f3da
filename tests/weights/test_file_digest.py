"""FileSha256: the SHA-256 of a file kept as it is appended to, reading only what it did not see."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sparsercnn.weights.file_digest import FileSha256, file_sha256


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _refuse_reading(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"the file was read: open{args}")


def test_appended_chunks_are_hashed_without_reading_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = tmp_path / "model.pth.part"
    part.write_bytes(b"an earlier run's bytes, ")
    digest = FileSha256(part)
    digest.catch_up()  # before appending: the bytes it did not see written are read
    with open(part, "ab") as handle:
        for chunk in (b"then ", b"this run's"):
            handle.write(chunk)
            digest.update(chunk)
    monkeypatch.setattr("builtins.open", _refuse_reading)
    hexdigest = digest.hexdigest()
    monkeypatch.undo()
    assert hexdigest == _sha256(b"an earlier run's bytes, then this run's")


def test_bytes_the_writer_did_not_report_are_read(tmp_path: Path) -> None:
    """A write that raised part-way leaves bytes past those hashed; a buffered write lost leaves
    fewer than were hashed: either way the digest is that of the file on disk."""
    part = tmp_path / "model.pth.part"
    digest = FileSha256(part)
    digest.start_over()
    part.write_bytes(b"written, ")
    digest.update(b"written, ")
    part.write_bytes(b"written, and half a chu")
    assert digest.hexdigest() == _sha256(b"written, and half a chu")
    digest.update(b"nk that never reached the disk")
    assert digest.hexdigest() == _sha256(b"written, and half a chu")
    digest.start_over()
    part.write_bytes(b"")
    assert digest.hexdigest() == _sha256(b"") == file_sha256(part)

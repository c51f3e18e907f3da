"""A fetched file stands for its path, and says whether a SHA-256 vouched for its bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.fetched_file import FetchedFile, checksum_verified


def test_a_fetched_file_is_used_as_its_path(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(b"weights")
    fetched = FetchedFile(path, verified=True)
    with open(fetched, "rb") as handle:
        assert handle.read() == b"weights"
    assert Path(fetched) == path and str(fetched) == str(path)
    assert f"{fetched} is damaged" == f"{path} is damaged"


def test_only_a_matched_checksum_spares_the_inner_checks(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    assert checksum_verified(FetchedFile(path, verified=True))
    assert not checksum_verified(FetchedFile(path))
    assert not checksum_verified(path) and not checksum_verified(str(path))


def test_a_file_is_declared_verified_by_name_only_and_for_good(tmp_path: Path) -> None:
    """Fetch, having compared the digest, says so by keyword: no second positional argument is
    taken for it (a checksum passed by mistake), and a file's fact cannot be changed afterwards."""
    path = tmp_path / "model.pth"
    with pytest.raises(TypeError):
        FetchedFile(path, True)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        FetchedFile(path).verified = True  # type: ignore[misc]

"""The download cache's records and writes: a finished download takes a cached file's place
without ever leaving a file beside another URL's record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparsercnn.weights import download_lock
from sparsercnn.weights.download import fetch
from tests.weights.weights_server import WeightsServer


def test_a_download_stopped_while_taking_the_cached_file_s_place_is_resumed(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped between the cached file's removal and the part's move: no file lies beside a
    record (neither run 1's file beside run 2's record nor the other way round), and the next
    fetch finds the part complete."""
    first, second = f"{serve.url}/run1/model.pth", f"{serve.url}/run2/model.pth"
    serve.payload = b"weights of run 1"
    fetch(first, cache_dir=tmp_path)
    real_replace = os.replace

    def stopped(source: Path, target: Path) -> None:
        if Path(target).name == "model.pth":
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(download_lock.os, "replace", stopped)
    serve.payload = b"weights of run 2"
    with pytest.raises(PermissionError, match="cannot write in the download cache"):
        fetch(second, cache_dir=tmp_path)
    monkeypatch.setattr(download_lock.os, "replace", real_replace)
    assert not (tmp_path / "model.pth").exists()
    assert (tmp_path / "model.pth.part").read_bytes() == b"weights of run 2"
    assert (tmp_path / "model.pth.part.url").read_text() == second + "\n"
    assert fetch(second, cache_dir=tmp_path).path.read_bytes() == b"weights of run 2"
    assert serve.ranges[-1] == f"bytes={len(serve.payload)}-"  # complete: nothing downloaded
    assert (tmp_path / "model.pth.url").read_text() == second + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "model.pth.url"]

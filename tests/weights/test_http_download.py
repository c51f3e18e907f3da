"""download: one URL to one file over HTTP, resumed, retried after a wait, checked; each failed
attempt said in words."""

from __future__ import annotations

import hashlib
import logging
import socket
from pathlib import Path

import pytest

from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.weights.http_download import DownloadFailed, download
from tests.weights.weights_server import WeightsServer


def test_attempts_are_spaced_out_as_the_server_asks(
    tmp_path: Path, serve: WeightsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: the next attempt at once, three in a fraction of a second against a server
    that is restarting or rate-limiting. Now 1 s, 2 s, ... or the Retry-After it sends;
    a 429 (too many requests) is retried like a 5xx, not refused as a bad URL."""
    serve.payload = b"weights"
    serve.errors = [(503, None), (429, "7")]
    waits: list[float] = []
    dst = tmp_path / "model.pth"
    with caplog.at_level(logging.WARNING):
        assert download(f"{serve.url}/model.pth", dst, sleep=waits.append) == dst
    assert waits == [1.0, 7.0] and dst.read_bytes() == b"weights"
    url = f"{serve.url}/model.pth"
    assert f"{url} answered HTTP 503 Service Unavailable; attempt 2 of 3 in 1 s" in caplog.text
    assert f"{url} answered HTTP 429 Too Many Requests; attempt 3 of 3 in 7 s" in caplog.text


def test_the_last_failed_attempt_is_not_waited_for(tmp_path: Path, serve: WeightsServer) -> None:
    serve.errors = [(502, None)] * 4
    waits: list[float] = []
    url = f"{serve.url}/model.pth"
    with pytest.raises(
        ConnectionError, match=rf"{url} answered HTTP 502 Bad Gateway; gave up after 4 attempt"
    ):
        download(url, tmp_path / "model.pth", max_attempts=4, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0] and len(serve.ranges) == 4


def test_server_without_range_support_restarts(tmp_path: Path, serve: WeightsServer) -> None:
    serve.payload = bytes(range(256)) * 64
    serve.honour_range = False
    dst = tmp_path / "blob.pth"
    dst.with_name("blob.pth.part").write_bytes(b"stale bytes")
    download(f"{serve.url}/blob.pth", dst)
    assert dst.read_bytes() == serve.payload


def test_wrong_download_is_deleted_and_404_is_not_retried(
    tmp_path: Path, serve: WeightsServer
) -> None:
    serve.payload = b"not the published file"
    dst = tmp_path / "model.pth"
    # The message names the URL, not the .part file it deletes, and says what to do.
    with pytest.raises(ValueError) as info:
        download(f"{serve.url}/model.pth", dst, sha256="deadbeef")
    assert str(info.value).startswith(
        f"checksum mismatch for the download of {serve.url}/model.pth: expected sha256 "
        f"deadbeef..., got {hashlib.sha256(serve.payload).hexdigest()}; nothing was kept. Run "
        "again to download it anew"
    )
    assert not dst.exists() and not dst.with_name("model.pth.part").exists()
    with pytest.raises(ValueError, match="HTTP 404"):
        download(f"{serve.url}/missing.bin", dst)
    assert len(serve.ranges) == 1
    # A checksum from an mmdetection name: "rename it" is no advice for a download.
    named = tmp_path / "sparse_rcnn_20201218-deadbeef.pth"
    with pytest.raises(ValueError, match=r"deadbeef\.\.\. \(the one its name carries\)") as info:
        download(f"{serve.url}/{named.name}", named, sha256="deadbeef")
    assert "rename" not in str(info.value) and ".part" not in str(info.value)


def test_download_takes_a_checksum_in_any_case(tmp_path: Path, serve: WeightsServer) -> None:
    """Was: download() called directly with "DEADBEEF..." (as sha256sum's output is often
    copied in upper case) reported a mismatch for the right file; only fetch() lowercased it.
    A checksum that is no hex digits is refused before anything is downloaded."""
    serve.payload = b"the published bytes"
    digest = hashlib.sha256(serve.payload).hexdigest()
    dst = tmp_path / "model.pth"
    assert download(f"{serve.url}/model.pth", dst, sha256=f" {digest.upper()} ") == dst
    assert dst.read_bytes() == serve.payload
    with pytest.raises(ValueError, match="sha256 'not-hex!' must be 8 to 64 hexadecimal digits"):
        download(f"{serve.url}/model.pth", tmp_path / "other.pth", sha256="NOT-HEX!")
    assert len(serve.ranges) == 1


def test_a_refused_connection_says_it_could_not_connect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "download of URL interrupted at 0 bytes (<urlopen error [Errno 111] Connection
    refused>)", as if a transfer had started."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as closed:  # a port nothing listens on once it is closed
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/model.pth"
    with caplog.at_level(logging.WARNING), pytest.raises(ConnectionError) as info:
        download(url, tmp_path / "model.pth", max_attempts=2, sleep=lambda _: None)
    assert f"could not connect to {url} (Connection refused); attempt 2 of 2 in 1 s" in caplog.text
    assert str(info.value) == (
        f"could not connect to {url} (Connection refused); gave up after 2 attempt(s), nothing "
        "was received: check the network and the URL, or download the file yourself and give "
        "its path"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_download_that_gave_up_says_what_to_do_as_an_explained_failure(
    tmp_path: Path, serve: WeightsServer
) -> None:
    """Was: a plain ConnectionError, which ``sparsercnn`` reported as a crash ("failed:
    ConnectionError: ..." and the --debug hint) though its message says what to do. Still a
    ConnectionError, for callers that catch one."""
    serve.payload = bytes(1000)
    serve.truncate_first = 100
    with pytest.raises(DownloadFailed, match="fetching the URL again resumes") as kept:
        download(f"{serve.url}/model.pth", tmp_path / "model.pth", max_attempts=1)
    serve.errors = [(503, None)]
    with pytest.raises(DownloadFailed, match="nothing was received: check the") as nothing:
        download(f"{serve.url}/other.pth", tmp_path / "other.pth", max_attempts=1)
    for info in (kept, nothing):
        assert isinstance(info.value, ExplainedFailure) and isinstance(info.value, ConnectionError)

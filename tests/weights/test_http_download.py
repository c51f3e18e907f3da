"""download: one URL to one ``.part`` file over HTTP, resumed, retried after a wait, checked;
each failed attempt said in words."""

from __future__ import annotations

import hashlib
import logging
import socket
from pathlib import Path
from typing import Literal

import pytest

from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.weights.file_digest import ExpectedSha256
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
    part = tmp_path / "model.pth.part"
    with caplog.at_level(logging.WARNING):
        download(f"{serve.url}/model.pth", part, sleep=waits.append)
    assert waits == [1.0, 7.0] and part.read_bytes() == b"weights"
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
        download(url, tmp_path / "model.pth.part", max_attempts=4, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0] and len(serve.ranges) == 4


def test_server_without_range_support_restarts(tmp_path: Path, serve: WeightsServer) -> None:
    serve.payload = bytes(range(256)) * 64
    serve.honour_range = False
    part = tmp_path / "blob.pth.part"
    part.write_bytes(b"stale bytes")
    download(f"{serve.url}/blob.pth", part)
    assert part.read_bytes() == serve.payload


def test_wrong_download_is_deleted_and_404_is_not_retried(
    tmp_path: Path, serve: WeightsServer
) -> None:
    serve.payload = b"not the published file"
    part = tmp_path / "model.pth.part"
    # The message names the URL, not the .part file it deletes, and says what to do.
    with pytest.raises(ValueError) as info:
        download(f"{serve.url}/model.pth", part, ExpectedSha256("deadbeef", "given"))
    assert str(info.value) == (
        f"checksum mismatch for the download of {serve.url}/model.pth: expected sha256 "
        f"deadbeef..., got {hashlib.sha256(serve.payload).hexdigest()}; nothing was kept: the URL "
        "serves another file than the checksum given describes; check --sha256 (sha256=) and "
        "the URL"
    )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="HTTP 404"):
        download(f"{serve.url}/missing.bin", part)
    assert len(serve.ranges) == 1


@pytest.mark.parametrize(
    ("origin", "whose"),
    [("published", "the published one"), ("name", "the one its name carries")],
)
def test_a_download_that_fails_a_published_checksum_is_a_failed_download(
    tmp_path: Path, serve: WeightsServer, origin: Literal["published", "name"], whose: str
) -> None:
    """Was: a ValueError (``sparsercnn`` exit 2, "the input is wrong") whatever the checksum's
    origin, and "check the URL and the checksum" for a checksum the user never gave. A published
    checksum (or the one an mmdetection name carries) that the server's file fails is a failed
    download (exit 1), and says so; nothing is kept, and "rename it" is no advice for a URL."""
    serve.payload = b"not the published file"
    name = "sparse_rcnn_20201218-deadbeef.pth"
    with pytest.raises(DownloadFailed) as info:
        download(
            f"{serve.url}/{name}", tmp_path / f"{name}.part", ExpectedSha256("deadbeef", origin)
        )
    message = str(info.value)
    assert f"expected sha256 deadbeef... ({whose}), got" in message
    assert "the server sent another file than the one published" in message
    assert "--sha256" not in message and "rename" not in message and ".part" not in message
    assert not isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kept", [0, 1000])
def test_a_chunked_download_cut_short_keeps_what_it_received(
    tmp_path: Path, serve: WeightsServer, kept: int
) -> None:
    """Was: "interrupted at 0 bytes (IncompleteRead(1000 bytes read))": the whole chunks of the
    read that failed were dropped, and with them the attempt's only bytes ("nothing was
    received"). They are kept now, for resuming; the cut file is never the finished one."""
    serve.payload = bytes(range(256)) * 16
    serve.framing, serve.truncate_first = "chunked", kept
    part, url = tmp_path / "model.pth.part", f"{serve.url}/model.pth"
    with pytest.raises(DownloadFailed) as info:
        download(url, part, max_attempts=1)
    assert f"interrupted at {kept} bytes (connection closed before the end" in str(info.value)
    assert part.read_bytes() == serve.payload[:kept] if kept else not part.exists()
    download(url, part, ExpectedSha256(hashlib.sha256(serve.payload).hexdigest(), "given"))
    assert part.read_bytes() == serve.payload
    assert serve.ranges == [None, f"bytes={kept}-" if kept else None]


def test_a_download_of_unsaid_length_warns_that_it_is_unchecked(
    tmp_path: Path, serve: WeightsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A body the server ends by closing the connection reads as complete when cut short:
    nothing tells them apart but a checksum. Was: "give its SHA-256 (--sha256)", a flag that
    train's --init-from and --backbone-weights, which download through it too, do not have."""
    serve.payload, serve.framing = b"weights", "close"
    url = f"{serve.url}/model.pth"
    with caplog.at_level(logging.WARNING):
        download(url, tmp_path / "model.pth.part")
    assert caplog.messages == [
        f"{url} did not say how long the file is, and no SHA-256 was given to check it: a "
        "download cut short cannot be told from a complete one"
    ]
    caplog.clear()
    digest = hashlib.sha256(serve.payload).hexdigest()
    with caplog.at_level(logging.WARNING):
        download(url, tmp_path / "checked.pth.part", ExpectedSha256(digest, "given"))
        serve.framing = "chunked"
        download(url, tmp_path / "chunked.pth.part")
    assert caplog.text == ""


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
        download(url, tmp_path / "model.pth.part", max_attempts=2, sleep=lambda _: None)
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
        download(f"{serve.url}/model.pth", tmp_path / "model.pth.part", max_attempts=1)
    serve.errors = [(503, None)]
    with pytest.raises(DownloadFailed, match="nothing was received: check the") as nothing:
        download(f"{serve.url}/other.pth", tmp_path / "other.pth.part", max_attempts=1)
    for info in (kept, nothing):
        assert isinstance(info.value, ExplainedFailure) and isinstance(info.value, ConnectionError)

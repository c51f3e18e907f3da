"""fetch and from_pretrained: published names, local files and file:// URLs with checksums;
URLs through the download cache (resumed, recorded, locked, checked)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.fetched_file import FetchedFile
from sparsercnn.weights.download import (
    PUBLISHED_CHECKPOINTS,
    default_cache_dir,
    fetch,
    from_pretrained,
)
from sparsercnn.weights.file_digest import ExpectedSha256, expected_sha256
from sparsercnn.weights.http_download import DownloadFailed
from tests.weights.weights_server import WeightsServer


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_published_table() -> None:
    assert {c.layout for c in PUBLISHED_CHECKPOINTS.values()} == {"official", "mmdet"}
    official = PUBLISHED_CHECKPOINTS["r50_100pro_3x"]
    assert official.url.endswith("/releases/download/v0.1/r50_100pro_3x_model.pth")
    assert official.box_ap == 42.8
    mmdet = PUBLISHED_CHECKPOINTS["mmdet_r50_100pro_3x"]
    assert mmdet.url == (
        "https://download.openmmlab.com/mmdetection/v2.0/sparse_rcnn/"
        "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco/"
        "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco_20201218_154234-7bc5c054.pth"
    )
    assert expected_sha256(mmdet.url.rsplit("/", 1)[1], None) == ExpectedSha256("7bc5c054", "name")


def test_published_name_uses_the_cache_offline(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    cached = shutil.copy(tiny_files["official"], tmp_path / "r50_100pro_3x_model.pth")
    assert fetch("r50_100pro_3x", cache_dir=tmp_path).path == Path(cached)


def test_a_published_name_with_a_wrong_checksum_given_names_no_url_to_check(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "the URL serves another file ...; check the checksum and the URL" for a published
    name given with a wrong --sha256, whose URL the user never gave."""
    published = PUBLISHED_CHECKPOINTS["r50_100pro_3x"]
    url = f"{serve.url}/r50_100pro_3x_model.pth"
    monkeypatch.setitem(PUBLISHED_CHECKPOINTS, "r50_100pro_3x", replace(published, url=url))
    serve.payload = b"the published file"
    with pytest.raises(ValueError) as info:
        fetch("r50_100pro_3x", sha256="deadbeef", cache_dir=tmp_path)
    assert str(info.value) == (
        f"checksum mismatch for the download of {url}: expected sha256 deadbeef..., got "
        f"{hashlib.sha256(serve.payload).hexdigest()}; nothing was kept: the published file "
        "r50_100pro_3x does not match the checksum given; check --sha256 (sha256=)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_given_against_a_published_file_name_s_is_refused_before_downloading(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the whole file downloaded, then refused for a --sha256 that its published name
    (mmdetection's, ``...-<8 hex>.pth``) already contradicted."""
    serve.payload = b"the published file"
    digest = hashlib.sha256(serve.payload).hexdigest()
    file_name = f"sparse_rcnn_20201222_214453-{digest[:8]}.pth"
    published = PUBLISHED_CHECKPOINTS["mmdet_r50_100pro_1x"]
    url = f"{serve.url}/{file_name}"
    monkeypatch.setitem(PUBLISHED_CHECKPOINTS, "mmdet_r50_100pro_1x", replace(published, url=url))
    with pytest.raises(ValueError) as info:
        fetch("mmdet_r50_100pro_1x", sha256="DEADBEEF", cache_dir=tmp_path)
    assert str(info.value) == (
        "--sha256 (sha256=) deadbeef is not the checksum of the published checkpoint "
        f"mmdet_r50_100pro_1x ({file_name}), {digest[:8]}... (the published one): nothing was "
        "downloaded; give none (the published one is checked), or correct it"
    )
    assert serve.ranges == [] and list(tmp_path.iterdir()) == []
    # The whole checksum, of which the name carries the first digits, is the published file's.
    assert fetch("mmdet_r50_100pro_1x", sha256=digest, cache_dir=tmp_path).path.name == file_name


def test_a_checksum_given_that_agrees_with_the_published_one_fails_as_a_download(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a --sha256 agreeing with the one a published file name carries taken as the user's
    word, so that a download that failed it said "the published file ... does not match the
    checksum given; check --sha256" (a ValueError: exit 2, wrong input). The server sent
    another file: a failed download (exit 1). A whole --sha256 whose digits past the name's 8
    are wrong was then a failed download too, "Run again" failing alike every time: it is the
    checksum given that is wrong. A published file's name is never one ending so by chance."""
    digest = hashlib.sha256(b"the published file").hexdigest()
    file_name = f"sparse_rcnn_20201222_214453-{digest[:8]}.pth"
    published = PUBLISHED_CHECKPOINTS["mmdet_r50_100pro_1x"]
    url = f"{serve.url}/{file_name}"
    monkeypatch.setitem(PUBLISHED_CHECKPOINTS, "mmdet_r50_100pro_1x", replace(published, url=url))
    name_s = ExpectedSha256(digest[:8], "published")
    assert expected_sha256(file_name, None, "mmdet_r50_100pro_1x") == name_s
    assert expected_sha256(file_name, digest[:8].upper(), "mmdet_r50_100pro_1x") == name_s
    assert expected_sha256(file_name, digest.upper(), "mmdet_r50_100pro_1x") == ExpectedSha256(
        digest, "given", "mmdet_r50_100pro_1x", name_s
    )
    serve.payload = b"another file"
    for given in (digest, None):
        with pytest.raises(DownloadFailed) as info:
            fetch("mmdet_r50_100pro_1x", sha256=given, cache_dir=tmp_path)
        assert f"expected sha256 {digest[:8]}... (the published one), got" in str(info.value)
        assert "the server sent another file than the one published" in str(info.value)
        assert "--sha256" not in str(info.value) and "by chance" not in str(info.value)
        assert list(tmp_path.iterdir()) == []
    serve.payload = b"the published file"
    wrong = digest[:8] + ("1" if digest[8] == "0" else "0") + digest[9:]
    with pytest.raises(ValueError) as error:
        fetch("mmdet_r50_100pro_1x", sha256=wrong, cache_dir=tmp_path)
    assert str(error.value) == (
        f"checksum mismatch for the download of {url}: expected sha256 {wrong}..., got {digest}; "
        "nothing was kept: the published file mmdet_r50_100pro_1x does not match the checksum "
        "given; check --sha256 (sha256=)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_published_checksum_is_checked_and_one_given_against_it_refused(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checksum the table publishes for a name (the official checkpoints publish none yet)
    is the one its download is checked against, and a --sha256 that contradicts it is refused
    before anything is downloaded."""
    serve.payload = b"the published file"
    digest = hashlib.sha256(serve.payload).hexdigest()
    published = PUBLISHED_CHECKPOINTS["r50_100pro_3x"]
    url = f"{serve.url}/r50_100pro_3x_model.pth"
    monkeypatch.setitem(
        PUBLISHED_CHECKPOINTS, "r50_100pro_3x", replace(published, url=url, sha256=digest.upper())
    )
    with pytest.raises(ValueError, match=r"deadbeef is not the checksum of the published check"):
        fetch("r50_100pro_3x", sha256="deadbeef", cache_dir=tmp_path)
    assert serve.ranges == [] and list(tmp_path.iterdir()) == []
    fetched = fetch("r50_100pro_3x", cache_dir=tmp_path)
    assert fetched.path.read_bytes() == serve.payload and fetched.verified


def test_file_url_with_right_and_wrong_checksum(
    tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    path = tiny_files["official"]
    loaded = from_pretrained(path.as_uri(), sha256=_sha256(path))
    assert loaded.config.model.backbone_norm == "frozen_bn"
    assert len(loaded.categories) == 80
    assert from_pretrained(str(path), sha256=_sha256(path)[:8]).config == loaded.config
    with pytest.raises(
        ValueError,
        match=r"checksum mismatch for .*r18_official\.pth: expected sha256 0{64}\.\.\., got "
        r"[0-9a-f]{64}; .* download or copy it again, or check the expected checksum, "
        r"--sha256 \(sha256=\)$",
    ):
        from_pretrained(path.as_uri(), sha256="0" * 64)
    with pytest.raises(ValueError, match="hexadecimal"):
        from_pretrained(path.as_uri(), sha256="xyz")


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu", "^device 'gpu' is not a device"), ("mps", "^device 'mps': sparsercnn runs on")],
)
def test_a_bad_device_is_refused_before_anything_is_downloaded(
    tmp_path: Path, serve: WeightsServer, device: str, message: str
) -> None:
    """Was downloaded and converted first, then refused by torch's own error in model.to."""
    serve.payload = b"never fetched"
    with pytest.raises(ValueError, match=message):
        from_pretrained(f"{serve.url}/mm/model.pth", cache_dir=tmp_path, device=device)
    assert serve.ranges == [] and list(tmp_path.iterdir()) == []


def test_mmdet_file_name_carries_the_checksum(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    digest = _sha256(tiny_files["mmdet"])
    good = shutil.copy(
        tiny_files["mmdet"], tmp_path / f"sparse_rcnn_tiny_20201218-{digest[:8]}.pth"
    )
    assert from_pretrained(Path(good).as_uri()).config.model.box_delta_clamp == "mmdet"
    bad = shutil.copy(tiny_files["mmdet"], tmp_path / "sparse_rcnn_tiny_20201218-00000000.pth")
    with pytest.raises(ValueError, match="checksum mismatch"):
        from_pretrained(str(bad))


def test_a_checksum_from_the_name_says_so(tmp_path: Path) -> None:
    """A file of the user's own whose name ends like a published one's (a date) is told how to
    get past the check; a checksum the user gave is reported as given."""
    path = tmp_path / "sparse_rcnn-20240101.pth"
    path.write_bytes(b"my own weights")
    with pytest.raises(
        ValueError,
        match=r"sparse_rcnn-20240101\.pth: expected sha256 20240101\.\.\. \(the one its name "
        r"carries\), got [0-9a-f]{64}; a name ending in -<8 hex digits>\.pth marks a published "
        r"file's SHA-256: .*rename it",
    ):
        fetch(str(path))
    with pytest.raises(ValueError, match=r"expected sha256 abcdef12\.\.\., got"):
        fetch(str(path), sha256="abcdef12")
    assert fetch(str(path), sha256=_sha256(path)) == FetchedFile(path, verified=True)
    unchecked = path.rename(tmp_path / "sparse_rcnn.pth")
    assert fetch(str(unchecked)) == FetchedFile(unchecked)


def test_missing_local_file_and_bad_scheme(tmp_path: Path) -> None:
    # Was: "checkpoint .../nothing.pth does not exist", with nothing to do.
    for given in ((tmp_path / "nothing.pth").as_uri(), str(tmp_path / "nothing.pth")):
        with pytest.raises(
            FileNotFoundError,
            match=r"nothing\.pth does not exist; check the path, or give a published name "
            r"instead \(`sparsercnn convert --help` lists them\)$",
        ):
            fetch(given)
    with pytest.raises(FileNotFoundError, match=r"r50_100pro does not exist; nor is it a pub"):
        fetch("r50_100pro")
    # The name of a published download (train --init-from x.pth before downloading it).
    url = PUBLISHED_CHECKPOINTS["mmdet_r50_100pro_1x"].url
    missing = tmp_path / url.rsplit("/", 1)[-1]
    with pytest.raises(
        FileNotFoundError,
        match=rf"{re.escape(missing.name)} does not exist; it is the download of the published "
        rf"checkpoint mmdet_r50_100pro_1x: pass the name mmdet_r50_100pro_1x instead .*"
        rf"download it from {re.escape(url)}$",
    ):
        fetch(str(missing))
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        fetch("ftp://example.org/model.pth")
    # A folder exists: it is named as the folder it is (train --backbone-weights DIR).
    for given in (str(tmp_path), tmp_path.as_uri()):
        with pytest.raises(IsADirectoryError, match="is a folder; give the checkpoint file"):
            fetch(given)


def test_interrupted_download_resumes(
    tmp_path: Path, serve: WeightsServer, tiny_files: dict[str, Path]
) -> None:
    serve.payload = tiny_files["official"].read_bytes()
    serve.truncate_first = len(serve.payload) // 3
    url = f"{serve.url}/official/r18_model.pth"
    cache = tmp_path / "cache"
    with pytest.raises(ConnectionError, match="fetching the URL again resumes from there"):
        fetch(url, cache_dir=cache, max_attempts=1)
    part = cache / "r18_model.pth.part"
    assert part.stat().st_size == serve.truncate_first
    assert not (cache / "r18_model.pth").exists()
    path = fetch(url, cache_dir=cache, sha256=hashlib.sha256(serve.payload).hexdigest())
    assert serve.ranges == [None, f"bytes={serve.truncate_first}-"]
    assert path.path.read_bytes() == serve.payload and not part.exists()
    fetch(url, cache_dir=cache)  # cached: no new request
    assert len(serve.ranges) == 2


def test_a_cache_folder_set_with_a_tilde_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: SPARSERCNN_CACHE="~/weights" (quoted, or from a service's environment) made a folder
    named ``~`` in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SPARSERCNN_CACHE", "~/weights")
    assert default_cache_dir() == tmp_path / "weights"


def test_a_download_that_received_nothing_keeps_nothing(
    tmp_path: Path, serve: WeightsServer, tiny_files: dict[str, Path]
) -> None:
    serve.payload = tiny_files["official"].read_bytes()
    serve.truncate_first = 0  # headers, then the connection drops
    cache = tmp_path / "cache"
    with pytest.raises(ConnectionError, match="nothing was received: check the network"):
        fetch(f"{serve.url}/official/r18_model.pth", cache_dir=cache, max_attempts=1)
    assert list(cache.iterdir()) == []


def test_from_pretrained_over_http_retries_and_converts(
    tmp_path: Path,
    serve: WeightsServer,
    tiny_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve.payload = tiny_files["mmdet"].read_bytes()
    serve.truncate_first = 1000
    monkeypatch.setenv("SPARSERCNN_CACHE", str(tmp_path / "env_cache"))
    waits: list[float] = []
    monkeypatch.setattr(
        "sparsercnn.weights.download.fetch", functools.partial(fetch, sleep=waits.append)
    )
    loaded = from_pretrained(f"{serve.url}/mm/sparse_rcnn_tiny.pth")
    assert loaded.config.model.clip_boxes is False
    assert (tmp_path / "env_cache" / "sparse_rcnn_tiny.pth").is_file()
    assert serve.ranges == [None, "bytes=1000-"]
    assert waits == [1.0]


def test_fetch_normalises_a_checksum_once(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: fetch, the cache check and download each normalised the same checksum again; now
    the public entry point does, once, and the rest compare the normalised one. One copied in
    upper case (as sha256sum's output often is) matches; one that is no hex digits is refused
    before anything is downloaded."""
    from sparsercnn.weights import file_digest

    normalised: list[str] = []
    real = file_digest.normalised_sha256

    def counting(sha256: str) -> str:
        normalised.append(sha256)
        return real(sha256)

    monkeypatch.setattr(file_digest, "normalised_sha256", counting)
    serve.payload = b"the published bytes"
    digest = f" {hashlib.sha256(serve.payload).hexdigest().upper()} "
    fetched = fetch(f"{serve.url}/model.pth", sha256=digest, cache_dir=tmp_path)
    assert fetched.path.read_bytes() == serve.payload and normalised == [digest]
    with pytest.raises(ValueError, match="sha256 'not-hex!' must be 8 to 64 hexadecimal digits"):
        fetch(f"{serve.url}/other.pth", sha256="NOT-HEX!", cache_dir=tmp_path)
    assert len(serve.ranges) == 1


def test_a_damaged_cached_file_is_downloaded_again(
    tmp_path: Path, serve: WeightsServer, caplog: pytest.LogCaptureFixture
) -> None:
    serve.payload = b"the published bytes"
    digest = hashlib.sha256(serve.payload).hexdigest()
    cached = tmp_path / f"model_20201218-{digest[:8]}.pth"
    cached.write_bytes(b"the published by")  # cut short, e.g. copied in by hand
    with caplog.at_level(logging.WARNING):
        assert fetch(f"{serve.url}/{cached.name}", cache_dir=tmp_path).path == cached
    # Was: the advice for a file of one's own ("download it again, or ... rename it") and then
    # "; downloading it again", in one line.
    assert caplog.messages == [
        f"checksum mismatch for {cached}: expected sha256 {digest[:8]}... (the one its name "
        f"carries), got {hashlib.sha256(b'the published by').hexdigest()}; downloading it again "
        "(the cached file stays until the download is complete and checked)"
    ]
    assert cached.read_bytes() == serve.payload and serve.ranges == [None]


def test_processes_fetching_one_file_at_once_download_it_once(
    tmp_path: Path, serve: WeightsServer
) -> None:
    serve.payload = bytes(range(256)) * 4096
    serve.delay = 0.3
    url = f"{serve.url}/shared.pth"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch(url, cache_dir=tmp_path).path))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [tmp_path / "shared.pth"] * 3
    assert serve.ranges == [None]  # one request: the others waited and found it cached
    assert (tmp_path / "shared.pth").read_bytes() == serve.payload
    assert not (tmp_path / "shared.pth.part").exists()


def test_a_cache_that_takes_no_file_is_named(tmp_path: Path, serve: WeightsServer) -> None:
    serve.payload = b"weights"
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(PermissionError, match=r"cannot write in the download cache .*not_a_folder"):
        fetch(f"{serve.url}/model.pth", cache_dir=blocker / "cache")
    assert serve.ranges == []  # refused before any request, not retried as a network failure


def test_a_cached_file_is_read_without_writing_the_cache(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.pth").write_bytes(b"weights")

    def refuse(folder: Path, action: object) -> None:
        raise PermissionError(f"{folder} is read-only")

    monkeypatch.setattr("sparsercnn.weights.download.cache_write", refuse)
    assert fetch(f"{serve.url}/model.pth", cache_dir=tmp_path).path == tmp_path / "model.pth"
    assert serve.ranges == [] and sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]


def test_two_urls_of_one_file_name_never_share_the_cached_file(
    tmp_path: Path, serve: WeightsServer
) -> None:
    """Two runs' model_final files on one server: each URL gets its own bytes, never the
    other's from the cache; a file put in the cache by hand still serves any URL of its name."""
    first, second = f"{serve.url}/run1/model.pth", f"{serve.url}/run2/model.pth"
    serve.payload = b"weights of run 1"
    assert fetch(first, cache_dir=tmp_path).path.read_bytes() == b"weights of run 1"
    serve.payload = b"weights of run 2"
    assert fetch(second, cache_dir=tmp_path).path.read_bytes() == b"weights of run 2"
    assert fetch(second, cache_dir=tmp_path).path.read_bytes() == b"weights of run 2"  # cached
    assert len(serve.ranges) == 2
    (tmp_path / "model.pth.url").unlink()
    assert fetch(first, cache_dir=tmp_path).path.read_bytes() == b"weights of run 2"
    assert len(serve.ranges) == 2


def test_a_failed_download_of_another_url_keeps_the_cached_file(
    tmp_path: Path, serve: WeightsServer
) -> None:
    """Was: fetching another URL of a cached file's name (a typo, another mirror) deleted the
    cached file before the download; a 404, an interruption or a wrong checksum then left
    neither. The file and its record now stay until the new download is complete and checked,
    which then replaces both."""
    first, second = f"{serve.url}/run1/model.pth", f"{serve.url}/typo/model.pth"
    cached, record = tmp_path / "model.pth", tmp_path / "model.pth.url"
    serve.payload = b"weights of run 1"
    fetch(first, cache_dir=tmp_path)
    serve.errors = [(404, None)]
    with pytest.raises(ValueError, match="HTTP 404"):
        fetch(second, cache_dir=tmp_path)
    serve.payload = b"weights of run 2" * 1000
    with pytest.raises(ValueError, match="checksum mismatch for the download of"):
        fetch(second, sha256="deadbeef", cache_dir=tmp_path)
    assert cached.read_bytes() == b"weights of run 1" and record.read_text() == first + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "model.pth.url"]
    assert fetch(first, cache_dir=tmp_path).path.read_bytes() == b"weights of run 1"
    assert len(serve.ranges) == 3  # from the cache
    # Interrupted: the part has a record of its own, the cached file keeps its own.
    serve.truncate_first, serve.ranges = 5000, []
    with pytest.raises(ConnectionError, match="fetching the URL again resumes from there"):
        fetch(second, cache_dir=tmp_path, max_attempts=1)
    assert cached.read_bytes() == b"weights of run 1" and record.read_text() == first + "\n"
    assert (tmp_path / "model.pth.part.url").read_text() == second + "\n"
    assert fetch(first, cache_dir=tmp_path).path.read_bytes() == b"weights of run 1"
    assert fetch(second, cache_dir=tmp_path).path.read_bytes() == serve.payload
    assert serve.ranges == [None, "bytes=5000-"]  # resumed
    assert record.read_text() == second + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "model.pth.url"]


def test_a_partial_download_of_another_url_is_not_resumed(
    tmp_path: Path, serve: WeightsServer, tiny_files: dict[str, Path]
) -> None:
    serve.payload = tiny_files["official"].read_bytes()
    serve.truncate_first = len(serve.payload) // 3
    with pytest.raises(ConnectionError, match="fetching the URL again resumes from there"):
        fetch(f"{serve.url}/run1/model.pth", cache_dir=tmp_path, max_attempts=1)
    serve.payload = tiny_files["mmdet"].read_bytes()
    path = fetch(f"{serve.url}/run2/model.pth", cache_dir=tmp_path)
    assert path.path.read_bytes() == serve.payload
    assert serve.ranges == [None, None]  # started over, no Range on run1's bytes


def _count_reads(monkeypatch: pytest.MonkeyPatch, folder: Path) -> dict[str, int]:
    """The bytes Python's ``open`` reads of each file in ``folder`` from now on, by file name."""
    read_bytes: dict[str, int] = {}
    real_open = open

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and Path(file).parent == folder:
            read, name = handle.read, Path(file).name

            def counted_read(*size: int) -> Any:
                data = read(*size)
                read_bytes[name] = read_bytes.get(name, 0) + len(data)
                return data

            handle.read = counted_read
        return handle

    monkeypatch.setattr("builtins.open", counting_open)
    monkeypatch.setattr("io.open", counting_open)
    return read_bytes


def test_a_download_is_not_read_again_for_its_checksum(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the finished download read whole again for its SHA-256. Now hashed as it is written
    (across the attempts of a call); a part left by an earlier call is read once, when resumed."""
    serve.payload = bytes(range(256)) * 4096
    serve.truncate_first = 100_000
    digest = hashlib.sha256(serve.payload).hexdigest()
    url, cache = f"{serve.url}/model.pth", tmp_path / "cache"
    reads = _count_reads(monkeypatch, cache)
    fetched = fetch(url, sha256=digest, cache_dir=cache, sleep=lambda _: None)
    assert fetched == FetchedFile(cache / "model.pth", verified=True)
    assert serve.ranges == [None, "bytes=100000-"] and reads.get("model.pth.part", 0) == 0
    # Resumed in a later call: the part it had is read once; the finished file, never.
    (cache / "model.pth").unlink()
    (cache / "model.pth.part").write_bytes(serve.payload[:5000])
    (cache / "model.pth.part.url").write_text(url + "\n")  # as that call recorded it
    serve.truncate_first, reads["model.pth.part"] = None, 0
    assert fetch(url, sha256=digest, cache_dir=cache).path.read_bytes() == serve.payload
    assert serve.ranges[-1] == "bytes=5000-" and reads["model.pth.part"] == 5000
    assert reads["model.pth"] == len(serve.payload)  # this test's read_bytes, only
    # A wrong download is still caught, and nothing of it kept.
    (cache / "model.pth").unlink()
    serve.payload = b"another file" * 1000
    with pytest.raises(ValueError, match="checksum mismatch for the download of"):
        fetch(url, sha256=digest, cache_dir=cache)
    assert not (cache / "model.pth.part").exists() and not (cache / "model.pth").exists()


def test_a_missing_url_says_what_to_do(tmp_path: Path, serve: WeightsServer) -> None:
    with pytest.raises(ValueError) as info:
        fetch(f"{serve.url}/gone.bin", cache_dir=tmp_path)
    assert str(info.value) == (
        f"cannot download {serve.url}/gone.bin: the server answered HTTP 404 Not Found; check "
        "the URL, or download the file yourself and give its path"
    )
    assert list(tmp_path.iterdir()) == []  # no record of a URL that gave nothing


def test_a_wrong_checksum_costs_no_good_cached_file(tmp_path: Path, serve: WeightsServer) -> None:
    """Was: fetch(url, sha256=<a typo>) deleted the good cached file before downloading it again
    (to the same mismatch), so the next fetch downloaded it a third time. The cached file is now
    replaced only by a download that matches."""
    serve.payload = b"the published bytes"
    url = f"{serve.url}/model.pth"
    fetch(url, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="checksum mismatch for the download of"):
        fetch(url, sha256="deadbeef", cache_dir=tmp_path)
    assert (tmp_path / "model.pth").read_bytes() == serve.payload
    assert fetch(url, sha256=hashlib.sha256(serve.payload).hexdigest(), cache_dir=tmp_path)
    assert len(serve.ranges) == 2  # the file as first cached, not downloaded a third time
    assert fetch(f"{serve.url}/other/model.pth", cache_dir=tmp_path).path.read_bytes()
    assert len(serve.ranges) == 3  # its record still names its URL: not another URL's file


def test_a_cached_file_that_fails_the_checksum_is_read_once(
    tmp_path: Path, serve: WeightsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: read whole twice for its SHA-256 by every fetch given a wrong checksum (before and
    after taking the download lock), though nothing had changed it; now once."""
    serve.payload = b"the published bytes"
    url, cached = f"{serve.url}/model.pth", tmp_path / "model.pth"
    fetch(url, cache_dir=tmp_path)
    reads = _count_reads(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="checksum mismatch for the download of"):
        fetch(url, sha256="deadbeef", cache_dir=tmp_path)
    assert reads["model.pth"] == len(serve.payload) and cached.read_bytes() == serve.payload

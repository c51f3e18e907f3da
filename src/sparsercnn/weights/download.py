"""Getting published weights: a name, URL or path in, a ready model out.

:func:`fetch` resolves a published name (:data:`PUBLISHED_CHECKPOINTS`), an ``http(s)://`` URL,
a ``file://`` URL or a local path to a verified local file (a
:class:`~sparsercnn.fetched_file.FetchedFile`, which tells the readers not to read it again for
its inner checksums). Downloads go to a cache folder (``$SPARSERCNN_CACHE`` or
``~/.cache/sparsercnn``), resumed after an interruption and renamed into place only once
complete and checked (:mod:`.http_download`). The URL is recorded beside the file, so that
two URLs of one file name never share it (the file of one stays until the other's download has
replaced it, complete and checked), and processes fetching the same file at once wait for one
download (a lock file beside it).
:func:`from_pretrained` then converts any supported layout on the fly.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch

from sparsercnn.fetched_file import FetchedFile
from sparsercnn.model import build_model
from sparsercnn.model_file import LoadedModel, load_state_dict_strict
from sparsercnn.paths import FileVersion, check_file, file_version
from sparsercnn.runtime import check_device
from sparsercnn.weights.convert import convert_checkpoint
from sparsercnn.weights.download_lock import (
    CACHE_ENV,
    cache_write,
    download_lock,
    install_download,
    recorded_url,
    url_record,
)
from sparsercnn.weights.file_digest import (
    ExpectedSha256,
    expected_sha256,
    verify_sha256,
)
from sparsercnn.weights.http_download import download
from sparsercnn.weights.key_tables import Layout
from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS, missing_checkpoint_advice

logger = logging.getLogger(__name__)

_KEPT_UNTIL_REPLACED = "the cached file stays until the download is complete and checked"


def default_cache_dir() -> Path:
    """``$SPARSERCNN_CACHE`` if set (a leading ``~`` expanded: a value set in quotes or in a
    service's environment reaches the process unexpanded), else ``~/.cache/sparsercnn``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sparsercnn").expanduser()


def from_pretrained(
    path_or_url: str | Path,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    layout: Layout | None = None,
) -> LoadedModel:
    """Build the model of a published name, URL or file and load its weights strictly.

    Args:
        path_or_url: a key of :data:`PUBLISHED_CHECKPOINTS`, an ``http(s)://`` or ``file://``
            URL, or a local path; official, mmdetection or our own format (detected from the
            key names).
        sha256: expected SHA-256 (hex, or a prefix of at least 8 digits). Without it, a file
            named the mmdetection way (``...-<8 hex>.pth``) is checked against its name.
        cache_dir: where downloads go (default :func:`default_cache_dir`).
        device: where the model is put; checked (:func:`~sparsercnn.runtime.check_device`)
            before anything is downloaded.
        layout: force the key layout instead of detecting it.

    Returns:
        The model (with the source's post-processing recorded in its config), config and label map.

    Raises:
        ValueError: ``device`` is not a device sparsercnn runs on here, and what :func:`fetch`
            raises.
    """
    device = check_device(device)
    path = fetch(path_or_url, sha256=sha256, cache_dir=cache_dir)
    converted = convert_checkpoint(path, layout)
    model = build_model(converted.config)
    load_state_dict_strict(model, converted.state_dict, str(path))
    model.to(device)
    return LoadedModel(model=model, config=converted.config, categories=converted.categories)


def fetch(
    path_or_url: str | Path,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    max_attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchedFile:
    """A verified local file for a published name, a path, a ``file://`` or ``http(s)://`` URL.

    A key of :data:`PUBLISHED_CHECKPOINTS` (that is not also an existing path) stands for its
    URL and checksum. URLs are downloaded once into ``cache_dir`` (named after the URL's last
    path component); a cached file is checked again and fetched anew if it fails the check or
    was downloaded from another URL of the same name: it is replaced only by a download that is
    complete and matches, and stays where the download fails. Failed download attempts are
    retried after a wait (see :func:`~sparsercnn.weights.http_download.download`; ``sleep``
    waits it).

    Returns:
        The file, ``verified`` where a checksum was expected (it matched): the readers
        (:func:`~sparsercnn.weights.readers.read_checkpoint`) take it as a path and, when it
        is verified, skip the CRC-32 checks inside it, a second read of the whole file.

    Raises:
        FileNotFoundError: a local file does not exist (the message says what to do:
            :func:`~sparsercnn.weights.published.missing_checkpoint_advice`).
        IsADirectoryError: a local path is a folder.
        ValueError: the checksum given does not match (or, for a published name, contradicts
            its published one: nothing is downloaded), a local file does not match the one its
            name carries, or the URL scheme is not supported.
        PermissionError: the file is not cached and the cache folder cannot be written.
        DownloadFailed: (a ``ConnectionError``) the download failed ``max_attempts`` times
            (the partial file is kept and the next call resumes it), or the server sent another
            file than the one published (a checksum published or in its name).
    """
    text = str(path_or_url)
    path = local_checkpoint(text)
    if path is None:
        published = PUBLISHED_CHECKPOINTS.get(text)
        url = published.url if published is not None else text
        name = Path(urllib.parse.urlparse(url).path).name or "checkpoint.pth"
        dst = Path(cache_dir if cache_dir is not None else default_cache_dir()) / name
        if published is None:
            expected = expected_sha256(name, sha256)
        else:
            expected = expected_sha256(name, sha256, text, published.sha256)
        path = _fetch_url(url, dst, expected, max_attempts, sleep)
    else:
        expected = expected_sha256(path.name, sha256)
        verify_sha256(path, expected)
    return FetchedFile(path, verified=expected is not None)


def local_checkpoint(source: str) -> Path | None:
    """The local file that ``source`` (what :func:`fetch` takes) names, checked to be one:
    a path or a ``file://`` URL; ``None`` for an ``http(s)://`` URL and for a published name
    (a key of :data:`PUBLISHED_CHECKPOINTS` that is not also an existing path), both
    downloaded.

    Raises:
        FileNotFoundError: there is no such file (the message says what to do:
            :func:`~sparsercnn.weights.published.missing_checkpoint_advice`).
        IsADirectoryError: it is a folder.
        ValueError: the URL scheme is not supported.
    """
    if source in PUBLISHED_CHECKPOINTS and not Path(source).exists():
        return None
    scheme = urllib.parse.urlparse(source).scheme
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(source).path))
    elif len(scheme) > 1:  # one letter is a Windows drive
        raise ValueError(f"unsupported URL scheme {scheme!r} in {source}; use http(s)://, file://")
    else:
        path = Path(source).expanduser()
    try:
        check_file(path, "checkpoint", "the checkpoint file")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}{missing_checkpoint_advice(path)}") from None
    return path


def _fetch_url(
    url: str,
    dst: Path,
    expected: ExpectedSha256 | None,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> Path:
    """``dst`` (in the cache) downloaded from ``url`` unless it is there already, checked.

    The URL a file was downloaded from is kept beside it (``dst.url``), and that of a download
    under way beside its part (``dst.part.url``): two URLs of the same file name
    (``.../run1/model_final.safetensors``, ``.../run2/...``) share the cache name, and the file
    of one is never used for the other, nor its part resumed for it. The cached file of another
    URL stays until this one's download is complete and checked, then gives way to it
    (:func:`~sparsercnn.weights.download_lock.install_download`): a URL mistyped costs no cached
    file. A file put in the cache by hand, without a record, is used for any URL of its name.
    """
    # A read-only cache that holds the file is enough; the lock needs a writable one.
    usable, unusable = _cached(url, dst, expected)
    if usable:
        return dst
    with download_lock(dst):
        # Another process may have downloaded it while this one waited for the lock.
        if _cached(url, dst, expected, unusable)[0]:
            return dst
        part = dst.with_name(dst.name + ".part")
        record = url_record(part)
        if part.exists() and recorded_url(part) != url:
            logger.info("%s is part of another download; starting over", part)
            cache_write(dst.parent, part.unlink)
        # Recorded first: an interruption leaves no part without its record, or with another's.
        cache_write(dst.parent, lambda: record.write_text(url + "\n"))
        try:
            download(url, part, expected, max_attempts, sleep=sleep)
        except BaseException:
            if not part.exists():  # nothing kept: no record either
                record.unlink(missing_ok=True)
            raise
        install_download(part, dst)
        logger.info("downloaded %s to %s", url, dst)
        return dst


def _cached(
    url: str,
    dst: Path,
    expected: ExpectedSha256 | None,
    seen_unusable: FileVersion | None = None,
) -> tuple[bool, FileVersion | None]:
    """Whether the cache holds ``dst`` as downloaded from ``url``, with the expected checksum.

    A cached file that came from another URL, or that fails the check, is reported (where it
    was not ``seen_unusable`` already) and kept until a download that is complete and matches
    replaces it: a wrong URL or checksum given costs no good file.

    Args:
        seen_unusable: the file an earlier look of this fetch found unusable
            (its :func:`~sparsercnn.paths.file_version`): a second look after waiting for the
            lock reads only a file another process has since replaced.

    Returns:
        Whether it is usable, and where it is not, the version of the file there (``None``
        where there is none).
    """
    version = file_version(dst) if dst.is_file() else None
    if version is None or version == seen_unusable:
        return False, version
    recorded = recorded_url(dst)
    if recorded is not None and recorded != url:
        logger.warning(
            "the cached %s was downloaded from %s, not %s; downloading it (%s)",
            dst,
            recorded,
            url,
            _KEPT_UNTIL_REPLACED,
        )
        return False, version
    try:
        verify_sha256(dst, expected, advice=f"downloading it again ({_KEPT_UNTIL_REPLACED})")
    except ValueError as mismatch:
        logger.warning("%s", mismatch)
        return False, version
    logger.info("using cached %s", dst)
    return True, None

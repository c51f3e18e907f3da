"""Getting published weights: a name, URL or path in, a ready model out.

:func:`fetch` resolves a published name (:data:`PUBLISHED_CHECKPOINTS`), an ``http(s)://`` URL,
a ``file://`` URL or a local path to a verified local file (a
:class:`~sparsercnn.fetched_file.FetchedFile`, which tells the readers not to read it again for
its inner checksums). Downloads go to a cache folder (``$SPARSERCNN_CACHE`` or
``~/.cache/sparsercnn``) through a ``.part`` file that is resumed with an HTTP Range request
after an interruption and renamed into place only once complete and checked. The URL is
recorded beside the file, so that two URLs of one file name never share it, and processes
fetching the same file at once wait for one download (a lock file beside it).
:func:`from_pretrained` then converts any supported layout on the fly.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from sparsercnn.fetched_file import FetchedFile, checksummed_file
from sparsercnn.file_chunks import chunks
from sparsercnn.model import build_model
from sparsercnn.model_file import LoadedModel, load_state_dict_strict
from sparsercnn.paths import check_file
from sparsercnn.runtime import check_device
from sparsercnn.weights.backoff import retry_delay
from sparsercnn.weights.convert import convert_checkpoint
from sparsercnn.weights.download_lock import (
    CACHE_ENV,
    cache_write,
    download_lock,
    recorded_url,
    url_record,
)
from sparsercnn.weights.file_digest import FileSha256, file_sha256
from sparsercnn.weights.key_tables import Layout
from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS, published_download_advice

logger = logging.getLogger(__name__)

# Client errors that a later attempt may not get: Request Timeout, Too Many Requests.
TRANSIENT_HTTP_CODES = (408, 429)
# mmdetection's publish_model convention: "<name>-<first 8 hex digits of the sha256>.pth".
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.pth$")


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
    path component); a cached file is checked again and fetched anew if it fails the check (it
    is replaced only by a download that matches) or was downloaded from another URL of the same
    name. Failed download attempts are retried after a wait (see :func:`download`; ``sleep``
    waits it).

    Returns:
        The file, ``verified`` where a checksum was expected (it matched): the readers
        (:func:`~sparsercnn.weights.readers.read_checkpoint`) take it as a path and, when it
        is verified, skip the CRC-32 checks inside it, a second read of the whole file.

    Raises:
        FileNotFoundError: a local file does not exist.
        IsADirectoryError: a local path is a folder.
        ValueError: the checksum does not match, or the URL scheme is not supported.
        PermissionError: the file is not cached and the cache folder cannot be written.
        ConnectionError: the download failed ``max_attempts`` times; the partial file is kept
            and the next call resumes it.
    """
    text = str(path_or_url)
    published = PUBLISHED_CHECKPOINTS.get(text)
    if published is not None and not Path(text).exists():
        text, sha256 = published.url, sha256 or published.sha256
    scheme = urllib.parse.urlparse(text).scheme
    if scheme in ("http", "https"):
        name = Path(urllib.parse.urlparse(text).path).name or "checkpoint.pth"
        dst = Path(cache_dir if cache_dir is not None else default_cache_dir()) / name
        expected = expected_sha256(name, sha256)
        return _fetched(_fetch_url(text, dst, expected, max_attempts, sleep), expected)
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(text).path))
    elif len(scheme) > 1:  # one letter is a Windows drive
        raise ValueError(f"unsupported URL scheme {scheme!r} in {text}; use http(s)://, file://")
    else:
        path = Path(text).expanduser()
    try:
        check_file(path, "checkpoint", "the checkpoint file")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}{published_download_advice(path)}") from None
    expected = expected_sha256(path.name, sha256)
    verify_sha256(path, expected)
    return _fetched(path, expected)


def _fetched(path: Path, expected: str | None) -> FetchedFile:
    """``path``, whose bytes matched ``expected`` where one was (else nothing checked them)."""
    return FetchedFile(path) if expected is None else checksummed_file(path)


def _fetch_url(
    url: str, dst: Path, expected: str | None, max_attempts: int, sleep: Callable[[float], None]
) -> Path:
    """``dst`` (in the cache) downloaded from ``url`` unless it is there already, checked.

    The URL a file was downloaded from is kept beside it (``dst.url``): two URLs of the same
    file name (``.../run1/model_final.safetensors``, ``.../run2/...``) share the cache name, and
    the file of one is never used for the other. A file put in the cache by hand, without that
    record, is used for any URL of its name.
    """
    # A read-only cache that holds the file is enough; the lock needs a writable one.
    if _cached(url, dst, expected, under_lock=False):
        return dst
    with download_lock(dst):
        # Another process may have downloaded it while this one waited for the lock.
        if _cached(url, dst, expected, under_lock=True):
            return dst
        record, part = url_record(dst), dst.with_name(dst.name + ".part")
        if part.exists() and recorded_url(dst) != url:
            logger.info("%s is part of another download; starting over", part)
            cache_write(dst.parent, part.unlink)
        # Recorded first: an interruption leaves no file without its record, or with another's.
        cache_write(dst.parent, lambda: record.write_text(url + "\n"))
        try:
            return _download(url, dst, expected, max_attempts, sleep=sleep)
        except BaseException:
            if not part.exists() and not dst.exists():  # nothing kept: no record either
                record.unlink(missing_ok=True)
            raise


def _cached(url: str, dst: Path, expected: str | None, under_lock: bool) -> bool:
    """Whether the cache holds ``dst`` as downloaded from ``url``, with the expected checksum.

    A cached file that came from another URL is reported (the first look) or deleted
    (``under_lock``: its record is about to be replaced), to be downloaded again. One that fails
    the check is reported and kept until a download that matches replaces it: a wrong checksum
    given costs no good file.
    """
    if not dst.is_file():
        return False
    recorded = recorded_url(dst) or url
    try:
        if recorded != url:
            raise ValueError(f"the cached {dst} was downloaded from {recorded}, not {url}")
        verify_sha256(dst, expected)
    except ValueError as error:
        if not under_lock:
            logger.warning("%s; downloading it again", error)
        elif recorded != url:
            cache_write(dst.parent, dst.unlink)
        return False
    logger.info("using cached %s", dst)
    return True


def expected_sha256(file_name: str, sha256: str | None) -> str | None:
    """The explicit checksum if given (:func:`_normalised_sha256`), else the 8-digit prefix in
    an mmdetection file name."""
    if sha256 is not None:
        return _normalised_sha256(sha256)
    match = HASH_IN_NAME.search(file_name)
    return match.group(1) if match else None


def _normalised_sha256(sha256: str) -> str:
    """A checksum as it is compared with a digest: stripped, lower case (``hashlib``'s
    ``hexdigest``), whatever case the user copied it in.

    Raises:
        ValueError: it is not 8 to 64 hexadecimal digits.
    """
    normalised = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", normalised):
        raise ValueError(
            f"sha256 {normalised!r} must be 8 to 64 hexadecimal digits: the file's SHA-256 as "
            "sha256sum prints it, or its first 8 or more digits"
        )
    return normalised


def verify_sha256(path: Path, expected: str | None) -> None:
    """Check that the file's SHA-256 starts with ``expected`` (as :func:`expected_sha256`
    gives it; no check when ``None``).

    Raises:
        ValueError: naming the file, the expected and the actual digest, and what to do.
    """
    if expected is None:
        return
    actual = file_sha256(path)
    if actual.startswith(expected):
        return
    from_name = expected_sha256(path.name, None) == expected
    if from_name:
        # A file of the user's own may end in what looks like a checksum by chance (a date:
        # "model-20240101.pth").
        advice = (
            "a name ending in -<8 hex digits>.pth marks a published file's SHA-256: download it "
            "again, or if it is a file of your own, rename it so that its name does not end so"
        )
    else:
        advice = (
            "the file is damaged or not the one expected: download or copy it again, or check "
            "the expected checksum (--sha256)"
        )
    raise ValueError(_mismatch_message(str(path), expected, actual, from_name, advice))


def _mismatch_message(
    subject: str, expected: str, actual: str, from_name: bool, advice: str
) -> str:
    """The one wording of a checksum mismatch: what was checked (``subject``: a file, a
    download), the expected digest (and whether it came from the file's name, see
    :func:`expected_sha256`) and the actual one, then ``advice``, what to do there."""
    named = " (the one its name carries)" if from_name else ""
    return (
        f"checksum mismatch for {subject}: expected sha256 {expected}...{named}, got {actual}; "
        f"{advice}"
    )


def download(
    url: str,
    dst: Path,
    sha256: str | None = None,
    max_attempts: int = 3,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dst`` through ``dst.part``, resuming, verifying, renaming at the end.

    A failed attempt is followed by the next one after
    :func:`~sparsercnn.weights.backoff.retry_delay` seconds (1, 2, 4, ... or the server's
    ``Retry-After``), waited by ``sleep``. ``sha256`` (hex, or a prefix of at least 8 digits)
    may be in any case.

    Raises:
        PermissionError: the folder of ``dst`` cannot be written (naming it).
        ConnectionError: every attempt failed (the ``.part`` file stays, for resuming, when it
            holds anything).
        ValueError: the server refused the URL (4xx but 408 and 429, which are retried) or
            the checksum does not match (the ``.part`` file is deleted); or ``sha256`` is not
            8 to 64 hexadecimal digits (before anything is downloaded).
    """
    expected = None if sha256 is None else _normalised_sha256(sha256)
    return _download(url, dst, expected, max_attempts, timeout, sleep)


def _download(
    url: str,
    dst: Path,
    expected: str | None,
    max_attempts: int = 3,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """:func:`download` with the checksum ``expected`` normalised already
    (:func:`_normalised_sha256`)."""
    folder = dst.parent
    cache_write(folder, lambda: folder.mkdir(parents=True, exist_ok=True))
    # A folder that takes no file fails here, not as a network error after every attempt.
    cache_write(folder, lambda: tempfile.TemporaryFile(dir=folder).close())
    part = dst.with_name(dst.name + ".part")
    # Hashed as it is written: the finished download is not read again for its checksum.
    digest = None if expected is None else FileSha256(part)
    for attempt in range(1, max_attempts + 1):
        retry_after = None
        try:
            _download_once(url, part, timeout, digest)
            break
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in TRANSIENT_HTTP_CODES:
                raise ValueError(
                    f"cannot download {url}: the server answered HTTP {error.code} "
                    f"{error.reason}; check the URL, or download the file yourself and give its "
                    "path"
                ) from error
            failure: Exception = error
            retry_after = error.headers.get("Retry-After") if error.headers else None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            failure = error
        have = part.stat().st_size if part.exists() else 0
        what = _attempt_failure(url, failure, have)
        if attempt == max_attempts:
            if not have:
                part.unlink(missing_ok=True)
                raise ConnectionError(
                    f"{what}; gave up after {attempt} attempt(s), nothing was received: check "
                    "the network and the URL, or download the file yourself and give its path"
                ) from failure
            raise ConnectionError(
                f"{what}; gave up after {attempt} attempt(s): {have} bytes are kept in {part}, "
                "and fetching the URL again resumes from there"
            ) from failure
        delay = retry_delay(attempt, retry_after)
        logger.warning("%s; attempt %d of %d in %g s", what, attempt + 1, max_attempts, delay)
        sleep(delay)
    if (
        digest is not None
        and expected is not None
        and not (actual := digest.hexdigest()).startswith(expected)
    ):
        part.unlink()
        raise ValueError(
            _mismatch_message(
                f"the download of {url}",
                expected,
                actual,
                expected_sha256(dst.name, None) == expected,
                "nothing was kept. Run again to download it anew; if the checksum differs again, "
                "the URL serves another file than the one expected: check the URL and the "
                "checksum",
            )
        )
    os.replace(part, dst)
    logger.info("downloaded %s to %s", url, dst)
    return dst


def _attempt_failure(url: str, error: Exception, have: int) -> str:
    """How a download attempt failed, naming ``url``: it could not connect, the server answered
    an error status, or the transfer broke off with ``have`` bytes of the file kept."""
    if isinstance(error, urllib.error.HTTPError):
        return f"{url} answered HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):  # urlopen's error before any response
        reason = error.reason
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return f"could not connect to {url} ({text})"
    return f"download of {url} interrupted at {have} bytes ({str(error) or type(error).__name__})"


def _download_once(url: str, part: Path, timeout: float, digest: FileSha256 | None) -> None:
    """Append the rest of ``url`` to ``part`` (or start over if the server ignores Range),
    passing what is written to ``digest``, the SHA-256 of ``part``, where one is kept."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "sparsercnn"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left after ``offset``: already complete
            return
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        if not (offset and response.status == 206 and content_range.startswith(f"bytes {offset}-")):
            offset = 0
        if digest is not None and offset:
            digest.catch_up()  # an earlier run's bytes: read once, before those appended
        elif digest is not None:
            digest.start_over()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        written = offset
        with (
            open(part, "ab" if offset else "wb") as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=None,
            ) as bar,
        ):
            for chunk in chunks(response):
                handle.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if total is not None and written < total:
        raise ConnectionError(f"connection closed before the end, at {written} of {total} bytes")

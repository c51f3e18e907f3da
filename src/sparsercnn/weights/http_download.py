"""One URL downloaded to one file over HTTP(S): through a ``.part`` file that is resumed with a
Range request after an interruption, hashed as it is written, checked and renamed into place
only once complete. Failed attempts are retried after a wait (:mod:`.backoff`), and each is
reported in words (could not connect, an HTTP status, cut off at N bytes).
:func:`~sparsercnn.weights.download.fetch` downloads into its cache through it.
"""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.file_chunks import chunks
from sparsercnn.weights.backoff import retry_delay
from sparsercnn.weights.download_lock import cache_write
from sparsercnn.weights.file_digest import (
    FileSha256,
    expected_sha256,
    mismatch_message,
    normalised_sha256,
)

logger = logging.getLogger(__name__)

# Client errors that a later attempt may not get: Request Timeout, Too Many Requests.
TRANSIENT_HTTP_CODES = (408, 429)


class DownloadFailed(ExplainedFailure, ConnectionError):
    """Every attempt of a download failed; the message says how the last one did and what to do
    (check the network and the URL, or run again to resume the bytes kept)."""


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
        DownloadFailed: (a ``ConnectionError``) every attempt failed (the ``.part`` file
            stays, for resuming, when it holds anything).
        ValueError: the server refused the URL (4xx but 408 and 429, which are retried) or
            the checksum does not match (the ``.part`` file is deleted); or ``sha256`` is not
            8 to 64 hexadecimal digits (before anything is downloaded).
    """
    expected = None if sha256 is None else normalised_sha256(sha256)
    return download_expecting(url, dst, expected, max_attempts, timeout, sleep)


def download_expecting(
    url: str,
    dst: Path,
    expected: str | None,
    max_attempts: int = 3,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """:func:`download` with the checksum ``expected`` normalised already
    (:func:`~sparsercnn.weights.file_digest.normalised_sha256`), as
    :func:`~sparsercnn.weights.file_digest.expected_sha256` gives it; ``None``: unchecked."""
    folder = dst.parent
    cache_write(folder, lambda: folder.mkdir(parents=True, exist_ok=True))
    # A folder that takes no file fails here, not as a network error after every attempt.
    cache_write(folder, lambda: tempfile.TemporaryFile(dir=folder).close())
    part = dst.with_name(dst.name + ".part")
    # Hashed as it is written, checked or not (cheap next to the network; a resumed .part is
    # read once): the finished download is not read again for its checksum.
    digest = FileSha256(part)
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
                raise DownloadFailed(
                    f"{what}; gave up after {attempt} attempt(s), nothing was received: check "
                    "the network and the URL, or download the file yourself and give its path"
                ) from failure
            raise DownloadFailed(
                f"{what}; gave up after {attempt} attempt(s): {have} bytes are kept in {part}, "
                "and fetching the URL again resumes from there"
            ) from failure
        delay = retry_delay(attempt, retry_after)
        logger.warning("%s; attempt %d of %d in %g s", what, attempt + 1, max_attempts, delay)
        sleep(delay)
    if expected is not None and not (actual := digest.hexdigest()).startswith(expected):
        part.unlink()
        raise ValueError(
            mismatch_message(
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


def _download_once(url: str, part: Path, timeout: float, digest: FileSha256) -> None:
    """Append the rest of ``url`` to ``part`` (or start over if the server ignores Range),
    passing what is written to ``digest``, the SHA-256 of ``part``."""
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
        if offset:
            digest.catch_up()  # an earlier run's bytes: read once, before those appended
        else:
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
                digest.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if total is not None and written < total:
        raise ConnectionError(f"connection closed before the end, at {written} of {total} bytes")

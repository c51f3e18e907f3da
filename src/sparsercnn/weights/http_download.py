"""One URL downloaded to one file over HTTP(S): a ``.part`` file, resumed with a Range request
after an interruption, hashed as it is written and checked once complete; its caller then moves
it into place, so that a file already there stays until the download is whole and checked.
Failed attempts are retried after a wait (:mod:`.backoff`), and each is reported in words
(could not connect, an HTTP status, cut off at N bytes).
:func:`~sparsercnn.weights.download.fetch` downloads into its cache through it.
"""

from __future__ import annotations

import http.client
import logging
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
from sparsercnn.weights.file_digest import ExpectedSha256, FileSha256, mismatch_message

logger = logging.getLogger(__name__)

# Client errors that a later attempt may not get: Request Timeout, Too Many Requests.
TRANSIENT_HTTP_CODES = (408, 429)


class DownloadFailed(ExplainedFailure, ConnectionError):
    """A download failed: every attempt did, or the server sent another file than the one
    published (its checksum, or the one its name carries, does not match). The message says how
    and what to do (check the network and the URL, run again to resume the bytes kept or to
    download it anew)."""


def download(
    url: str,
    part: Path,
    expected: ExpectedSha256 | None = None,
    max_attempts: int = 3,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Download ``url`` into the file ``part``, resuming from the bytes it holds, and check it.

    Once this returns, ``part`` holds the whole file, matching ``expected``; the caller moves
    it into place (:func:`~sparsercnn.weights.download_lock.install_download` in the download
    cache), so that the file it replaces stays until then. A failed attempt is followed by the
    next one after :func:`~sparsercnn.weights.backoff.retry_delay` seconds (1, 2, 4, ... or the
    server's ``Retry-After``), waited by ``sleep``. :func:`~sparsercnn.weights.download.fetch`
    calls it for a file not in its cache.

    Args:
        part: the file written (``NAME.part`` beside the ``NAME`` it becomes: its progress bar
            shows ``NAME``).
        expected: the checksum the file must have
            (:func:`~sparsercnn.weights.file_digest.expected_sha256`); ``None``: unchecked.

    Raises:
        PermissionError: the folder of ``part`` cannot be written (naming it).
        DownloadFailed: (a ``ConnectionError``) every attempt failed (the ``.part`` file
            stays, for resuming, when it holds anything), or the file does not match a
            published checksum or the one its name carries (the ``.part`` file is deleted).
        ValueError: the server refused the URL (4xx but 408 and 429, which are retried) or
            the file does not match the checksum given (the ``.part`` file is deleted).
    """
    folder = part.parent
    cache_write(folder, lambda: folder.mkdir(parents=True, exist_ok=True))
    # A folder that takes no file fails here, not as a network error after every attempt.
    cache_write(folder, lambda: tempfile.TemporaryFile(dir=folder).close())
    # Hashed as it is written, checked or not (cheap next to the network; a resumed .part is
    # read once): the finished download is not read again for its checksum.
    digest = FileSha256(part)
    for attempt in range(1, max_attempts + 1):
        retry_after = None
        try:
            sized = _download_once(url, part, timeout, digest)
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
    if expected is not None and not expected.matches(actual := digest.hexdigest()):
        part.unlink()
        raise _mismatch(url, expected, actual)
    if expected is None and not sized:
        # Not "give --sha256": train's --init-from and --backbone-weights take none.
        logger.warning(
            "%s did not say how long the file is, and no SHA-256 was given to check it: a "
            "download cut short cannot be told from a complete one",
            url,
        )


def _mismatch(url: str, expected: ExpectedSha256, actual: str) -> Exception:
    """The error of a download of ``url`` whose SHA-256 is ``actual``, not ``expected`` (its
    ``.part`` file deleted): wrong input where the checksum was given (it, or a URL given, is
    wrong: a ``ValueError``), a failed download where it was published, or the download fails
    the published digits that a given checksum extends too (the server sent another file:
    :class:`DownloadFailed`)."""
    subject = f"the download of {url}"
    if expected.published is not None and not expected.published.matches(actual):
        expected = expected.published  # not even the published digits: another file was sent
    if expected.origin == "given":
        if expected.published_name is not None:
            advice = (
                f"nothing was kept: the published file {expected.published_name} does not "
                "match the checksum given; check --sha256 (sha256=)"
            )
        else:
            advice = (
                "nothing was kept: the URL serves another file than the checksum given "
                "describes; check --sha256 (sha256=) and the URL"
            )
        return ValueError(mismatch_message(subject, expected, actual, advice))
    advice = (
        "nothing was kept: the server sent another file than the one published (damaged on the "
        "way, or replaced there). Run again to download it anew; if it differs again, download "
        "the file yourself and give its path"
    )
    if expected.origin == "name":
        advice += " (or, for a file of your own whose name ends so by chance, its own checksum)"
    return DownloadFailed(mismatch_message(subject, expected, actual, advice))


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


def _download_once(url: str, part: Path, timeout: float, digest: FileSha256) -> bool:
    """Append the rest of ``url`` to ``part`` (or start over if the server ignores Range),
    passing what is written to ``digest``, the SHA-256 of ``part``.

    Returns:
        Whether the response said where its body ends (a length, or chunks): a body the server
        ends by closing the connection, cut short, reads as complete.

    Raises:
        ConnectionError: the connection closed before the end the response said (the bytes
            received before are kept in ``part``).
    """
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
            return True
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
            try:
                for chunk in chunks(response):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as error:
                # A chunked body cut off: the whole chunks of the failed read are the file's
                # next bytes, kept for resuming.
                handle.write(error.partial)
                digest.update(error.partial)
                written += len(error.partial)
                raise ConnectionError("connection closed before the end") from error
    if total is not None and written < total:
        raise ConnectionError(f"connection closed before the end, at {written} of {total} bytes")
    return total is not None or bool(response.chunked)

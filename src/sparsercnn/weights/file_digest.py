"""SHA-256 digests of weight files and their checks: a file's digest read a chunk at a time
(:func:`file_sha256`), a download's ``.part`` file's kept as its bytes are written
(:class:`FileSha256`, so that a finished download is checked without being read again), the
checksum a file is expected to have (given, or in an mmdetection file name) and the one
wording of a mismatch. :mod:`sparsercnn.weights.download` and
:mod:`sparsercnn.weights.http_download` check their files with them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sparsercnn.file_chunks import chunks

# mmdetection's publish_model convention: "<name>-<first 8 hex digits of the sha256>.pth".
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.pth$")


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file ``path``, read once."""
    return FileSha256(path).hexdigest()


class FileSha256:
    """The SHA-256 of a file that is written by appending to it (a download's ``.part``), kept
    up to date as it is written.

    The writer passes each appended chunk to :meth:`update`, and calls :meth:`catch_up` before
    appending to the file as it is on disk (:meth:`start_over` before writing it anew). Only the
    bytes of the file not seen written (an earlier run's, or those of a write that failed
    part-way) are ever read from it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._digest = hashlib.sha256()
        self._size = 0  # how many of the file's first bytes the digest covers

    def start_over(self) -> None:
        """The file is being written anew: nothing of it is hashed."""
        self._digest, self._size = hashlib.sha256(), 0

    def catch_up(self) -> None:
        """Make the digest that of the file as it is on disk: read the bytes past those hashed,
        or the whole file where it is shorter than what was hashed (a buffered write lost)."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < self._size:
            self.start_over()
        if size > self._size:
            with open(self.path, "rb") as handle:
                handle.seek(self._size)
                for block in chunks(handle):
                    self.update(block)

    def update(self, chunk: bytes) -> None:
        """``chunk`` was appended to the file."""
        self._digest.update(chunk)
        self._size += len(chunk)

    def hexdigest(self) -> str:
        """The SHA-256 (hex) of the file as it is on disk now."""
        self.catch_up()
        return self._digest.hexdigest()


def expected_sha256(file_name: str, sha256: str | None) -> str | None:
    """The explicit checksum if given (:func:`normalised_sha256`), else the 8-digit prefix in
    an mmdetection file name."""
    if sha256 is not None:
        return normalised_sha256(sha256)
    match = HASH_IN_NAME.search(file_name)
    return match.group(1) if match else None


def normalised_sha256(sha256: str) -> str:
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
    raise ValueError(mismatch_message(str(path), expected, actual, from_name, advice))


def mismatch_message(subject: str, expected: str, actual: str, from_name: bool, advice: str) -> str:
    """The one wording of a checksum mismatch: what was checked (``subject``: a file, a
    download), the expected digest (and whether it came from the file's name, see
    :func:`expected_sha256`) and the actual one, then ``advice``, what to do there."""
    named = " (the one its name carries)" if from_name else ""
    return (
        f"checksum mismatch for {subject}: expected sha256 {expected}...{named}, got {actual}; "
        f"{advice}"
    )

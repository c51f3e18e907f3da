"""SHA-256 digests of weight files and their checks: a file's digest read a chunk at a time
(:func:`file_sha256`), a download's ``.part`` file's kept as its bytes are written
(:class:`FileSha256`, so that a finished download is checked without being read again), the
checksum a file is expected to have and whose word it is (:class:`ExpectedSha256`: given,
published, or in an mmdetection file name) and the one wording of a mismatch.
:mod:`sparsercnn.weights.download` and :mod:`sparsercnn.weights.http_download` check their
files with them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

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


@dataclass(frozen=True)
class ExpectedSha256:
    """The SHA-256 a file is expected to have, and whose word it is.

    Attributes:
        digest: lower-case hex, 8 to 64 digits: the file's SHA-256 or its first digits.
        origin: ``"given"`` by the caller (``--sha256``, ``sha256=``), ``"published"`` with
            a published name (:data:`~sparsercnn.weights.published.PUBLISHED_CHECKPOINTS`), or
            carried by the file's ``"name"`` (mmdetection's ``<name>-<8 hex digits>.pth``). A
            download that fails a given checksum is wrong input (the checksum or the URL); one
            that fails a published checksum or its name's is a failed download (the server sent
            another file).
        published_name: for a checksum ``"given"``, the published name the file is fetched
            as, for the messages (a mismatch names the published file, not its URL, which the
            user never gave); ``None`` for a URL or a path, and for a checksum not given.
        published: for a checksum ``"given"`` longer than the published one it agrees with
            (the whole SHA-256 of a file whose name carries 8 digits), the published one: a
            download that fails it too is a failed download, one that fails only the digits
            past it is wrong input.
    """

    digest: str
    origin: Literal["given", "published", "name"]
    published_name: str | None = None
    published: ExpectedSha256 | None = None

    def matches(self, actual: str) -> bool:
        """Whether ``actual`` (a whole SHA-256, hex) is the digest expected."""
        return actual.startswith(self.digest)

    @property
    def whose(self) -> str:
        """Whose checksum it is, for the messages: ``""`` where the caller's, else the words in
        parentheses after it, a leading space included."""
        return {
            "given": "",
            "published": " (the published one)",
            "name": " (the one its name carries)",
        }[self.origin]


def expected_sha256(
    file_name: str,
    given: str | None,
    published_name: str | None = None,
    published_sha256: str | None = None,
) -> ExpectedSha256 | None:
    """The checksum the file ``file_name`` is expected to have: the one ``given`` (normalised,
    :func:`normalised_sha256`), else ``published_sha256``, else the 8-digit prefix in an
    mmdetection file name (the published one, for a published name); ``None`` where there is
    none.

    Args:
        published_name: the published name (a key of
            :data:`~sparsercnn.weights.published.PUBLISHED_CHECKPOINTS`) the file is fetched
            as, whose published checksum or file name's is the file's for certain: a ``given``
            one that contradicts it is refused, before anything is downloaded, and one that
            agrees with it is the published one where that has as many digits, so that a
            download that fails it is a failed download, not wrong input; a longer one is the
            given one, with the published one (:attr:`ExpectedSha256.published`).
        published_sha256: the checksum published for ``published_name``
            (:attr:`~sparsercnn.weights.published.PublishedCheckpoint.sha256`), where it has one.

    Raises:
        ValueError: ``given`` is not 8 to 64 hexadecimal digits, or it contradicts the
            checksum of ``published_name``.
    """
    known: ExpectedSha256 | None
    if published_sha256 is not None:
        known = ExpectedSha256(normalised_sha256(published_sha256), "published")
    else:
        match = HASH_IN_NAME.search(file_name)
        # A published file's name carries its publisher's checksum, not one by chance.
        origin: Literal["published", "name"] = "name" if published_name is None else "published"
        known = ExpectedSha256(match.group(1), origin) if match else None
    if given is None:
        return known
    expected = ExpectedSha256(normalised_sha256(given), "given", published_name)
    if published_name is None or known is None:
        return expected
    shorter, longer = sorted((expected.digest, known.digest), key=len)
    if not longer.startswith(shorter):
        raise ValueError(
            f"--sha256 (sha256=) {expected.digest} is not the checksum of the published "
            f"checkpoint {published_name} ({file_name}), {known.digest}...{known.whose}: "
            "nothing was downloaded; give none (the published one is checked), or correct it"
        )
    if len(known.digest) >= len(expected.digest):
        return known
    # The digits past the published ones are the caller's word alone.
    return replace(expected, published=known)


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


def verify_sha256(path: Path, expected: ExpectedSha256 | None, advice: str | None = None) -> None:
    """Check that the file's SHA-256 is the one ``expected`` (no check when ``None``).

    Args:
        advice: what to do about a mismatch, for the message (a cached download's: it is
            downloaded again); by default, what to do about a file given (:func:`_file_advice`).

    Raises:
        ValueError: naming the file, the expected and the actual digest, and what to do.
    """
    if expected is None:
        return
    actual = file_sha256(path)
    if not expected.matches(actual):
        advice = advice or _file_advice(expected)
        raise ValueError(mismatch_message(str(path), expected, actual, advice))


def _file_advice(expected: ExpectedSha256) -> str:
    """What to do about a file given that does not match ``expected``, by whose word it is: its
    name's or the caller's (a local file has no published checksum)."""
    if expected.origin == "name":
        # A file of the user's own may end in what looks like a checksum by chance (a date:
        # "model-20240101.pth").
        return (
            "a name ending in -<8 hex digits>.pth marks a published file's SHA-256: download it "
            "again, or if it is a file of your own, rename it so that its name does not end so"
        )
    return (
        "the file is damaged or not the one expected: download or copy it again, or check "
        "the expected checksum, --sha256 (sha256=)"
    )


def mismatch_message(subject: str, expected: ExpectedSha256, actual: str, advice: str) -> str:
    """The one wording of a checksum mismatch: what was checked (``subject``: a file, a
    download), the expected digest (and whose it is, where not the caller's) and the actual
    one, then ``advice``, what to do there."""
    return (
        f"checksum mismatch for {subject}: expected sha256 {expected.digest}...{expected.whose}, "
        f"got {actual}; {advice}"
    )

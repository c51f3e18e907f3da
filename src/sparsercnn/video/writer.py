"""Encoding RGB frames into a video file with PyAV, atomically (like
:func:`~sparsercnn.atomic_file.atomic_write`): frames go to a temporary file next to the target,
which is renamed over it only once the video is complete, so a failed run leaves nothing
half-written and an earlier video intact.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from sparsercnn.atomic_file import fsync_directory
from sparsercnn.video.reader import MAX_RATE_DENOMINATOR, import_av

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.video.stream import VideoStream

logger = logging.getLogger(__name__)

# Suffix -> container format; all of them take H.264 and MPEG-4 part 2.
CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


@cache
def has_encoder(name: str) -> bool:
    """Whether PyAV's ffmpeg can encode with codec ``name``."""
    av = import_av()
    try:
        av.codec.Codec(name, "w")
    except Exception:  # UnknownCodecError, or an ffmpeg build without the encoder
        return False
    return True


def video_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as the frame rate a video file holds: a fraction with a denominator of at most
    65535 (what MPEG-4 part 2 accepts), the nearest one.

    Raises:
        ValueError: ``fps`` is not > 0, or below the least such rate (about 1/65535, one frame in
            18 hours).
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    rate = Fraction(fps).limit_denominator(MAX_RATE_DENOMINATOR)
    if rate == 0:
        raise ValueError(
            f"{float(fps):.3g} frames per second is below 1/{MAX_RATE_DENOMINATOR}, the least "
            "frame rate a video file holds"
        )
    return rate


def choose_codec(width: int, height: int) -> str:
    """H.264 (libx264) when available and the size is even (its 4:2:0 needs it), else MPEG-4."""
    if width % 2 == 0 and height % 2 == 0 and has_encoder("libx264"):
        return "libx264"
    return "mpeg4"


class VideoWriter:
    """Writes RGB frames of one size to a video file at a constant frame rate.

    Use it as a context manager: a clean exit finishes the file (:meth:`close`), an exception
    removes what was written (:meth:`abort`). The file is opened at the first frame, whose size
    fixes the video's.

    Args:
        path: the video to write; ``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``.
        fps: frames per second.
        codec: an ffmpeg encoder name; default :func:`choose_codec`.

    Raises:
        ValueError: an unsupported suffix, or ``fps`` not positive or too low
            (:func:`video_rate`).
    """

    def __init__(self, path: str | Path, fps: float | Fraction, *, codec: str | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in CONTAINER_FORMATS:
            raise ValueError(
                f"video {self.path}: cannot write {self.path.suffix!r} files; use one of "
                f"{', '.join(CONTAINER_FORMATS)}"
            )
        try:
            self.fps = video_rate(fps)
        except ValueError as error:
            raise ValueError(f"video {self.path}: {error}") from None
        self.codec = codec
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (h, w)
        self._tmp: Path | None = None
        self._container: OutputContainer | None = None
        self._stream: VideoStream | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, image: np.ndarray | Image.Image) -> None:
        """Append one frame: an ``(H, W, 3)`` uint8 RGB array or a PIL image.

        Raises:
            ValueError: not an RGB frame, or its size differs from the first frame's.
        """
        av = import_av()
        array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(
                f"video {self.path}: frames must be (H, W, 3) uint8 RGB, got "
                f"{array.shape} {array.dtype}"
            )
        height, width = array.shape[:2]
        if self._stream is None:
            self._open(width, height)
        elif (height, width) != self.size:
            raise ValueError(
                f"video {self.path}: frame {self.num_frames} is {width}x{height}, the video is "
                f"{self.size[1]}x{self.size[0]}"  # type: ignore[index]
            )
        assert self._container is not None and self._stream is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.num_frames += 1

    def _open(self, width: int, height: int) -> None:
        av = import_av()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as error:
            raise _naming(error, self.path) from error
        os.close(fd)
        self._tmp = Path(name)
        self.size = (height, width)
        container = av.open(name, "w", format=CONTAINER_FORMATS[self.path.suffix.lower()])
        self._container = container
        codec = self.codec or choose_codec(width, height)
        stream = container.add_stream(codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}  # near-transparent: thin boxes and captions stay sharp
        if codec == "mpeg4":
            # Its default 200 kb/s blurs boxes and captions; give ~0.2 bits per pixel.
            stream.bit_rate = max(1_000_000, int(0.2 * width * height * float(self.fps)))
        self._stream = stream
        logger.debug("writing %s (%s, %dx%d, %s fps)", self.path, codec, width, height, self.fps)

    def close(self) -> Path:
        """Flush the encoder and move the finished video to :attr:`path`.

        Raises:
            ValueError: no frame was written (nothing is created).
            OSError: the file could not be written; the message names :attr:`path`.
        """
        if self._container is None or self._stream is None or self._tmp is None:
            raise ValueError(f"video {self.path}: no frames to write")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            with open(self._tmp, "rb") as handle:
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
            os.replace(self._tmp, self.path)
        except BaseException as error:
            self.abort()
            if isinstance(error, OSError):
                raise _naming(error, self.path) from error
            raise
        self._tmp = None
        fsync_directory(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file; :attr:`path` is left as it was."""
        if self._container is not None:
            # The encoder may be in any state; the file goes anyway.
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` re-raised as the same kind (by errno) reading ``PATH: reason``."""
    if error.errno is None:
        return OSError(f"could not write {path} ({error})")
    return OSError(error.errno, error.strerror or str(error), str(path))

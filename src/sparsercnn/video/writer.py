"""Encoding RGB frames into a video file with PyAV, atomically
(:class:`~sparsercnn.atomic_file.AtomicFile`): frames go to a temporary file next to the target,
which is renamed over it only once the video is complete, so a failed run leaves nothing
half-written and an earlier video intact.
"""

from __future__ import annotations

import contextlib
import logging
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from sparsercnn.atomic_file import AtomicFile, write_error
from sparsercnn.video.reader import MAX_RATE_DENOMINATOR, import_av

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.packet import Packet
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
    """``fps`` as the frame rate a video file holds: the nearest fraction whose numerator and
    denominator are at most 65535 (MPEG-4 part 2 takes no other: its time base is
    ``1 / fps``), such as 6.77 for a variable-rate video's average rate 112000/16533.

    Raises:
        ValueError: ``fps`` is not > 0, or outside 1/65535 to 65535 (one frame in 18 hours).
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    # Compared before rounding: a rate below 1/65535 would round to 1/65535 (or 0), not fail.
    if float(fps) < 1 / MAX_RATE_DENOMINATOR:
        raise ValueError(
            f"{float(fps):.3g} frames per second is below 1/{MAX_RATE_DENOMINATOR}, the least "
            "frame rate a video file holds"
        )
    rate = Fraction(fps).limit_denominator(MAX_RATE_DENOMINATOR)
    if rate > MAX_RATE_DENOMINATOR:
        raise ValueError(
            f"{float(fps):g} frames per second is above {MAX_RATE_DENOMINATOR}, the most a "
            "video file holds"
        )
    if rate.numerator > MAX_RATE_DENOMINATOR:
        rate = 1 / (1 / rate).limit_denominator(MAX_RATE_DENOMINATOR)
    return rate


def choose_codec(width: int, height: int) -> str:
    """H.264 (libx264) when available and the size is even (its 4:2:0 needs it), else MPEG-4."""
    if width % 2 == 0 and height % 2 == 0 and has_encoder("libx264"):
        return "libx264"
    return "mpeg4"


class VideoWriter:
    """Writes RGB frames of one size to a video file, at a constant frame rate or at the times
    given with the frames (a variable frame rate).

    Use it as a context manager: a clean exit finishes the file (:meth:`close`), an exception
    removes what was written (:meth:`abort`). The file is opened at the first frame, whose size
    fixes the video's, and whether :meth:`write` gets timestamps fixes the timing: without them,
    frame ``n`` is shown at ``n / fps``; with them, at its timestamp less the first frame's (to
    the container's tick: 1/1000 s in ``.mkv``, ``1 / fps`` over 2^k in ``.mp4``), and ``fps``
    is the rate the file announces. The encoder sees the same frames either way (timestamps
    only change the container's times), so frames at ``n / fps`` give the same file.

    Args:
        path: the video to write; ``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``.
        fps: frames per second (with timestamps, the average).
        codec: an ffmpeg encoder name; default :func:`choose_codec`.
        name: how messages name the video (default ``path``): a caller writing to a staged
            file that is moved into place later gives the final path, and what is drawn.

    Raises:
        ValueError: an unsupported suffix, or ``fps`` not positive or too low
            (:func:`video_rate`).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        *,
        codec: str | None = None,
        name: str | None = None,
    ):
        self.path = Path(path)
        self.name = str(self.path) if name is None else name
        if self.path.suffix.lower() not in CONTAINER_FORMATS:
            raise ValueError(
                f"video {self.name}: cannot write {self.path.suffix!r} files; use one of "
                f"{', '.join(CONTAINER_FORMATS)}"
            )
        try:
            self.fps = video_rate(fps)
        except ValueError as error:
            raise ValueError(f"video {self.name}: {error}") from None
        self.codec = codec
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (h, w)
        self._file: AtomicFile | None = None
        self._container: OutputContainer | None = None
        self._stream: VideoStream | None = None
        # With timestamps: the first frame's (seconds), and every frame's time in ticks of the
        # container's time base (the encoder numbers frames 0, 1, 2, ... at ``fps``).
        self._start: float | None = None
        self._ticks: list[int] = []
        self._tick = Fraction(0)  # the container's time base, once opened
        self._reordered = False

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

    def write(self, image: np.ndarray | Image.Image, timestamp: float | None = None) -> None:
        """Append one frame: an ``(H, W, 3)`` uint8 RGB array or a PIL image.

        Args:
            image: the frame.
            timestamp: when it is shown, in seconds (a source frame's
                :attr:`~sparsercnn.video.reader.Frame.timestamp`); give one for every frame or
                for none. A time not after the previous frame's (a damaged source) is moved one
                tick after it, with a warning.

        Raises:
            ValueError: not an RGB frame, its size differs from the first frame's, or it has a
                timestamp where the first frame had none or the other way round.
        """
        av = import_av()
        array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(
                f"video {self.name}: frames must be (H, W, 3) uint8 RGB, got "
                f"{array.shape} {array.dtype}"
            )
        height, width = array.shape[:2]
        if self._stream is None:
            self._start = timestamp
            self._open(width, height)
        elif (height, width) != self.size:
            raise ValueError(
                f"video {self.name}: frame {self.num_frames} is {width}x{height}, the video is "
                f"{self.size[1]}x{self.size[0]}"  # type: ignore[index]
            )
        elif (timestamp is None) != (self._start is None):
            given, first = ("no", "one") if timestamp is None else ("a", "none")
            raise ValueError(
                f"video {self.name}: frame {self.num_frames} has {given} timestamp but the first "
                f"frame had {first}; give one for every frame or for none"
            )
        assert self._container is not None and self._stream is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        if timestamp is not None:
            self._ticks.append(self._time_ticks(timestamp))
        self._mux(self._stream.encode(frame))
        self.num_frames += 1

    def _mux(self, packets: list[Packet]) -> None:
        """Mux encoded packets; with timestamps, their times moved from the encoder's frame
        numbers to the frames' own times.

        Raises:
            OSError: writing failed (a full disk, ...); the message names :attr:`name`, not the
                temporary file.
        """
        assert self._container is not None and self._stream is not None
        for packet in packets:
            if self._start is not None and packet.pts is not None and packet.dts is not None:
                # Frame numbers (the encoder's time base is 1 / fps); a B-frame stream's first
                # decoding times are before frame 0.
                pts, dts = self._frame_ticks(packet.pts), self._frame_ticks(packet.dts)
                if packet.duration and packet.time_base is not None:
                    packet.duration = round(packet.duration * packet.time_base / self._tick)
                packet.time_base = self._tick
                packet.pts, packet.dts = pts, dts
            try:
                self._container.mux(packet)
            except OSError as error:
                raise write_error(error, self.name) from error

    def _frame_ticks(self, number: int) -> int:
        """The time of the encoder's frame ``number`` in container ticks (extrapolated at
        ``fps`` before frame 0)."""
        if number >= 0:
            return self._ticks[number]
        return round(number / self.fps / self._tick)

    def _time_ticks(self, timestamp: float) -> int:
        """``timestamp`` in container ticks after the first frame's, at least one after the
        previous frame's."""
        assert self._start is not None
        ticks = round((Fraction(timestamp) - Fraction(self._start)) / self._tick)
        if self._ticks and ticks <= self._ticks[-1]:
            if not self._reordered:  # once: a damaged source may have many
                logger.warning(
                    "video %s: frame %d at %.6f s does not come after the previous frame; "
                    "written just after it (and so any later such frame)",
                    self.name,
                    self.num_frames,
                    timestamp,
                )
            self._reordered = True
            ticks = self._ticks[-1] + 1
        return ticks

    def _open(self, width: int, height: int) -> None:
        """Create the temporary file and write the video's header.

        Raises:
            OSError: naming :attr:`name`, not the temporary file.
        """
        av = import_av()
        self._file = AtomicFile(self.path, name=self.name)
        assert self._file.tmp is not None
        try:
            self.size = (height, width)
            container = av.open(
                str(self._file.tmp), "w", format=CONTAINER_FORMATS[self.path.suffix.lower()]
            )
            self._container = container
            codec = self.codec or choose_codec(width, height)
            stream = container.add_stream(codec, rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "18"}  # near-transparent: thin boxes, sharp captions
            if codec == "mpeg4":
                # Its default 200 kb/s blurs boxes and captions; give ~0.2 bits per pixel.
                stream.bit_rate = max(1_000_000, int(0.2 * width * height * float(self.fps)))
            self._stream = stream
            # Writes the header, which fixes the stream's time base (the container's tick).
            container.start_encoding()
        except OSError as error:
            raise write_error(error, self.name) from error
        assert stream.time_base is not None
        self._tick = stream.time_base
        logger.debug("writing %s (%s, %dx%d, %s fps)", self.name, codec, width, height, self.fps)

    def close(self) -> Path:
        """Flush the encoder and move the finished video to :attr:`path`.

        Raises:
            ValueError: no frame was written (nothing is created).
            OSError: the file could not be written; the message names :attr:`name`.
        """
        if self._container is None or self._stream is None or self._file is None:
            raise ValueError(f"video {self.name}: no frames to write")
        try:
            self._mux(self._stream.encode())
            try:
                self._container.close()  # writes the trailer (an MP4's index)
            except OSError as error:
                raise write_error(error, self.name) from error
        except BaseException:
            self.abort()
            raise
        self._container = None
        return self._file.commit()

    def abort(self) -> None:
        """Stop writing and remove the temporary file; :attr:`path` is left as it was."""
        if self._container is not None:
            # The encoder may be in any state; the file goes anyway.
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._file is not None:
            self._file.discard()

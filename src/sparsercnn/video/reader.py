"""Frame sequences: the decoded frames of a video file (PyAV), or a folder of images as a video.

Both yield :class:`Frame` objects (RGB pixels, index in the source, timestamp in seconds), all
or every ``N``-th, for :func:`~sparsercnn.video.prediction.predict_video`. PyAV is the optional
extra ``video`` and is imported only when a video file is opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sparsercnn.data.image_io import load_image
from sparsercnn.predictor import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from av.container import InputContainer

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
# mpeg4 accepts frame-rate denominators up to 2^16 - 1 only.
MAX_RATE_DENOMINATOR = 65535


def import_av() -> ModuleType:
    """PyAV, or an ImportError that says how to install it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            "video needs PyAV, which is not installed: pip install 'sparsercnn[video]'"
        ) from error
    return av


def is_video_file(path: str | Path) -> bool:
    """Whether ``path`` is an existing file with a video suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()


def check_every(every: int) -> None:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every (--every) must be an integer >= 1, got {every!r}")


@dataclass(eq=False)
class Frame:
    """One frame of a :class:`FrameSequence`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB pixels.
        index: position in the source counting from 0, skipped frames included (with
            ``every=N`` the kept indices are 0, N, 2N, ...).
        timestamp: seconds: the frame's presentation time (``pts * time_base``) in a video
            file, ``index / fps`` in a frame folder.
        file: the frame's image file in a frame folder, else None.
    """

    image: np.ndarray
    index: int
    timestamp: float
    file: Path | None = field(default=None)


class FrameSequence(Protocol):
    """What :func:`~sparsercnn.video.prediction.predict_video` reads: frames of one source.

    Attributes:
        path: the video file or frame folder.
        fps: frames per second (the average rate of a video file).
        num_frames: number of frames, or None when the container does not say.
    """

    path: Path
    fps: Fraction
    num_frames: int | None

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """The frames with index ``0, every, 2 * every, ...``, decoded from the start."""
        ...


class VideoFile:
    """The first video stream of a video file, decoded by PyAV.

    Opening checks that the file is a readable video with a frame rate; each call of
    :meth:`frames` decodes it again from the start.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a video PyAV can read, or holds no video stream.
        ImportError: PyAV is not installed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video {self.path} does not exist")
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise ValueError(f"video {self.path}: its video stream has no frame rate")
            self.fps = Fraction(rate).limit_denominator(MAX_RATE_DENOMINATOR)
            self.num_frames: int | None = stream.frames or None
            self.size = (stream.height, stream.width)

    def _open(self) -> InputContainer:
        av = import_av()
        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ValueError(
                f"video {self.path} could not be read ({reason}): not a video or a damaged file"
            ) from error
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            container.close()
            raise ValueError(f"video {self.path} has no video stream (streams: {', '.join(kinds)})")
        return container

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Decode every ``every``-th frame (skipped frames are decoded, not converted).

        Raises:
            ValueError: decoding failed part-way (a damaged file); the message names the file
                and the last good frame.
        """
        check_every(every)
        av = import_av()
        index = -1
        with self._open() as container:
            stream = container.streams.video[0]
            time_base = stream.time_base
            try:
                for index, decoded in enumerate(container.decode(stream)):
                    if index % every:
                        continue
                    if decoded.pts is not None and time_base is not None:
                        timestamp = float(decoded.pts * time_base)
                    else:
                        timestamp = float(index / self.fps)
                    yield Frame(decoded.to_ndarray(format="rgb24"), index, timestamp)
            except av.error.FFmpegError as error:
                reason = getattr(error, "strerror", None) or str(error)
                raise ValueError(
                    f"video {self.path}: decoding failed after frame {index} ({reason}); "
                    "the file is damaged"
                ) from error


class FrameFolder:
    """The images of a folder (and its subfolders) as one video at ``fps`` frames per second.

    Frames are ordered by their path below the folder, numbers compared as numbers
    (``frame_2.png`` before ``frame_10.png``); every frame must have the first one's size.

    Raises:
        FileNotFoundError: ``path`` is not a folder or holds no image file.
        ValueError: ``fps`` is not positive.
    """

    def __init__(self, path: str | Path, fps: float | Fraction) -> None:
        self.path = Path(path)
        if not fps > 0:
            raise ValueError(f"fps (--fps) must be > 0, got {fps}")
        self.fps = Fraction(fps).limit_denominator(MAX_RATE_DENOMINATOR)
        if not self.path.is_dir():
            raise FileNotFoundError(f"frame folder {self.path} is not a folder")
        files = [p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise FileNotFoundError(
                f"frame folder {self.path} contains no image files ({', '.join(IMAGE_SUFFIXES)})"
            )
        self.files = sorted(files, key=lambda p: _natural_key(p.relative_to(self.path)))
        self.num_frames: int | None = len(self.files)

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Load every ``every``-th image (EXIF orientation applied).

        Raises:
            ImageReadError: an image cannot be read.
            ValueError: an image's size differs from the first frame's.
        """
        check_every(every)
        size = None
        for index in range(0, len(self.files), every):
            file = self.files[index]
            image = np.asarray(load_image(file))
            if size is None:
                size = image.shape
            elif image.shape != size:
                raise ValueError(
                    f"frame {file} is {image.shape[1]}x{image.shape[0]} but the first frame of "
                    f"{self.path} is {size[1]}x{size[0]}; frames of a sequence share one size"
                )
            yield Frame(image, index, float(index / self.fps), file)


def _natural_key(path: Path) -> list[tuple[str, int]]:
    # re.split with a group alternates text and digit runs, so keys always compare like with like.
    parts = re.split(r"(\d+)", path.as_posix())
    return [(text, 0) if i % 2 == 0 else ("", int(text)) for i, text in enumerate(parts)]

"""Frame sequences: the decoded frames of a video file (PyAV), or a folder of images as a video.

Both yield :class:`Frame` objects (RGB pixels, index in the source, timestamp in seconds), all
or every ``N``-th, for :func:`~sparsercnn.video.prediction.predict_video`. PyAV is the optional
extra ``video`` and is imported only when a video file is opened.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from sparsercnn.data.image_io import (
    ImageHeader,
    ImageReadError,
    load_image,
    multi_frame_format,
    none_read_error,
    read_image_header,
    warn_multi_frame,
)
from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES
from sparsercnn.image_inputs import folder_files, no_files_error
from sparsercnn.text import counted, listing
from sparsercnn.video.demux_damage import DemuxDamage
from sparsercnn.video.numbering import FrameNumbering
from sparsercnn.video.suffixes import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

logger = logging.getLogger(__name__)

# mpeg4 accepts frame-rate denominators up to 2^16 - 1 only.
MAX_RATE_DENOMINATOR = 65535
# Fewer frames (or seconds of frames) than this share of what the header announces: the file
# was probably cut short.
CUT_SHORT_SHARE = 0.95
# Containers whose packets carry decoding times only (AVI): libavformat guesses presentation
# times from them, wrongly for H.264's B-frames (a frame shown after the next one decoded).
DECODING_TIME_FORMATS = ("avi",)
# Containers whose demuxer finds each frame by an index, handing a damaged frame to the decoder
# (which rejects it) rather than skipping it: gaps in their times are never frames lost, and
# MP4's variable frame rates (phones) are common.
INDEXED_FORMATS = ("mov", "mp4", "avi")
# The image suffixes whose files of several frames PyAV decodes as a video, and Pillow's format
# name for them: a GIF, and a PNG with an APNG animation.
ANIMATION_FORMATS = {".gif": "GIF", ".png": "PNG"}


def import_av() -> ModuleType:
    """PyAV, or an ImportError that says how to install it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            "video needs PyAV, which is not installed: pip install 'sparsercnn[video]'"
        ) from error
    return av


def frames_format(path: str | Path) -> str | None:
    """:func:`~sparsercnn.data.image_io.multi_frame_format` of a GIF or PNG
    (:data:`ANIMATION_FORMATS`), which tells an animation (:func:`reads_as_video`); None for a
    still image, one Pillow cannot open (read as an image, its error names it), and a file of
    another suffix (not opened)."""
    if Path(path).suffix.lower() not in ANIMATION_FORMATS:
        return None
    try:
        return multi_frame_format(path)
    except ImageReadError:
        return None


def reads_as_video(suffix: str, image_format: str | None) -> bool:
    """Whether a file of ``suffix`` whose :func:`frames_format` is ``image_format`` is read as
    a video, every frame decoded by PyAV: one with a video suffix (:data:`VIDEO_SUFFIXES`), or
    an animated GIF or PNG (:data:`ANIMATION_FORMATS`), where an image is its first frame alone.
    An animated WebP (which FFmpeg fails to decode), a multi-page TIFF (whose first page alone
    it reads) and a GIF named ``.png`` are images, read as their first frame with a warning."""
    suffix = suffix.lower()
    animated = image_format is not None and ANIMATION_FORMATS.get(suffix) == image_format
    return suffix in VIDEO_SUFFIXES or animated


def check_every(every: int) -> None:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every (--every) must be an integer >= 1, got {every!r}")


class VideoReadError(ValueError):
    """Reading a video file failed part-way (a damaged file, a disk that fails): the frames
    numbered before :attr:`frame_index` were read, none from it on.

    Attributes:
        path: the video file.
        frame_index: where reading failed: the number of the first frame not read, as
            :attr:`Frame.index` counts (the frames before it that did not decode included).
        reason: FFmpeg's reason (``"Invalid data found when processing input"``).
    """

    def __init__(self, path: Path, frame_index: int, reason: str) -> None:
        super().__init__(
            f"video {path}: reading failed at frame {frame_index} ({reason}); the file is "
            f"damaged, and no frame from {frame_index} on could be read"
        )
        self.path = path
        self.frame_index = frame_index
        self.reason = reason

    def __reduce__(self) -> tuple[type[VideoReadError], tuple[Path, int, str]]:
        return type(self), (self.path, self.frame_index, self.reason)


class Frame:
    """One frame of a :class:`FrameSequence`.

    Attributes:
        index: position in the source counting from 0, frames left out by ``every`` and
            frames that do not decode included (with ``every=N`` the kept indices are 0, N,
            2N, ...; a video's frame that does not decode, in a damaged file, is warned about
            and listed in :attr:`FrameSequence.skipped_frames`, and the frames after it keep
            their numbers).
        timestamp: seconds after the source's first frame (frame 0 is at 0.0): in a video
            file its presentation time less the first frame's (``(pts - pts_0) * time_base``;
            a clip cut from a longer recording starts at 0, as players show it and as the
            annotated video of ``predict --save-images`` times it; in AVI, which stores
            decoding times, the ``index``-th earliest packet's), ``index / fps`` in a frame
            folder.
        file: the frame's image file in a frame folder, else None.
    """

    def __init__(
        self, image: np.ndarray | None, index: int, timestamp: float, file: Path | None = None
    ) -> None:
        if image is None and file is None:
            raise ValueError("a frame needs its pixels or its image file")
        self._image = image
        self.index = index
        self.timestamp = timestamp
        self.file = file

    @property
    def image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB pixels, upright (a video's display rotation and a frame
        file's EXIF orientation applied); a frame folder's file is decoded at first use."""
        if self._image is None:
            assert self.file is not None
            self._image = np.asarray(load_image(self.file))
        return self._image

    @property
    def model_input(self) -> np.ndarray | Path:
        """What a predictor reads: a frame folder's file, decoded as any image file is (a large
        JPEG at the reduced scale the model allows), so it gets the detections it gets as an
        image; a video frame's pixels."""
        return self.file if self.file is not None else self.image


class FrameSequence(Protocol):
    """What :func:`~sparsercnn.video.prediction.predict_video` reads: frames of one source.

    Attributes:
        path: the video file or frame folder.
        fps: frames per second (the average rate of a video file).
        num_frames: number of frames, or None when the container does not say.
        skipped_frames: indices of the frames the last read of :meth:`frames` (up to a read
            failure) could not decode (a damaged video file), or of a frame folder's, those
            whose files :func:`~sparsercnn.video.prediction.predict_video` could not read;
            empty before one.
    """

    path: Path
    fps: Fraction
    num_frames: int | None
    skipped_frames: list[int]

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """The frames with index ``0, every, 2 * every, ...``, decoded from the start."""
        ...


class VideoFile:
    """The first video stream of a video file, decoded by PyAV.

    Opening checks that the file is a readable video with a video stream and a frame rate,
    from its header alone: no frame is decoded. Each call of :meth:`frames` decodes it from the
    start; :attr:`size` decodes up to the first frame that decodes, once, when first asked for.
    Frames are turned upright by the video's display rotation (a phone's portrait video stored
    landscape), as image files are by their EXIF orientation.

    A video none of whose frames decodes, or whose reading fails before its first frame, opens
    all the same, as a frame folder none of whose frames reads: reading its frames then fails
    (:func:`~sparsercnn.video.prediction.predict_video` names why), one input that cannot be
    read, not a refusal before any work; only its :attr:`size` is unknown.

    Attributes:
        num_frames: the frame count the container announces (AVI's counts its index entries, a
            dropped frame's empty one included), or None where it does not say.
        duration: seconds the container announces, or None where it does not say.
        skipped_frames: numbers of the frames that did not decode (a damaged file), in the last
            read of :meth:`frames` (up to a read failure); empty before one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a video PyAV can read, or holds no video stream or frame
            rate.
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
            self.duration = _duration_seconds(container, stream)
        self.skipped_frames: list[int] = []
        # Worked out by size when first asked for: the size, or why there is none.
        self._size: tuple[int, int] | ValueError | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the upright frames, as the first frame that decodes shows them; the
        file is decoded up to it at the first use, the answer (or the error) kept.

        Raises:
            ValueError: no frame decodes, or :class:`VideoReadError`: reading fails before the
                first frame.
        """
        if self._size is None:
            with self._open() as container:
                self._size = self._first_frame_size(container)
        if isinstance(self._size, ValueError):
            raise self._size
        return self._size

    def _first_frame_size(self, container: InputContainer) -> tuple[int, int] | ValueError:
        """``(h, w)`` of the first frame that decodes, upright; else why there is none: no frame
        decodes, or reading fails before one. The frames skipped are not warned about, nor kept
        in :attr:`skipped_frames`: reading the frames tells them."""
        try:
            first = next(self._decode(container, quiet=True), None)
        except VideoReadError as error:
            return error
        if first is None:
            return ValueError(f"video {self.path} holds no frame that can be decoded")
        frame = first[1]
        # As shown: a phone video stored landscape with a 90-degree rotation is shown, and
        # read, in portrait.
        turned = round(frame.rotation / 90) % 2 == 1
        return (frame.width, frame.height) if turned else (frame.height, frame.width)

    def _decode(
        self,
        container: InputContainer,
        numbering: FrameNumbering | None = None,
        *,
        quiet: bool = False,
    ) -> Iterator[tuple[int, VideoFrame]]:
        """The video stream's frames in presentation order, with their numbers in the source
        (:class:`~sparsercnn.video.numbering.FrameNumbering`). A packet that does not decode (a
        damaged file, or the last, partial packet of an MP4 cut short) is skipped, as players
        skip it; its frame's number is left out, and :attr:`skipped_frames` lists it, with one
        warning, once the stream ends; so are the frames a damaged constant-rate stream's
        demuxer skipped (a gap in the times where it showed damage,
        :class:`~sparsercnn.video.demux_damage.DemuxDamage`), where a gap without damage (a
        paused recording) is numbered on. ``quiet`` (:attr:`size`'s read of the first frame) leaves
        :attr:`skipped_frames` and the warning to the reads of :meth:`frames`.

        Raises:
            VideoReadError: the file could not be read part-way, after the frames yielded;
                :attr:`skipped_frames` lists those skipped before it.
        """
        av = import_av()
        numbering = numbering or FrameNumbering()
        video = container.streams.video[0]
        damage = DemuxDamage(container.format.name)
        # Every stream's where a stretch skipped may end at any of them (Matroska); elsewhere
        # the video stream's alone.
        packets: Iterator[Packet[Any]] = (
            container.demux() if damage.contiguous else container.demux(video)
        )
        reason = ""
        while True:
            try:
                packet = next(packets, None)
            except av.error.FFmpegError as error:
                # The frames the decoder still holds are not flushed: the packets of frames
                # presented between them may lie past the failure, and they would be misnumbered.
                failed_at = numbering.next_number
                if not quiet:
                    self._note_skipped([n for n in numbering.skipped() if n < failed_at], reason)
                raise VideoReadError(self.path, failed_at, _reason(error)) from error
            if packet is None:
                break
            if packet.stream.index != video.index:
                damage.pass_over(packet)
                continue
            damaged = damage.damaged(packet)
            holds_frame = bool(packet.size) and not packet.is_discard
            if holds_frame:
                numbering.add_packet(packet.pts, packet.dts, packet.duration or 0, damaged=damaged)
            try:
                # A video stream's packet (demux() types every stream's alike).
                decoded = cast("list[VideoFrame]", packet.decode())
            except av.error.FFmpegError as error:
                if holds_frame:
                    numbering.fail_packet(packet.pts)
                reason = reason or _reason(error)
                continue
            for frame in decoded:
                yield numbering.number(frame.pts), frame
        if not quiet:
            self._note_skipped(numbering.skipped(), reason)

    def _note_skipped(self, skipped: list[int], reason: str) -> None:
        """Set :attr:`skipped_frames` to the numbers of the frames a read skipped, named in one
        warning with the ``reason`` of the first that did not decode ("" where unknown)."""
        self.skipped_frames = skipped
        if skipped:
            logger.warning(
                "video %s: skipped %s that did not decode, numbered %s%s; the file is damaged "
                "(the frames after them keep their numbers)",
                self.path,
                counted(len(skipped), "frame"),
                listing([str(number) for number in skipped]),
                f" ({reason})" if reason else "",
            )

    def _open(self) -> InputContainer:
        av = import_av()
        try:
            # Tags in another encoding than UTF-8 (an old camera's Latin-1 title) are not read
            # here; strict decoding refused the whole video.
            container = av.open(str(self.path), metadata_errors="replace")
        except av.error.FFmpegError as error:
            raise ValueError(
                f"video {self.path} could not be read ({_reason(error)}): not a video or a "
                "damaged file"
            ) from error
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            container.close()
            raise ValueError(f"video {self.path} has no video stream (streams: {', '.join(kinds)})")
        return container

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Decode the frames numbered ``0, every, 2 * every, ...`` in the source (the others are
        decoded, not converted). A frame that does not decode (a damaged file) is skipped with a
        warning: the frames after it keep their numbers, and :attr:`skipped_frames` lists it
        once the read is complete.

        Raises:
            VideoReadError: reading the file failed part-way (a damaged file), after the
                frames before it were yielded; the message names the file and the frame.
        """
        check_every(every)
        index, timestamp = -1, float(-1 / self.fps)  # no frame: they end at 0 s
        with self._open() as container:
            time_base = container.streams.video[0].time_base
            formats = container.format.name.split(",")
            decoding_times = any(name in DECODING_TIME_FORMATS for name in formats)
            # The frame duration in ticks, where gaps in the times may be frames the demuxer
            # skipped.
            indexed = any(name in INDEXED_FORMATS for name in formats)
            frame_duration = None if indexed or not time_base else 1 / (self.fps * time_base)
            numbering = FrameNumbering(frame_duration, keep_times=decoding_times)
            for index, decoded in self._decode(container, numbering):
                if decoding_times:
                    pts, origin = numbering.packet_time(index), numbering.packet_time(0)
                else:
                    pts, origin = decoded.pts, numbering.origin
                if pts is not None and origin is not None and time_base:
                    timestamp = float((pts - origin) * time_base)
                else:
                    timestamp = float(index / self.fps)
                if index % every:
                    continue
                pixels = _upright(decoded.to_ndarray(format="rgb24"), decoded.rotation)
                yield Frame(pixels, index, timestamp)
        # AVI counts its index entries, one a tick of its time base, a dropped frame's empty
        # one included (which the demuxer does not return): the end of the packets read, in
        # ticks, is what its count measures.
        reached = numbering.end if decoding_times else numbering.num_frames
        end = timestamp + float(1 / self.fps)
        self._warn_if_cut_short(numbering.num_frames, reached or 0, end)
        self._tell_pauses(numbering, time_base)

    def _tell_pauses(self, numbering: FrameNumbering, time_base: Fraction | None) -> None:
        """Say once, as information, where a constant-rate stream's times have gaps without
        damage (a recording paused): its frame numbers run on where its timestamps jump."""
        if numbering.longest_pause is None or not time_base:
            return
        # A pause lies between two frames numbered: the first set the origin.
        assert numbering.origin is not None
        start, end = numbering.longest_pause
        logger.info(
            "video %s: %s in its times without damage (a paused recording), the longest %.2f s "
            "after the frame at %.2f s; the frames after a gap are numbered on",
            self.path,
            counted(numbering.pauses, "gap"),
            float((end - start) * time_base),
            float((start - numbering.origin) * time_base),
        )

    def _warn_if_cut_short(self, num_read: int, reached: int, end: float) -> None:
        """Warn when the frames read (``num_read``, those that did not decode included;
        ``reached``: that count as the container's frame count counts it) fall far short of the
        count the container announces, or when they end far before its duration (``end``: the
        last frame's timestamp plus a frame at ``fps``): a file cut short (a download or copy
        that stopped) ends without a decoding error in some formats. Without a frame count,
        times and not ``duration * fps`` frames: a variable-rate video (a screen recording that
        leaves out still frames) has fewer."""
        if self.num_frames is not None:
            if reached < CUT_SHORT_SHARE * self.num_frames - 1:
                logger.warning(
                    "video %s: %d frames read where its header announces %d; the file may "
                    "be cut short (copy it again)",
                    self.path,
                    num_read,
                    self.num_frames,
                )
        elif self.duration is not None and end < CUT_SHORT_SHARE * self.duration - 1 / self.fps:
            logger.warning(
                "video %s: %d frames read, ending at %.2f s where its header announces "
                "%.2f s; the file may be cut short (copy it again)",
                self.path,
                num_read,
                end,
                self.duration,
            )


class FrameFolder:
    """The images of a folder (and its subfolders) as one video at ``fps`` frames per second.

    Frames are ordered by their path below the folder, numbers compared as numbers
    (``frame_2.png`` before ``frame_10.png``); every frame must have the first one's size,
    checked on the files' headers when the folder is opened (a run fails before any work, not
    at the odd frame); a frame file of several frames or pages (an animated GIF) is one frame,
    its first, named in a warning with every other such file. Video files in the folder are not
    frames: they are left out with a warning naming them.

    Args:
        path: the folder.
        fps: frames per second, kept exact (a float as its decimal value): timestamps are
            ``index / fps``.
        skip: a folder below ``path`` whose images are not frames (where a run draws); the
            drawings of earlier runs are left out too
            (:func:`~sparsercnn.image_inputs.folder_files`).

    A folder of which no frame's header can be read opens all the same: every frame then fails
    to read when predicted, and :func:`~sparsercnn.video.prediction.predict_video` names each,
    as it names a folder of truncated frames (the folder is one input that cannot be read, as a
    damaged image is, not a refusal before any work); only its :attr:`size` is unknown.

    Raises:
        FileNotFoundError: ``path`` is not a folder or holds no image file.
        ValueError: ``fps`` is not a finite number > 0, or a frame's size differs from the
            first frame's (the first whose header could be read; the message names both).
    """

    def __init__(
        self, path: str | Path, fps: float | Fraction, *, skip: Path | None = None
    ) -> None:
        self.path = Path(path)
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps (--fps) must be a finite number > 0, got {fps}")
        # str(): 29.97 is 2997/100, not the binary float's 64-bit fraction.
        self.fps = fps if isinstance(fps, Fraction) else Fraction(str(fps))
        if not self.path.is_dir():
            raise FileNotFoundError(f"frame folder {self.path} is not a folder")
        files = folder_files(self.path, IMAGE_SUFFIXES, skip)
        videos = folder_files(self.path, VIDEO_SUFFIXES, skip)
        if videos:
            logger.warning(
                "frame folder %s: leaving out %s (%s): a video is not a frame; give it as an "
                "input of its own",
                self.path,
                counted(len(videos), "video file"),
                listing([str(video) for video in videos]),
            )
        if not files:
            raise no_files_error(self.path, "image files", IMAGE_SUFFIXES, label="frame folder")
        self.files = sorted(files, key=lambda p: _natural_key(p.relative_to(self.path)))
        self.num_frames: int | None = len(self.files)
        # Set by predict_video, which reads the frames' files: those it could not.
        self.skipped_frames: list[int] = []
        # The frames whose header did not read: the error of size where none did.
        self._header_errors: list[ImageReadError] = []
        self._size = self._frame_size()

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the upright frames.

        Raises:
            ImageReadError: no frame's header can be read; the message names each frame and
                why.
        """
        if self._size is None:
            what = f"{counted(len(self.files), 'frame')} in frame folder {self.path}"
            raise none_read_error(what, self._header_errors)
        return self._size

    def _frame_size(self) -> tuple[int, int] | None:
        """``(h, w)`` of every frame, from the headers (EXIF orientation applied), None where
        none reads; the frame files of several frames are named in a warning. A file whose
        header cannot be read (an empty file) is left to
        :func:`~sparsercnn.video.prediction.predict_video`, which skips it as it skips a
        truncated one."""
        headers: list[tuple[str, ImageHeader]] = []
        for file in self.files:
            try:
                headers.append((str(file), read_image_header(file)))
            except ImageReadError as error:
                self._header_errors.append(error)
        if not headers:
            return None
        first, header = headers[0]
        size = (header.height, header.width)
        # Named: it is not the folder's first frame where that one's header could not be read.
        unread = len(headers) < len(self.files)
        which = f"the first frame of {self.path}" + (" whose header reads" if unread else "")
        for name, header in headers[1:]:
            if (header.height, header.width) != size:
                raise ValueError(
                    f"frame {name} is {header.width}x{header.height} but {first}, {which}, is "
                    f"{size[1]}x{size[0]}; frames of a sequence share one size"
                )
        warn_multi_frame(headers)
        return size

    def frames(self, every: int = 1) -> Iterator[Frame]:
        """Every ``every``-th image, decoded when first used (EXIF orientation applied).

        Raises:
            ImageReadError: when its pixels are asked for, an image that cannot be decoded
                (:func:`~sparsercnn.video.prediction.predict_video` skips such a frame instead,
                listing it in :attr:`skipped_frames`).
        """
        check_every(every)
        self.skipped_frames = []  # an earlier read's, until this one's predict_video sets them
        for index in range(0, len(self.files), every):
            yield Frame(None, index, float(index / self.fps), self.files[index])


def _reason(error: Exception) -> str:
    """An ffmpeg error's reason ("Invalid data found when processing input")."""
    return getattr(error, "strerror", None) or str(error)


def _upright(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """``(H, W, 3)`` pixels turned by ``rotation`` degrees counterclockwise (PyAV's
    ``VideoFrame.rotation``, from the display matrix), to the nearest quarter turn."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def _duration_seconds(container: InputContainer, stream: VideoStream) -> float | None:
    """The stream's duration, else the container's, in seconds; None when neither says.

    Matroska's (and WebM's) duration is the time of its end, not its length: a clip whose first
    frame is at 1 s (cut from a longer recording) is that much shorter than it says.
    """
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is None:
        return None
    duration = container.duration  # AV_TIME_BASE: microseconds
    if "matroska" in container.format.name.split(",") and container.start_time:
        duration -= container.start_time
    return max(duration, 0) / 1_000_000


def _natural_key(path: Path) -> list[tuple[str, int]]:
    # re.split with a group alternates text and digit runs, so keys always compare like with like.
    parts = re.split(r"(\d+)", path.as_posix())
    return [(text, 0) if i % 2 == 0 else ("", int(text)) for i, text in enumerate(parts)]

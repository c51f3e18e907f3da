"""Short test videos written with PyAV directly (not with the code under test): a red box moving
right by 2 pixels a frame and a still green box on grey, at a known frame rate or known times."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

RED_BOX_Y = (8, 28)  # rows of the red box
GREEN_BOX = (40, 60, 60, 90)  # y1, y2, x1, x2 (for 64x96 frames)


def red_box_x(index: int) -> tuple[int, int]:
    """Columns of the red box in frame ``index``."""
    return 4 + 2 * index, 24 + 2 * index


def clip_frame(index: int, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    """Frame ``index`` as ``(H, W, 3)`` uint8 RGB."""
    image = np.full((*size, 3), 96, np.uint8)
    x1, x2 = red_box_x(index)
    image[RED_BOX_Y[0] : RED_BOX_Y[1], x1:x2] = (230, 20, 20)
    y1, y2, gx1, gx2 = GREEN_BOX
    image[y1:y2, gx1:gx2] = (20, 200, 20)
    return image


def write_clip(
    path: Path,
    num_frames: int = 24,
    *,
    fps: int = 12,
    size: tuple[int, int] = (64, 96),
    times_ms: Sequence[int] | None = None,
    rotation: int = 0,
    faststart: bool = False,
    x264_params: str = "",
    numbers: Sequence[int] | None = None,
    muxer_options: dict[str, str] | None = None,
    audio: bool = False,
) -> Path:
    """Write an H.264 video (the container from the suffix) of :func:`clip_frame` frames;
    ``times_ms`` gives each frame's presentation time (a variable frame rate) instead of
    ``index / fps``; ``rotation``: the display rotation, degrees counterclockwise, that players
    apply (a phone's portrait video is stored landscape with 90 or -90); ``faststart``: an MP4's
    index before its frames, as streamed files have it (a copy cut short keeps it);
    ``x264_params``: libx264's own options (``"bframes=3:open-gop=1"``); its default has
    B-frames; ``numbers``: the frames written, at ``number / fps``, the others left out (a
    capture's dropped frames); ``muxer_options``: the container's (Matroska's
    ``cluster_time_limit``); ``audio``: a silent AAC stream beside the video, as a camera
    records it, its packets interleaved with the frames'."""
    import av

    options = {"movflags": "faststart"} if faststart else {}
    options.update(muxer_options or {})
    codec_options = {"x264-params": x264_params} if x264_params else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps, options=codec_options)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=8000) if audio else None
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if numbers is not None:
            stream.codec_context.time_base = Fraction(1, fps)
        for index in range(num_frames if times_ms is None else len(times_ms)):
            if numbers is not None and index not in numbers:
                continue
            frame = av.VideoFrame.from_ndarray(clip_frame(index, size), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            elif numbers is not None:
                frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
            if sound is not None:
                container.mux(sound.encode(_silence(sound.rate)))
        container.mux(stream.encode())
        if sound is not None:
            container.mux(sound.encode())
    return path


def _silence(rate: int) -> av.AudioFrame:
    """1024 silent mono samples (an AAC frame) at ``rate`` per second."""
    import av

    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = rate
    return frame


def cut_at_keyframe(clip: Path, target: Path, keyframe: int = 1) -> Path:
    """``clip``'s packets from its ``keyframe``-th keyframe on (0 the first), copied into
    ``target`` without decoding, as a stream-copy cut (``ffmpeg -c copy``) makes them: at an
    open-GOP keyframe the B-frames after it reference a frame cut away."""
    import av

    with av.open(str(clip)) as source, av.open(str(target), "w") as container:
        stream = source.streams.video[0]
        packets = [packet for packet in source.demux(stream) if packet.size]
        start = [i for i, packet in enumerate(packets) if packet.is_keyframe][keyframe]
        copy = container.add_stream_from_template(stream)
        for packet in packets[start:]:
            packet.stream = copy
            container.mux(packet)
    return target


def write_audio_only(path: Path) -> Path:
    """An MP4 holding one AAC audio stream and no video."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        container.mux(stream.encode(_silence(stream.rate)))
        container.mux(stream.encode())
    return path


def decode(path: Path) -> tuple[list[np.ndarray], Fraction, str]:
    """Every frame of a video (RGB), its average frame rate and its codec name."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, Fraction(stream.average_rate or 0), stream.codec_context.name

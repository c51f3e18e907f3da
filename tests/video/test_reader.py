"""Frames of video files and frame folders: indices, timestamps, pixels, ``every``, bad input."""

from __future__ import annotations

import logging
import pickle
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import GifImagePlugin, Image

from sparsercnn.data.image_io import ImageReadError
from sparsercnn.video import FrameFolder, VideoFile, VideoReadError, import_av, open_sequence
from sparsercnn.video.reader import frames_format, reads_as_video
from tests.video.clips import (
    RED_BOX_Y,
    clip_frame,
    cut_at_keyframe,
    decode,
    red_box_x,
    write_audio_only,
    write_clip,
)


def test_a_video_file_gives_its_rate_length_and_size(clip: Path) -> None:
    video = VideoFile(clip)
    assert (video.fps, video.num_frames, video.size) == (Fraction(12), 24, (64, 96))


def test_opening_a_video_decodes_no_frame_and_size_decodes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening decoded up to the first frame that decodes, for a size nothing but a caller of
    size reads: the whole file, where none decodes, before frames() decoded it all again."""
    reads: list[int] = []
    decode_frames = VideoFile._decode

    def counted_decode(self: VideoFile, *args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return decode_frames(self, *args, **kwargs)

    monkeypatch.setattr(VideoFile, "_decode", counted_decode)
    full = write_clip(tmp_path / "full.mkv", 10)
    header = tmp_path / "header.mkv"
    header.write_bytes(full.read_bytes()[:1000])
    for path, size in [(full, (64, 96)), (header, None)]:
        reads.clear()
        video = VideoFile(path)
        assert reads == []
        for _ in range(2):
            if size is None:
                with pytest.raises(ValueError, match="holds no frame that can be decoded"):
                    video.size  # noqa: B018
            else:
                assert video.size == size
        assert len(reads) == 1 and video.skipped_frames == []


def test_frames_are_rgb_in_order_with_pts_timestamps(clip: Path) -> None:
    frames = list(VideoFile(clip).frames())
    assert [f.index for f in frames] == list(range(24))
    assert [f.timestamp for f in frames] == pytest.approx([i / 12 for i in range(24)])
    for frame in frames:
        assert frame.image.shape == (64, 96, 3) and frame.image.dtype == np.uint8
        assert frame.file is None
        # The red box sits where frame `index` drew it, in RGB order (not BGR).
        x1, x2 = red_box_x(frame.index)
        red = frame.image[RED_BOX_Y[0] + 4 : RED_BOX_Y[1] - 4, x1 + 4 : x2 - 4].mean(axis=(0, 1))
        assert red[0] > 180 and red[1] < 70 and red[2] < 70
        assert np.abs(frame.image.astype(int) - clip_frame(frame.index)).mean() < 6


def test_every_keeps_frames_0_n_2n(clip: Path) -> None:
    frames = list(VideoFile(clip).frames(every=5))
    assert [f.index for f in frames] == [0, 5, 10, 15, 20]
    assert [f.timestamp for f in frames] == pytest.approx([0, 5 / 12, 10 / 12, 15 / 12, 20 / 12])
    # Each call decodes from the start again.
    assert [f.index for f in VideoFile(clip).frames(every=7)] == [0, 7, 14, 21]


def test_timestamps_come_from_the_stream_not_the_frame_rate(tmp_path: Path) -> None:
    times_ms = [0, 100, 250, 300, 700]
    video = write_clip(tmp_path / "vfr.mp4", times_ms=times_ms)
    frames = list(VideoFile(video).frames())
    assert [f.timestamp for f in frames] == pytest.approx([t / 1000 for t in times_ms])
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_timestamps_count_from_the_first_frame(tmp_path: Path, suffix: str) -> None:
    """A clip cut from a longer recording (its first frame at 2.5 s) starts at 0, as players
    show it and as its annotated video is timed."""
    times_ms = [2500, 2600, 2750, 2800]
    video = VideoFile(write_clip(tmp_path / f"late{suffix}", times_ms=times_ms))
    assert [f.timestamp for f in video.frames()] == pytest.approx([0, 0.1, 0.25, 0.3])
    assert [f.timestamp for f in video.frames(every=3)] == pytest.approx([0, 0.3])


def test_h264_in_avi_is_numbered_and_timed_in_presentation_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AVI stores decoding times only: H.264's B-frames came out with the times of other frames
    (0, 0.17, 0.25, 0.08 s, ...), numbered from 0, 2 (frame 1 taken as skipped, all later frames
    one too high) with a false warning that the file is damaged."""
    clip = write_clip(tmp_path / "clip.avi", 12, x264_params="bframes=3:b-pyramid=2")
    video = VideoFile(clip)
    frames = list(video.frames())
    assert [f.index for f in frames] == list(range(12))
    assert [f.timestamp for f in frames] == pytest.approx([i / 12 for i in range(12)])
    assert all(np.abs(f.image.astype(int) - clip_frame(f.index)).mean() < 6 for f in frames)
    assert video.skipped_frames == [] and not caplog.records


def test_an_avi_with_dropped_frames_is_not_taken_as_cut_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A capture's dropped frames are empty index entries in AVI, which its header's count
    includes and the demuxer never returns: 30 frames of 40 entries were warned about as "the
    file may be cut short". One truly cut short still is."""
    numbers = [i for i in range(40) if not 10 <= i < 20]
    full = write_clip(tmp_path / "dropped.avi", 40, numbers=numbers, x264_params="bframes=0")
    video = VideoFile(full)
    frames = list(video.frames())
    assert video.num_frames == 40  # the header's index entries
    assert [f.index for f in frames] == list(range(30)) and video.skipped_frames == []
    assert [f.timestamp for f in frames] == pytest.approx([i / 12 for i in numbers])
    assert not caplog.records
    with import_av().open(str(full)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: packets[20].pos])
    assert len(list(VideoFile(cut).frames())) == 20
    assert "cut.avi: 20 frames read where its header announces 40; the file may be cut short" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("suffix", "muxer_options"), [(".ts", {}), (".mkv", {"cluster_time_limit": "900"})]
)
def test_frames_a_damaged_streams_demuxer_skips_are_listed_as_skipped(
    tmp_path: Path, suffix: str, muxer_options: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """MPEG-TS and Matroska demuxers skip damaged data to where they can read again: those
    frames never reach the decoder. They were not reported (skipped_frames empty, no warning),
    and the frames after them were numbered too low."""
    av = import_av()
    clip = write_clip(
        tmp_path / f"clip{suffix}", 40, x264_params="keyint=12", muxer_options=muxer_options
    )
    with av.open(str(clip)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        start = container.streams.video[0].start_time
    first, last = packets[14], packets[17]  # in decoding order
    assert first.pos is not None and last.pos is not None
    data = bytearray(clip.read_bytes())
    data[first.pos : last.pos] = bytes(last.pos - first.pos)
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(bytes(data))
    with av.open(str(damaged)) as container:
        stream = container.streams.video[0]
        shown = {
            round((p.pts - start) * stream.time_base * 12)
            for p in container.demux(stream)
            if p.size
        }
    lost = [i for i in range(max(shown)) if i not in shown]
    assert 1 <= len(lost) < 10
    video = VideoFile(damaged)
    frames = list(video.frames())
    assert [f.index for f in frames] == [round(f.timestamp * 12) for f in frames]
    assert [f.index for f in frames] == sorted(shown)
    assert video.skipped_frames == lost
    assert f"damaged{suffix}: skipped {len(lost)} frames that did not decode" in caplog.text


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_a_paused_recording_is_numbered_on_and_said_once_as_information(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A constant-rate stream with no frames for 2 s (a recording paused), and no damage: the
    gap was taken as 24 frames lost, numbered 12 to 35, with a warning that the file is
    damaged."""
    numbers = [*range(12), *range(36, 48)]
    clip = write_clip(tmp_path / f"paused{suffix}", 48, numbers=numbers, x264_params="bframes=0")
    caplog.set_level(logging.INFO)
    video = VideoFile(clip)
    frames = list(video.frames())
    assert [f.index for f in frames] == list(range(24))
    assert [f.timestamp for f in frames] == pytest.approx([i / 12 for i in numbers], abs=1e-3)
    assert video.skipped_frames == []
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert f"paused{suffix}: 1 gap in its times without damage (a paused recording), the " in (
        caplog.text
    )
    assert "the longest 2.08 s after the frame at 0.92 s" in caplog.text


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_a_constant_rate_stream_with_a_change_of_rate_is_not_taken_as_damaged(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A variable-rate video whose frames are first 1/12 s apart: the longer intervals after are
    not frames lost."""
    times = [*range(0, 1000, 83), *range(1083, 3000, 250)]
    video = VideoFile(write_clip(tmp_path / f"vfr{suffix}", times_ms=times))
    assert [f.index for f in video.frames()] == list(range(len(times)))
    assert video.skipped_frames == [] and not caplog.records


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_a_clip_cut_at_an_open_gop_keyframe_starts_at_its_first_shown_frame(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The B-frames after the cut reference a frame cut away: the decoder drops them, as players
    do. Their packets were counted as frames that did not decode: indices began at 1 (or 2),
    timestamps at 0.08 s, with a warning that the file is damaged."""
    source = write_clip(
        tmp_path / f"source{suffix}",
        24,
        x264_params="bframes=3:keyint=12:min-keyint=12:scenecut=0:open-gop=1",
    )
    cut = cut_at_keyframe(source, tmp_path / f"cut{suffix}")
    video = VideoFile(cut)
    frames = list(video.frames())
    shown = decode(cut)[0]
    with import_av().open(str(cut)) as container:
        num_packets = sum(1 for packet in container.demux(video=0) if packet.size)
    assert 8 <= len(shown) < num_packets  # the leading B-frames are not decoded
    assert [f.index for f in frames] == list(range(len(shown)))
    times = [i / 12 for i in range(len(shown))]
    assert [f.timestamp for f in frames] == pytest.approx(times, abs=1e-3)  # MKV: milliseconds
    assert all(np.array_equal(f.image, image) for f, image in zip(frames, shown, strict=True))
    assert video.skipped_frames == [] and not caplog.records


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_rotated_video_is_read_upright(tmp_path: Path, rotation: int) -> None:
    """A phone video stored landscape with a display rotation is read as players show it."""
    video = VideoFile(write_clip(tmp_path / "phone.mp4", 3, rotation=rotation))
    assert video.size == ((96, 64) if rotation % 180 else (64, 96))
    for frame in video.frames():
        upright = np.rot90(clip_frame(frame.index), rotation // 90)
        assert frame.image.shape == upright.shape
        assert np.abs(frame.image.astype(int) - upright).mean() < 6


def test_a_video_without_a_decodable_frame_opens_and_has_no_frame(tmp_path: Path) -> None:
    """The first kilobyte of a Matroska file: a header with a video stream, and no frame. It
    was refused on opening, which failed predict before any work instead of leaving it out;
    now it opens, as a frame folder none of whose frames reads, and only its size is unknown."""
    full = write_clip(tmp_path / "full.mkv", 10)
    header = tmp_path / "header.mkv"
    header.write_bytes(full.read_bytes()[:1000])
    video = VideoFile(header)
    with pytest.raises(ValueError, match=r"header\.mkv holds no frame that can be decoded"):
        video.size  # noqa: B018
    assert list(video.frames()) == []


def test_a_video_cut_short_is_read_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Matroska puts its header first: a file cut short decodes without an error, only fewer
    frames than its header announces."""
    full = write_clip(tmp_path / "full.mkv", 40)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    assert len(list(VideoFile(full).frames())) == 40 and not caplog.records
    video = VideoFile(cut)
    decoded = len(list(video.frames()))
    assert decoded < 30
    # A B-frame whose packet was cut away, before a frame that decoded, counts as read.
    read = decoded + len(video.skipped_frames)
    assert f"cut.mkv: {read} frames read, ending at " in caplog.text
    assert "where its header announces 3.33 s" in caplog.text


def test_an_mp4_cut_inside_a_frame_is_read_up_to_it_with_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An MP4 with its index first, cut inside a frame's packet: that packet does not decode.
    Was refused as "decoding failed after frame N", losing every frame before it."""
    av = import_av()
    full = write_clip(tmp_path / "full.mp4", 40, faststart=True)
    with av.open(str(full)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    partial = packets[30]  # in file order
    assert partial.pos is not None
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: partial.pos + partial.size // 2])
    video = VideoFile(cut)
    frames = list(video.frames())
    assert 20 < len(frames) < 40
    (skipped,) = video.skipped_frames
    assert [frame.index for frame in frames] == [i for i in range(len(frames) + 1) if i != skipped]
    assert f"cut.mp4: skipped 1 frame that did not decode, numbered {skipped} (" in caplog.text
    assert f"cut.mp4: {len(frames) + 1} frames read where its header announces 40" in caplog.text


def damage_packets(clip: Path, target: Path, numbers: list[int]) -> Path:
    """``clip`` with the packets of its frames ``numbers`` (presentation order) overwritten."""
    av = import_av()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        packets = sorted((p.pts, p.pos, p.size) for p in container.demux(stream) if p.size)
    data = bytearray(clip.read_bytes())
    for number in numbers:
        _, pos, size = packets[number]
        data[pos : pos + size] = b"\xff" * size
    target.write_bytes(bytes(data))
    return target


def fail_reading_at(clip: Path, target: Path, sample: int) -> Path:
    """``clip``, an MP4 with its index last (no faststart), whose index gives packet ``sample``
    (in decoding order) a size of 768 MiB: FFmpeg's demuxer fails there ("Cannot allocate
    memory") rather than ending, as on a damaged index or a disk that fails. The frames the
    decoder gave before it are read; the test checks the failure is real, not an early end."""
    data = bytearray(clip.read_bytes())
    # stsz: box size, "stsz", version and flags, one size for all (0: none), count, sizes.
    sizes = data.index(b"stsz") + 16
    assert int.from_bytes(data[sizes - 8 : sizes - 4], "big") == 0
    data[sizes + 4 * sample : sizes + 4 * sample + 4] = (768 << 20).to_bytes(4, "big")
    target.write_bytes(bytes(data))
    return target


def test_a_video_whose_tags_are_not_utf8_is_read(tmp_path: Path) -> None:
    """Was refused with "'utf-8' codec can't decode byte 0xe9 ...", naming no file: an old
    camera's Latin-1 tag stopped the run."""
    data = write_clip(tmp_path / "clip.mp4", 4).read_bytes()
    tagged = tmp_path / "tagged.mp4"
    tagged.write_bytes(data.replace(b"Lavf", b"\xe9\xe9vf", 1))  # the encoder tag
    assert [frame.index for frame in VideoFile(tagged).frames()] == [0, 1, 2, 3]


def test_a_video_whose_reading_fails_part_way_gives_its_frames_then_names_the_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was a plain ValueError "reading failed after N frames": which frame, and which frames
    were read, only the message said (in decoded frames, not frame numbers)."""
    clip = write_clip(tmp_path / "clip.mp4", 24)
    failing = fail_reading_at(clip, tmp_path / "failing.mp4", 12)
    video = VideoFile(failing)
    frames: list[int] = []
    with pytest.raises(VideoReadError) as raised:
        frames.extend(frame.index for frame in video.frames())
    failed_at = raised.value.frame_index
    # Every frame before the failure, in order (those the decoder held back are not read).
    assert 4 <= failed_at <= 12 and frames == list(range(failed_at))
    assert str(raised.value) == (
        f"video {failing}: reading failed at frame {failed_at} (Cannot allocate memory); the "
        f"file is damaged, and no frame from {failed_at} on could be read"
    )
    assert video.skipped_frames == [] and "cut short" not in caplog.text
    assert isinstance(raised.value, ValueError)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (copy.path, copy.frame_index, copy.reason) == (failing, failed_at, raised.value.reason)
    kept: list[int] = []  # with every=5, the frames kept before it
    with pytest.raises(VideoReadError):
        kept.extend(frame.index for frame in video.frames(every=5))
    assert kept == list(range(0, failed_at, 5))


def test_frames_after_a_damaged_one_keep_their_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames 11 and 14 do not decode. The frames after them were numbered one and two too low
    (frame 12 was 11): a user cutting clips by frame_index got shifted frames."""
    clip = write_clip(tmp_path / "clip.mp4", 30, size=(48, 64), faststart=True)
    damaged = damage_packets(clip, tmp_path / "damaged.mp4", [11, 14])
    video = VideoFile(damaged)
    frames = list(video.frames())
    kept = [i for i in range(30) if i not in (11, 14)]
    assert [frame.index for frame in frames] == kept
    assert [frame.timestamp for frame in frames] == pytest.approx([i / 12 for i in kept])
    for frame in frames[10:13]:  # the red box of the frame numbered so
        x1, x2 = red_box_x(frame.index)
        row = frame.image[(RED_BOX_Y[0] + RED_BOX_Y[1]) // 2].astype(int)
        assert row[x1 + 1, 0] > 150 and row[x2 + 1, 0] < 150
    assert video.skipped_frames == [11, 14]
    assert "damaged.mp4: skipped 2 frames that did not decode, numbered 11, 14 (" in caplog.text
    assert "cut short" not in caplog.text
    # every=3 keeps frames 0, 3, ..., 27 of the source: 12 and 15 are still kept.
    assert [frame.index for frame in video.frames(every=3)] == list(range(0, 30, 3))
    assert video.skipped_frames == [11, 14]


def test_a_video_whose_only_frame_is_damaged_opens_without_a_size(tmp_path: Path) -> None:
    full = write_clip(tmp_path / "full.mp4", 10, faststart=True)
    av = import_av()
    with av.open(str(full)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
    assert first.pos is not None
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: first.pos + first.size // 2])
    video = VideoFile(cut)
    with pytest.raises(ValueError, match=r"cut\.mp4 holds no frame that can be decoded"):
        video.size  # noqa: B018


def test_a_variable_rate_clip_is_not_taken_as_cut_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Matroska gives no frame count: its duration is compared with the frames' times, not with
    a count at its announced rate (12 fps here, where a still scene left out half the frames)."""
    times = [*range(0, 1000, 83), *range(1000, 3000, 167)]
    full = write_clip(tmp_path / "vfr.mkv", times_ms=times)
    assert len(list(VideoFile(full).frames())) == len(times) and not caplog.records


def test_a_matroska_clip_starting_late_is_not_taken_as_cut_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Matroska's duration is its end time: a clip whose first frame is at 2 s is 2 s shorter."""
    times = [2000 + 80 * i for i in range(40)]
    full = write_clip(tmp_path / "late.mkv", times_ms=times)
    frames = list(VideoFile(full).frames())
    assert len(frames) == 40 and frames[0].timestamp == 0.0 and not caplog.records
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    decoded = len(list(VideoFile(cut).frames()))
    assert decoded < 30 and f"cut.mkv: {decoded} frames read" in caplog.text


def write_frames(folder: Path, count: int, size: tuple[int, int] = (64, 96)) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(count):
        paths.append(folder / f"frame_{i}.png")
        Image.fromarray(clip_frame(i, size)).save(paths[-1])
    return paths


def test_a_frame_folder_is_sorted_by_number_and_timed_by_fps(tmp_path: Path) -> None:
    paths = write_frames(tmp_path / "frames", 12)  # frame_10 sorts before frame_2 as text
    sequence = FrameFolder(tmp_path / "frames", fps=4)
    assert sequence.num_frames == 12 and sequence.fps == 4
    frames = list(sequence.frames(every=2))
    assert [f.index for f in frames] == [0, 2, 4, 6, 8, 10]
    assert [f.file for f in frames] == paths[::2]
    assert [f.timestamp for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert all(np.array_equal(f.image, clip_frame(f.index)) for f in frames)  # PNG: lossless


def test_a_frame_folder_s_empty_frame_is_left_to_be_skipped(tmp_path: Path) -> None:
    """An empty frame file (whose header does not read) failed the whole folder before any
    work, where a truncated one is skipped when predicted; so did a folder of which no frame's
    header reads, where one of truncated frames is named when predicted (predict then leaves it
    out, as an image that cannot be read): it opens, its size unknown."""
    paths = write_frames(tmp_path / "frames", 3)
    paths[1].write_bytes(b"")
    sequence = FrameFolder(tmp_path / "frames", fps=4)
    assert sequence.size == clip_frame(0).shape[:2]
    assert [frame.file for frame in sequence.frames()] == paths
    for path in paths:
        path.write_bytes(b"")
    sequence = FrameFolder(tmp_path / "frames", fps=4)
    assert sequence.files == paths
    # size stays a tuple where known: one that is not is an error naming the frames.
    with pytest.raises(ImageReadError) as info:
        sequence.size  # noqa: B018
    assert str(info.value).startswith(
        f"none of the 3 frames in frame folder {tmp_path / 'frames'} could be read: {paths[0]} "
        "(the file is empty (0 bytes)"
    )


def test_a_frame_folder_keeps_its_frame_rate_exact(tmp_path: Path) -> None:
    """Timestamps are index / fps as given: no rounding to a video file's rate denominators
    (a time-lapse at one frame per 100 000 s was timed 65535 s, and below 1/131070 fps
    division by zero)."""
    write_frames(tmp_path / "frames", 3)
    assert FrameFolder(tmp_path / "frames", fps=29.97).fps == Fraction(2997, 100)
    for fps, step in [(1e-5, 100_000.0), (1e-9, 1e9)]:
        frames = list(FrameFolder(tmp_path / "frames", fps=fps).frames())
        assert [f.timestamp for f in frames] == [0.0, step, 2 * step]
    for fps in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="finite number > 0"):
            FrameFolder(tmp_path / "frames", fps=fps)


def test_a_frame_folder_leaves_out_drawings_and_videos(
    tmp_path: Path, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sparsercnn.video.reader")
    caplog.set_level(logging.INFO, logger="sparsercnn.image_inputs")  # the folder listing's
    paths = write_frames(tmp_path / "frames", 3)
    (tmp_path / "frames" / "drawn").mkdir()
    Image.fromarray(clip_frame(0)).save(tmp_path / "frames" / "drawn" / "frame_9.png")
    clip.rename(tmp_path / "frames" / "clip.mp4")
    write_clip(tmp_path / "frames" / "other.mkv", 2)
    sequence = FrameFolder(tmp_path / "frames", fps=5, skip=tmp_path / "frames" / "drawn")
    assert sequence.files == paths
    # Only the first video was named: "(.../clip.mp4 first)".
    videos = f"{tmp_path / 'frames' / 'clip.mp4'}, {tmp_path / 'frames' / 'other.mkv'}"
    assert f"leaving out 2 video files ({videos}): a video is not a frame" in caplog.text
    assert str(tmp_path / "frames" / "drawn") in caplog.text


def test_a_frame_folders_animated_images_are_named_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each is one frame, its first: only the first such file read was named, once per process
    (the others at DEBUG)."""
    from sparsercnn.data import image_io

    monkeypatch.setattr(image_io, "_NOTED", set())
    write_frames(tmp_path / "frames", 4)
    frames = [Image.fromarray(clip_frame(i)) for i in range(3)]
    for number in (1, 3):
        path = tmp_path / "frames" / f"frame_{number}.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
        (tmp_path / "frames" / f"frame_{number}.png").unlink()
    sequence = FrameFolder(tmp_path / "frames", fps=5)
    assert [frame.image.shape for frame in sequence.frames()] == [(64, 96, 3)] * 4
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    named = [
        f"{tmp_path / 'frames' / f'frame_{n}.gif'}: 3 frames (an animated GIF)" for n in (1, 3)
    ]
    assert warning.getMessage().endswith(": " + ", ".join(named))


def test_frames_of_another_size_are_refused_naming_the_frame(tmp_path: Path) -> None:
    """When the folder is opened, from the headers: a run fails before any work, not at the odd
    frame (sizes are upright: a frame stored portrait with an EXIF rotation fits)."""
    write_frames(tmp_path / "frames", 3)
    portrait = Image.fromarray(np.rot90(clip_frame(3)))  # 64x96 stored as 96x64, ...
    exif = portrait.getexif()
    exif[0x0112] = 6  # ... shown turned 90 degrees clockwise
    portrait.save(tmp_path / "frames" / "frame_3.jpg", exif=exif)
    assert FrameFolder(tmp_path / "frames", fps=10).size == (64, 96)
    Image.fromarray(clip_frame(4, (32, 48))).save(tmp_path / "frames" / "frame_4.png")
    folder = tmp_path / "frames"
    with pytest.raises(ValueError, match=r"frame_4\.png is 48x32 but \S+frame_0\.png, the first"):
        FrameFolder(folder, fps=10)
    # Frame 0's header does not read: the size is frame 1's, which the message names (it said
    # "the first frame of <folder>", which is frame 0).
    (folder / "frame_0.png").write_bytes(b"")
    with pytest.raises(ValueError) as info:
        FrameFolder(folder, fps=10)
    assert str(info.value) == (
        f"frame {folder / 'frame_4.png'} is 48x32 but {folder / 'frame_1.png'}, the first frame "
        f"of {folder} whose header reads, is 96x64; frames of a sequence share one size"
    )


def test_a_folder_needs_a_frame_rate_and_images(tmp_path: Path) -> None:
    write_frames(tmp_path / "frames", 2)
    with pytest.raises(ValueError, match="is a folder: give its frame rate"):
        open_sequence(tmp_path / "frames")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty contains no image files"):
        FrameFolder(tmp_path / "empty", fps=10)
    with pytest.raises(ValueError, match="fps"):
        FrameFolder(tmp_path / "frames", fps=0)


def test_bad_video_files_are_named(tmp_path: Path, clip: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 20)
    with pytest.raises(ValueError, match=r"video .*garbage\.mp4 could not be read"):
        VideoFile(garbage)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.mp4"):
        list(VideoFile(truncated).frames())
    audio = write_audio_only(tmp_path / "audio.mp4")
    with pytest.raises(ValueError, match=r"audio\.mp4 has no video stream \(streams: audio\)"):
        VideoFile(audio)
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4 does not exist"):
        VideoFile(tmp_path / "missing.mp4")


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_every_must_be_a_positive_integer(clip: Path, every: int) -> None:
    with pytest.raises(ValueError, match="every"):
        next(VideoFile(clip).frames(every=every))


def test_without_pyav_the_error_says_how_to_install_it(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'sparsercnn\[video\]'"):
        import_av()
    with pytest.raises(ImportError, match="PyAV"):
        VideoFile(clip)


def test_an_animated_gif_is_told_without_counting_its_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An animation is told for every .gif and .png predict is given or finds in a folder: it
    stops at the second frame, where counting the frames read a GIF to its end."""
    animated, still = tmp_path / "animated.gif", tmp_path / "still.gif"
    frames = [Image.new("RGB", (8, 6), colour) for colour in ("red", "green", "blue")]
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(still)

    def counted(image: Image.Image) -> int:
        raise AssertionError("every frame of the GIF was read to count them")

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(counted))
    assert [reads_as_video(".gif", frames_format(path)) for path in (animated, still)] == [
        True,
        False,
    ]


@pytest.mark.parametrize(("suffix", "audio_followed"), [("mp4", False), ("mkv", True)])
def test_only_matroska_s_other_streams_are_followed_for_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, audio_followed: bool
) -> None:
    """Every audio packet of an MP4 (or AVI, MPEG-TS) was demuxed and looked at for damage,
    which only Matroska's need (a stretch skipped may end at any stream's packet)."""
    from sparsercnn.video.demux_damage import DemuxDamage

    video = VideoFile(write_clip(tmp_path / f"clip.{suffix}", 8, audio=True))
    followed: list[str] = []
    for method in ("damaged", "pass_over"):
        original = getattr(DemuxDamage, method)

        def spy(self: DemuxDamage, packet: Any, _original: Any = original) -> Any:
            followed.append(packet.stream.type)
            return _original(self, packet)

        monkeypatch.setattr(DemuxDamage, method, spy)
    assert [frame.index for frame in video.frames()] == list(range(8))
    assert ("audio" in followed) == audio_followed
    assert followed.count("video") >= 8

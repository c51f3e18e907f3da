"""VideoWriter: frames, size, frame rate and codec survive a round trip; failures leave nothing."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparsercnn.video import VideoWriter, choose_codec, video_rate
from sparsercnn.video.writer import has_encoder
from tests.video.clips import clip_frame, decode


def test_a_written_video_decodes_to_its_frames(tmp_path: Path) -> None:
    target = tmp_path / "out" / "video.mp4"  # the folder is created
    with VideoWriter(target, Fraction(25, 2)) as writer:
        for i in range(10):
            writer.write(clip_frame(i) if i % 2 else Image.fromarray(clip_frame(i)))
    frames, fps, codec = decode(target)
    assert len(frames) == 10 and fps == Fraction(25, 2)
    assert codec == ("h264" if has_encoder("libx264") else "mpeg4")
    for i, frame in enumerate(frames):
        assert frame.shape == (64, 96, 3)
        assert np.abs(frame.astype(int) - clip_frame(i)).mean() < 6
    assert [p.name for p in target.parent.iterdir()] == ["video.mp4"]  # no temporary file left


def test_odd_sizes_keep_their_size_with_mpeg4(tmp_path: Path) -> None:
    assert choose_codec(95, 63) == "mpeg4"
    with VideoWriter(tmp_path / "odd.mp4", 10) as writer:
        for i in range(3):
            writer.write(clip_frame(i, (63, 95)))
    frames, _, codec = decode(tmp_path / "odd.mp4")
    assert codec == "mpeg4" and [f.shape for f in frames] == [(63, 95, 3)] * 3


def test_a_failure_leaves_the_earlier_video_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    target.write_bytes(b"earlier run")
    with pytest.raises(RuntimeError, match="prediction failed"), VideoWriter(target, 10) as w:
        w.write(clip_frame(0))
        raise RuntimeError("prediction failed")
    assert target.read_bytes() == b"earlier run"
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4"]


def test_frames_must_keep_one_rgb_size(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    size_error = r"frame 1 is 48x32, the video is 96x64"
    with pytest.raises(ValueError, match=size_error), VideoWriter(target, 10) as writer:
        writer.write(clip_frame(0))
        writer.write(clip_frame(1, (32, 48)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB"), VideoWriter(target, 10) as w:
        w.write(clip_frame(0).astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_bad_targets_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot write '\.avi' files"):
        VideoWriter(tmp_path / "video.avi", 10)
    with pytest.raises(ValueError, match="fps must be > 0"):
        VideoWriter(tmp_path / "video.mp4", 0)
    # Rounded to a denominator of at most 65535 it would be 0 frames per second.
    with pytest.raises(ValueError, match=r"video\.mp4: 1e-06 frames per second is below 1/65535"):
        VideoWriter(tmp_path / "video.mp4", 1e-6)
    assert video_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert video_rate(1 / 65535) == Fraction(1, 65535)
    # Nearer 1/65535 than 0, but below it: refused, not written at 1/65535.
    with pytest.raises(ValueError, match=r"1e-05 frames per second is below 1/65535"):
        video_rate(1e-5)
    with pytest.raises(ValueError, match=r"70000 frames per second is above 65535"):
        VideoWriter(tmp_path / "video.mp4", 70000)
    with pytest.raises(ValueError, match="no frames to write"), VideoWriter(tmp_path / "v.mp4", 5):
        pass
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError) as raised, VideoWriter(blocker / "video.mp4", 10) as writer:
        writer.write(clip_frame(0))
    assert f"could not write {blocker / 'video.mp4'} (" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def frame_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.time) for frame in container.decode(stream)]


def packets(path: Path) -> list[tuple[int | None, int | None, bytes]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.dts, bytes(p)) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_timestamps_keep_a_variable_frame_rate(tmp_path: Path, codec: str) -> None:
    if not has_encoder(codec):
        pytest.skip(f"no {codec} encoder")
    times = [1.5, 1.6, 1.75, 1.8, 2.2, 3.0, 3.04]  # the first frame is shown at 0
    with VideoWriter(tmp_path / "vfr.mp4", Fraction(7, 2), codec=codec) as writer:
        for i, time in enumerate(times):
            writer.write(clip_frame(i), time)
    # To MP4's tick: 1 / fps over a power of 2 >= 10000 (1/14336 s).
    assert frame_times(tmp_path / "vfr.mp4") == pytest.approx([t - 1.5 for t in times], abs=4e-5)
    frames, _, _ = decode(tmp_path / "vfr.mp4")
    assert all(np.abs(f.astype(int) - clip_frame(i)).mean() < 6 for i, f in enumerate(frames))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_timestamps_at_a_constant_rate_give_the_constant_rate_video(
    tmp_path: Path, suffix: str
) -> None:
    """The same packets at the same times: the encoder sees the same frames. (Their bytes are
    not compared: two x264 encodes of the same frames differed once under CI load.)"""
    rate = Fraction(30000, 1001)
    timed, plain = tmp_path / f"timed{suffix}", tmp_path / f"plain{suffix}"
    with VideoWriter(timed, rate) as writer:
        for i in range(12):
            writer.write(clip_frame(i), 3.0 + float(i / rate))  # a stream starting at 3 s
    with VideoWriter(plain, rate) as writer:
        for i in range(12):
            writer.write(clip_frame(i))
    assert [p[:2] for p in packets(timed)] == [p[:2] for p in packets(plain)]
    assert frame_times(timed) == pytest.approx([i / rate for i in range(12)], abs=1e-3)


def test_timestamps_for_every_frame_or_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "video.mp4"
    no_time = "frame 1 has no timestamp but the first frame had one"
    with pytest.raises(ValueError, match=no_time), VideoWriter(target, 10) as writer:
        writer.write(clip_frame(0), 0.0)
        writer.write(clip_frame(1))
    a_time = "frame 1 has a timestamp but the first frame had none"
    with pytest.raises(ValueError, match=a_time), VideoWriter(target, 10) as writer:
        writer.write(clip_frame(0))
        writer.write(clip_frame(1), 0.1)
    assert list(tmp_path.iterdir()) == []
    # A damaged source's time going back: the frame comes one tick after the previous one.
    with VideoWriter(target, 10) as writer:
        for i, time in enumerate([0.0, 0.1, 0.05, 0.05, 0.3]):
            writer.write(clip_frame(i), time)
    times = frame_times(target)
    assert len(times) == 5 and times == sorted(set(times)) and times[-1] == pytest.approx(0.3)
    (warning,) = [r for r in caplog.records if "does not come after" in r.getMessage()]
    assert "frame 2 at 0.050000 s" in warning.getMessage()


def test_an_average_rate_with_a_large_numerator_is_written_with_mpeg4(tmp_path: Path) -> None:
    """A variable-rate video's average rate (112000/16533): MPEG-4's time base ``1 / fps``
    takes no denominator over 65535, so the rate is the nearest one that fits."""
    rate = video_rate(Fraction(112000, 16533))
    assert rate.numerator <= 65535 and rate.denominator <= 65535
    assert float(rate) == pytest.approx(112000 / 16533, rel=1e-7)
    with VideoWriter(tmp_path / "odd.mp4", Fraction(112000, 16533), codec="mpeg4") as writer:
        for i in range(3):
            writer.write(clip_frame(i, (63, 95)), [0.0, 0.2, 0.25][i])
    assert frame_times(tmp_path / "odd.mp4") == pytest.approx([0.0, 0.2, 0.25], abs=1e-4)


def test_messages_name_the_video_as_the_caller_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A staged file moved into place later (predict's drawings): its warnings and errors named
    the hidden file, drawn/.clip.partial.mp4, not the video the user gets nor the one drawn."""
    name = "drawn/clip.mp4 (drawn from clip.mkv)"
    staged = tmp_path / ".clip.partial.mp4"
    with VideoWriter(staged, 10, name=name) as writer:
        for i, time in enumerate([0.0, 0.1, 0.05]):
            writer.write(clip_frame(i), time)
    (warning,) = [r.getMessage() for r in caplog.records if "does not come after" in r.getMessage()]
    assert warning.startswith(f"video {name}: frame 2 at 0.050000 s")
    size_error = re.escape(f"video {name}: frame 1 is 48x32")
    with pytest.raises(ValueError, match=size_error), VideoWriter(staged, 10, name=name) as w:
        w.write(clip_frame(0))
        w.write(clip_frame(1, (32, 48)))
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError) as raised, VideoWriter(blocker / "v.mp4", 10, name=name) as w:
        w.write(clip_frame(0))
    assert f"could not write {name} (" in str(raised.value)
    taken = tmp_path / "folder.mp4"
    taken.mkdir()  # the finished video cannot be moved there
    with pytest.raises(IsADirectoryError) as raised, VideoWriter(taken, 10, name=name) as w:
        w.write(clip_frame(0))
    assert f"could not write {name} (Is a directory)" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clip.partial.mp4", "file", "folder.mp4"]


def test_a_full_disk_part_way_names_the_video_not_its_temporary_file(tmp_path: Path) -> None:
    """PyAV's error names the file it writes, the hidden temporary one."""

    class FullDisk:
        def __init__(self, container: Any) -> None:
            self.container = container

        def mux(self, packet: object) -> None:
            raise OSError(28, "No space left on device", self.container.name)

        def close(self) -> None:
            self.container.close()

    name = "drawn/clip.mp4 (drawn from clip.mkv)"
    target = tmp_path / "v.mp4"
    # MPEG-4 gives each frame's packet at once (x264 holds dozens back).
    with pytest.raises(OSError) as raised, VideoWriter(target, 10, codec="mpeg4", name=name) as w:
        w.write(clip_frame(0))
        w._container = FullDisk(w._container)  # type: ignore[assignment]
        w.write(clip_frame(1))
        pytest.fail("the full disk was not reported")
    assert raised.value.errno == 28
    assert f"could not write {name} (No space left on device)" in str(raised.value)
    assert list(tmp_path.iterdir()) == []

"""VideoWriter: frames, size, frame rate and codec survive a round trip; failures leave nothing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

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
    with pytest.raises(ValueError, match="no frames to write"), VideoWriter(tmp_path / "v.mp4", 5):
        pass
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError) as raised, VideoWriter(blocker / "video.mp4", 10) as writer:
        writer.write(clip_frame(0))
    assert raised.value.filename == str(blocker / "video.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]

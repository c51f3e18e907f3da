"""FrameNumbering: frames numbered in the source, gaps for the frames lost, in bounded memory."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

from sparsercnn.video.numbering import FrameNumbering


def test_memory_stays_small_however_long_the_video() -> None:
    """Every packet's time and every frame's number were kept for the whole video: an hour at
    60 fps held two lists of 216 000 numbers."""
    numbering = FrameNumbering(Fraction(1000), keep_times=True)
    tracemalloc.start()
    try:
        for i in range(5_000):
            numbering.add_packet(1000 * i, 1000 * i, 1000)
            if i == 1_000:
                numbering.fail_packet(1000 * i)
                continue
            assert numbering.number(1000 * i) == i
            assert numbering.packet_time(i) == 1000 * i and numbering.packet_time(0) == 0
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size < 20_000  # bytes: a few packets' worth
    assert numbering.skipped() == [1_000] and numbering.num_frames == 5_000


def test_a_gap_in_a_constant_rate_streams_times_is_frames_lost() -> None:
    """Frames 3 and 4 never reached the decoder (a demuxer skipping damage); frame 6 failed to
    decode: neither is counted twice."""
    numbering = FrameNumbering(Fraction(3003))
    for i in [0, 1, 2, 5, 6, 7]:
        numbering.add_packet(3003 * i, None, 3003)
    numbering.fail_packet(3003 * 6)
    assert [numbering.number(3003 * i) for i in [0, 1, 2, 5, 7]] == [0, 1, 2, 5, 7]
    assert numbering.skipped() == [3, 4, 6]


def test_gaps_say_nothing_once_the_rate_varies_or_without_a_frame_duration() -> None:
    times = [0, 83, 167, 250, 1000, 1083, 2000]  # 1/12 s, then a still scene left out
    varying = FrameNumbering(Fraction(1000, 12))
    for time in [0, 83, 120, 203, 1000]:  # 37 ms: not a whole number of frames
        varying.add_packet(time, None, 83)
    assert [varying.number(t) for t in [0, 83, 120, 203, 1000]] == [0, 1, 2, 3, 4]
    undeclared = FrameNumbering(Fraction(1000, 12))
    for time in times:
        undeclared.add_packet(time)  # no duration declared: not known to be constant-rate
    assert [undeclared.number(t) for t in times] == list(range(len(times)))
    unknown = FrameNumbering()
    for time in times:
        unknown.add_packet(time, None, 83)
    assert [unknown.number(t) for t in times] == list(range(len(times)))
    assert varying.skipped() == undeclared.skipped() == unknown.skipped() == []

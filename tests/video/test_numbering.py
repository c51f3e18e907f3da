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
    """Frames 3 and 4 never reached the decoder (a demuxer skipping damage, which it showed at
    frame 5's packet); frame 6 failed to decode: neither is counted twice."""
    numbering = FrameNumbering(Fraction(3003))
    for i in [0, 1, 2, 5, 6, 7]:
        numbering.add_packet(3003 * i, None, 3003, damaged=i == 5)
    numbering.fail_packet(3003 * 6)
    assert [numbering.number(3003 * i) for i in [0, 1, 2, 5, 7]] == [0, 1, 2, 5, 7]
    assert numbering.skipped() == [3, 4, 6]


def test_a_gap_far_from_damage_is_a_pause_numbered_on() -> None:
    """A recording paused for 2 s between frames 2 and 3 of a constant-rate stream: its 47
    missing frame durations were taken as frames lost (numbers 3 to 49 left out, and a warning
    that the file is damaged). Damage shown at frame 72 does not reach back to it, and makes
    the gap between frames 52 and 70 frames lost."""
    times = [0, 1, 2, 50, 51, 52, *range(70, 75)]
    numbering = FrameNumbering(Fraction(1000))
    for i in times:
        numbering.add_packet(1000 * i, None, 1000, damaged=i == 72)
    numbering.fail_packet(72_000)
    numbered = [numbering.number(1000 * i) for i in times if i != 72]
    assert numbered == [0, 1, 2, 3, 4, 5, 23, 24, 26, 27]
    assert numbering.skipped() == [*range(6, 23), 25]
    assert numbering.pauses == 1 and numbering.longest_pause == (2000, 50_000)


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

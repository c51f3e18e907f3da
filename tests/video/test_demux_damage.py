"""DemuxDamage: which video packets come at or just after a stretch the demuxer skipped."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sparsercnn.video.demux_damage import MAX_FRAMING_BYTES, DemuxDamage


def packet(stream: int, pos: int | None, size: int, *, corrupt: bool = False) -> Any:
    return SimpleNamespace(
        stream=SimpleNamespace(index=stream), pos=pos, size=size, is_corrupt=corrupt
    )


def follow(damage: DemuxDamage, packet: Any) -> bool | None:
    """What the reader does with each packet demuxed: a video packet's damage (stream 0), None
    for another stream's."""
    if packet.stream.index == 0:
        return damage.damaged(packet)
    damage.pass_over(packet)
    return None


def test_a_stretch_skipped_in_matroska_marks_the_next_video_packet() -> None:
    """Audio (stream 1) in laced blocks, whose frames share the block's position, is not a
    skip; a stretch no packet holds, ending at an audio packet, marks the next video packet."""
    damage = DemuxDamage("matroska,webm")
    assert damage.contiguous
    packets = [
        packet(0, 100, 500),
        packet(1, 610, 300),  # a laced block of three 300-byte frames
        packet(1, 610, 300),
        packet(1, 610, 300),
        packet(0, 1530, 40),
        packet(1, 1580 + MAX_FRAMING_BYTES + 1, 30),  # after a stretch skipped
        packet(0, 2000, 40),
        packet(0, 2050, 40),
    ]
    assert [follow(damage, p) for p in packets] == [
        False,
        None,
        None,
        None,
        False,
        None,
        True,
        False,
    ]


def test_only_flagged_packets_are_damaged_where_packets_interleave() -> None:
    """MPEG-TS spreads a frame over small packets between other streams': the distances between
    positions say nothing, its corrupt flag does."""
    damage = DemuxDamage("mpegts")
    assert not damage.contiguous  # the video stream's packets alone are demuxed
    packets = [packet(0, 0, 50), packet(0, 5000, 50, corrupt=True), packet(0, 9000, 50)]
    assert [damage.damaged(p) for p in packets] == [False, True, False]

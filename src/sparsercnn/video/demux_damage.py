"""Where a video file's demuxer met damage: the signal that tells frames lost (a gap in a stream's
times next to damage, :class:`~sparsercnn.video.numbering.FrameNumbering`) from a pause in the
recording (a gap with none), for :class:`~sparsercnn.video.reader.VideoFile`.

A demuxer that meets damage skips to where it can read again, quietly but for two traces:
MPEG-TS flags the packet whose data it found broken (a continuity counter that jumps), and in
Matroska the packets, which lie one after the other in the file a few bytes of framing apart,
have a stretch of bytes between them that no packet holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from av.packet import Packet

# Containers whose packets lie one after the other in the file (their demuxer's name).
CONTIGUOUS_FORMATS = ("matroska",)
# Bytes of a contiguous container between one packet's end and the next packet's data that are
# framing, not a stretch skipped: Matroska's largest is a new cluster's header with a CRC and
# a block group's elements (about 60 bytes), and a laced block's lace sizes.
MAX_FRAMING_BYTES = 128


class DemuxDamage:
    """Follows a container's packets in demuxing order and tells which of its video stream's
    packets come at or just after damage: the video stream's alone (:meth:`damaged`), or in a
    :attr:`contiguous` container every stream's, the others' through :meth:`pass_over`.

    Args:
        format_name: the container's demuxer names (PyAV's ``container.format.name``,
            ``"matroska,webm"``).

    Attributes:
        contiguous: whether the container's packets lie one after the other
            (:data:`CONTIGUOUS_FORMATS`): a stretch skipped shows between any two packets, of
            any stream, so every stream's packets are to be followed.
    """

    def __init__(self, format_name: str) -> None:
        self.contiguous = any(name in CONTIGUOUS_FORMATS for name in format_name.split(","))
        self._block_pos: int | None = None  # where the last packet's data starts
        self._end: int | None = None  # where the last packet's block ends, as far as known
        self._skipped = False  # a stretch skipped since the last video packet

    def damaged(self, packet: Packet) -> bool:
        """Take the next video packet demuxed; whether the demuxer flagged it corrupt, or it is
        the first video packet after a stretch of the file the demuxer skipped."""
        self.pass_over(packet)
        if not packet.size:
            return False
        damaged, self._skipped = self._skipped or packet.is_corrupt, False
        return damaged

    def pass_over(self, packet: Packet) -> None:
        """Take the next packet demuxed of another stream (a :attr:`contiguous` container's): a
        stretch skipped before it marks the next video packet."""
        self._skipped = self._skipped_before(packet) or self._skipped

    def _skipped_before(self, packet: Packet) -> bool:
        if not self.contiguous or packet.pos is None or not packet.size:
            return False
        if packet.pos == self._block_pos and self._end is not None:
            # The next frame of a laced block (Matroska's audio), which shares its position.
            self._end += packet.size
            return False
        skipped = self._end is not None and packet.pos - self._end > MAX_FRAMING_BYTES
        self._block_pos, self._end = packet.pos, packet.pos + packet.size
        return skipped

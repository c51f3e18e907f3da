"""Frame numbers of a video's decoded frames counted in the source, frames that do not decode
included: the numbers of :attr:`~sparsercnn.video.reader.Frame.index` and of ``frame_index`` in
``predict``'s records, which match the video's own frame numbers (a player's, ffmpeg's ``-ss``)
even in a damaged file, and the numbers of the frames that did not decode.
"""

from __future__ import annotations

import bisect


class FrameNumbering:
    """Numbers one video stream's decoded frames by the presentation times of its packets.

    Every packet demuxed is one frame of the source, whether it decodes or not: a decoded
    frame's number is how many packets are presented before it. The decoder returns a frame
    only after the packets presented before it (it reorders B-frames that way), so feeding each
    packet (:meth:`add_packet`) before numbering the frames it gives (:meth:`number`) numbers
    them as the whole stream would. Where times are missing (some AVI files), a frame is
    numbered one after the previous one.

    Attributes:
        origin: presentation time of frame 0 (the earliest packet's), in the stream's time
            base; None before the first frame is numbered.
    """

    def __init__(self) -> None:
        self._times: list[int] = []  # sorted presentation times of the packets demuxed
        self._num_packets = 0
        self._numbers: list[int] = []
        self.origin: int | None = None

    def add_packet(self, pts: int | None) -> None:
        """Count a packet that holds a frame (not the empty one that flushes the decoder, nor
        one the container marks to discard), with its presentation time."""
        self._num_packets += 1
        if pts is not None:
            # Packets come in decoding order, close to presentation order: a short insert.
            bisect.insort(self._times, pts)

    def number(self, pts: int | None) -> int:
        """The number of the next decoded frame, presented at ``pts`` (None: unknown)."""
        after = self._numbers[-1] + 1 if self._numbers else 0
        if self.origin is None and self._times:
            self.origin = self._times[0]
        number = after if pts is None else max(bisect.bisect_left(self._times, pts), after)
        self._numbers.append(number)
        return number

    @property
    def num_frames(self) -> int:
        """Frames of the source so far: packets demuxed, or frames numbered where more."""
        return max(self._num_packets, self._numbers[-1] + 1 if self._numbers else 0)

    def skipped(self) -> list[int]:
        """Numbers of the frames so far that gave no decoded frame, in order."""
        decoded = set(self._numbers)
        return [number for number in range(self.num_frames) if number not in decoded]

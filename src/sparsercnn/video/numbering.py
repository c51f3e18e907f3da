"""Frame numbers of a video's decoded frames counted in the source, frames that do not decode
included: the numbers of :attr:`~sparsercnn.video.reader.Frame.index` and of ``frame_index`` in
``predict``'s records, which match the video's own frame numbers (a player's, ffmpeg's ``-ss``)
even in a damaged file, and the numbers of the frames that did not decode.
"""

from __future__ import annotations

import bisect


class FrameNumbering:
    """Numbers one video stream's decoded frames, leaving gaps for the packets that fail to
    decode, at their presentation times.

    The decoder returns frames in presentation order (it reorders B-frames), so a decoded
    frame's number is how many frames were numbered before it plus how many failed packets
    (:meth:`fail_packet`) are presented before it. Only a packet the decoder rejects leaves a
    gap: one it drops without an error is not a frame of the source as players show it (the
    leading B-frames of a clip cut at an open-GOP keyframe, which reference a frame cut away),
    and the times of a container's packets are not always presentation times (H.264 in AVI
    carries decoding times), so gaps between the times of the frames decoded say nothing.

    Attributes:
        origin: presentation time of frame 0 (the first frame that decodes, or an earlier one
            that failed), in the stream's time base; None before the first frame is numbered.
    """

    def __init__(self) -> None:
        self._times: list[int] = []  # sorted times of the packets demuxed
        self._failed_times: list[int] = []  # sorted presentation times of the failed packets
        self._num_failed_untimed = 0
        self._num_packets = 0
        self._numbers: list[int] = []
        self.origin: int | None = None

    def add_packet(self, pts: int | None) -> None:
        """Count a packet that holds a frame (not the empty one that flushes the decoder, nor
        one the container marks to discard), with its time."""
        self._num_packets += 1
        if pts is not None:
            # Packets come in decoding order, close to presentation order: a short insert.
            bisect.insort(self._times, pts)

    def fail_packet(self, pts: int | None) -> None:
        """Count a packet added by :meth:`add_packet` that the decoder rejected (a damaged
        frame): its frame's number is left out, before the frames presented after ``pts``
        (None: unknown, before the next frame numbered)."""
        if pts is None:
            self._num_failed_untimed += 1
        else:
            bisect.insort(self._failed_times, pts)

    def number(self, pts: int | None) -> int:
        """The number of the next decoded frame, presented at ``pts`` (None: unknown)."""
        failed = self._failed_times
        if pts is not None and pts in failed:  # its packet was rejected, yet the frame came out
            failed.remove(pts)
        if self.origin is None:
            self.origin = min(failed[:1] + ([] if pts is None else [pts]), default=None)
        failed_before = len(failed) if pts is None else bisect.bisect_left(failed, pts)
        after = self._numbers[-1] + 1 if self._numbers else 0
        number = max(len(self._numbers) + self._num_failed_untimed + failed_before, after)
        self._numbers.append(number)
        return number

    def packet_time(self, number: int) -> int | None:
        """The ``number``-th earliest time of the packets demuxed (0 the earliest), None when
        not that many have times: frame ``number``'s presentation time in a container that
        stores decoding times only (AVI: a B-frame's packet has the time of the frame shown
        in its place, and the frames are shown at those times in turn)."""
        return self._times[number] if number < len(self._times) else None

    @property
    def _num_numbered_or_failed(self) -> int:
        num_failed = len(self._failed_times) + self._num_failed_untimed
        last = self._numbers[-1] + 1 if self._numbers else 0
        return max(last, len(self._numbers) + num_failed)

    @property
    def num_frames(self) -> int:
        """Frames of the source so far: packets demuxed, or frames numbered and failed where
        more."""
        return max(self._num_packets, self._num_numbered_or_failed)

    def skipped(self) -> list[int]:
        """Numbers of the frames so far whose packets failed to decode, in order."""
        decoded = set(self._numbers)
        return [n for n in range(self._num_numbered_or_failed) if n not in decoded]

"""Frame numbers of a video's decoded frames counted in the source, frames that do not decode
included: the numbers of :attr:`~sparsercnn.video.reader.Frame.index` and of ``frame_index`` in
``predict``'s records, which match the video's own frame numbers (a player's, ffmpeg's ``-ss``)
even in a damaged file, and the numbers of the frames that did not decode.
"""

from __future__ import annotations

import bisect
from fractions import Fraction

# How far from a whole number of frame durations an interval between two frames of a
# constant-rate stream may be: a tick of rounding each time (Matroska's milliseconds), and a
# hundredth of a frame for a frame rate the container rounds.
_TICK_TOLERANCE = 1
_FRAME_TOLERANCE = Fraction(1, 100)
# How many frame durations from where the demuxer showed damage a gap in the times may lie and
# still be frames lost: the frames presented around a skip were decoded up to 16 places from
# it (H.264's deepest reordering).
_DAMAGE_REACH = 16


class FrameNumbering:
    """Numbers one video stream's decoded frames, leaving gaps for the frames lost on the way:
    packets the decoder rejects, at their presentation times, and with a ``frame_duration``, the
    packets a damaged stream's demuxer skipped.

    The decoder returns frames in presentation order (it reorders B-frames), so a decoded
    frame's number is how many frames were numbered before it plus how many failed packets
    (:meth:`fail_packet`) are presented before it. A packet the decoder drops without an error is
    not a frame of the source as players show it (the leading B-frames of a clip cut at an
    open-GOP keyframe, which reference a frame cut away), and the times of a container's packets
    are not always presentation times (H.264 in AVI carries decoding times).

    A demuxer that meets damage (MPEG-TS, Matroska) skips to where it can read again: those
    frames never reach the decoder, and show only as a gap in the times, next to a packet the
    demuxer marks as damaged (``add_packet(..., damaged=True)``). With the stream's
    ``frame_duration``, while the stream is constant-rate (every packet declares that duration,
    and every interval between the frames presented is a whole number of it), an interval of
    ``k`` durations within :data:`_DAMAGE_REACH` durations of such a packet leaves ``k - 1``
    numbers out. A gap far from damage is a pause (a recording paused, or stopped between
    motions): its frames are numbered on, and :attr:`pauses` counts it. The first interval that
    is not a whole number of durations (a variable-rate video) ends this for the rest of the
    stream: its gaps say nothing.

    Memory stays small however long the video: only the packets not yet presented are kept.

    Args:
        frame_duration: the stream's frame duration in its time base (``1 / (fps *
            time_base)``), where its demuxer may skip damaged packets; None: gaps in the times
            say nothing.
        keep_times: keep the packets' times for :meth:`packet_time` (a container of decoding
            times).

    Attributes:
        origin: presentation time of frame 0 (the first frame that decodes, or an earlier one
            that failed), in the stream's time base; None before the first frame is numbered.
        end: the latest end of a packet demuxed (its time plus its duration), in the stream's
            time base; None before a packet with a time.
        pauses: how many gaps in a constant-rate stream's times are pauses, not frames lost.
        longest_pause: ``(start, end)`` presentation times of the longest pause (the frames
            before and after it), in the stream's time base; None without a pause.
    """

    def __init__(self, frame_duration: Fraction | None = None, *, keep_times: bool = False) -> None:
        self._frame_duration = frame_duration
        self._constant_rate = frame_duration is not None
        self._keep_times = keep_times
        # Sorted times of the packets demuxed from rank _num_times_passed on (keep_times only).
        self._times: list[int] = []
        self._num_times_passed = 0
        self._first_time: int | None = None
        # Sorted presentation times of the failed packets presented after the last frame
        # numbered; those presented before it (or at an unknown time) are counted only.
        self._failed_times: list[int] = []
        self._num_failed_passed = 0
        self._num_packets = 0
        self._num_numbered = 0
        self._next_number = 0  # one past the last number given
        self._last_pts: int | None = None  # the last frame numbered's pts (None: none, unknown)
        self._skipped: list[int] = []  # numbers left out before the last number
        # Sorted times of the packets marked damaged, near or after the last frame numbered.
        self._damage_times: list[int] = []
        self.origin: int | None = None
        self.end: int | None = None
        self.pauses = 0
        self.longest_pause: tuple[int, int] | None = None

    def add_packet(
        self, pts: int | None, dts: int | None = None, duration: int = 0, *, damaged: bool = False
    ) -> None:
        """Count a packet that holds a frame (not the empty one that flushes the decoder, nor
        one the container marks to discard), with its times and declared duration (0: none);
        ``damaged``: the demuxer showed damage at it or just before it (flagged it corrupt, or
        skipped part of the file to reach it), so a gap in the times near it is frames lost."""
        self._num_packets += 1
        time = dts if dts is not None else pts
        if damaged:
            # Presentation times where known: the gaps are measured in them.
            damage_time = pts if pts is not None else dts if dts is not None else self.end
            if damage_time is not None:
                bisect.insort(self._damage_times, damage_time)
        if time is not None:
            self.end = max(self.end if self.end is not None else time, time + duration)
        if self._constant_rate and not self._is_whole(duration, exactly_one=True):
            self._constant_rate = False
        if time is not None and self._keep_times:
            self._first_time = time if self._first_time is None else min(self._first_time, time)
            # Packets come in decoding order: a short insert.
            bisect.insort(self._times, time)

    def fail_packet(self, pts: int | None) -> None:
        """Count a packet added by :meth:`add_packet` that the decoder rejected (a damaged
        frame): its frame's number is left out, before the frames presented after ``pts``
        (None: unknown, before the next frame numbered)."""
        if pts is None:
            self._num_failed_passed += 1
        else:
            bisect.insort(self._failed_times, pts)

    def number(self, pts: int | None) -> int:
        """The number of the next decoded frame, presented at ``pts`` (None: unknown)."""
        failed = self._failed_times
        if pts is not None and pts in failed:  # its packet was rejected, yet the frame came out
            failed.remove(pts)
        if self.origin is None:
            self.origin = min(failed[:1] + ([] if pts is None else [pts]), default=None)
        # Presented before this frame, so before every later one too.
        failed_before = len(failed) if pts is None else bisect.bisect_left(failed, pts)
        del failed[:failed_before]
        self._num_failed_passed += failed_before
        number = max(
            self._num_numbered + self._num_failed_passed, self._next_number, self._timed(pts)
        )
        self._skipped.extend(range(self._next_number, number))
        self._num_numbered += 1
        self._next_number = number + 1
        self._last_pts = pts
        return number

    def _timed(self, pts: int | None) -> int:
        """The number of the frame at ``pts`` by its interval from the last frame numbered, in
        a constant-rate stream; -1 where the times say nothing."""
        if not self._constant_rate or pts is None or self._last_pts is None:
            return -1
        num_durations = self._is_whole(pts - self._last_pts)
        if num_durations is None:  # a variable-rate stream, from here on at least
            self._constant_rate = False
            return -1
        if num_durations > 1 and not self._near_damage(self._last_pts, pts):
            self._add_pause(self._last_pts, pts)
            return -1
        return self._next_number - 1 + num_durations

    def _near_damage(self, start: int, end: int) -> bool:
        """Whether a packet marked damaged lies within :data:`_DAMAGE_REACH` frame durations of
        the gap between the frames at ``start`` and ``end``; the marks before that reach are let
        go (the frames come in presentation order)."""
        assert self._frame_duration is not None
        reach = _DAMAGE_REACH * self._frame_duration
        times = self._damage_times
        del times[: bisect.bisect_left(times, start - reach)]
        return bool(times) and times[0] <= end + reach

    def _add_pause(self, start: int, end: int) -> None:
        self.pauses += 1
        if (
            self.longest_pause is None
            or end - start > self.longest_pause[1] - self.longest_pause[0]
        ):
            self.longest_pause = (start, end)

    def _is_whole(self, interval: int, *, exactly_one: bool = False) -> int | None:
        """How many frame durations ``interval`` is, where it is a whole number of them (one,
        with ``exactly_one``), else None."""
        assert self._frame_duration is not None
        count = round(interval / self._frame_duration)
        error = abs(interval - count * self._frame_duration)
        if count < 1 or (exactly_one and count != 1):
            return None
        return count if error <= _TICK_TOLERANCE + _FRAME_TOLERANCE * self._frame_duration else None

    def packet_time(self, number: int) -> int | None:
        """The ``number``-th earliest time of the packets demuxed (their decoding times where
        known; 0 the earliest), None when not that many have times: frame ``number``'s
        presentation time in a container that stores decoding times only (AVI: a B-frame's
        packet has the time of the frame shown in its place, and the frames are shown at those
        times in turn; the presentation times libavformat guesses there are the next packet's,
        a dropped frame's time too late). Needs ``keep_times``;
        asked in increasing ``number`` (0 at any time): the earlier times are let go."""
        assert self._keep_times, "packet_time needs FrameNumbering(keep_times=True)"
        if number == 0:
            return self._first_time
        passed = min(number - self._num_times_passed, len(self._times))
        if passed > 0:
            del self._times[:passed]
            self._num_times_passed += passed
        rank = number - self._num_times_passed
        return self._times[rank] if 0 <= rank < len(self._times) else None

    @property
    def _num_numbered_or_failed(self) -> int:
        num_failed = len(self._failed_times) + self._num_failed_passed
        return max(self._next_number, self._num_numbered + num_failed)

    @property
    def num_frames(self) -> int:
        """Frames of the source so far: packets demuxed, or frames numbered and lost where
        more."""
        return max(self._num_packets, self._num_numbered_or_failed)

    @property
    def next_number(self) -> int:
        """One past the last number given: the first frame not decoded so far, where reading
        stops part-way (the frames whose packets the decoder still holds are not counted)."""
        return self._next_number

    def skipped(self) -> list[int]:
        """Numbers of the frames so far that were lost (their packets failed to decode, or the
        demuxer skipped them), in order."""
        return self._skipped + list(range(self._next_number, self._num_numbered_or_failed))

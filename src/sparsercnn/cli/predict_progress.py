"""The progress bar of ``sparsercnn predict``: :class:`PredictionProgress`.

It counts the images and the kept video frames against what the inputs announce. A video's
header can be wrong (a damaged or cut file announces too many frames, a wrong one too few) or
silent (Matroska gives no frame count), so the total is an estimate that is corrected as each
input ends: the bar never shows 100% before the run ends, and ends at exactly its total.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from sparsercnn.cli.predict_inputs import InputGroup


class PredictionProgress:
    """A tqdm bar over the images and kept frames of ``groups`` (on stderr, only when it is a
    terminal), used as a context manager; it counts frames when there are only sequences,
    images otherwise.

    Args:
        groups: the inputs in the order predicted: lists of images and frame sequences.
        every: the ``--every`` of the sequences (their frames ``0, every, 2 * every, ...``).
    """

    def __init__(self, groups: list[InputGroup], every: int) -> None:
        self._expected = [expected_items(group, every) for group in groups]
        self.bar = tqdm(
            total=known_sum(self._expected),
            desc="predict",
            # Frames of videos and frame folders only, else images (and frames).
            unit="image" if any(isinstance(group, list) for group in groups) else "frame",
            file=sys.stderr,
            disable=None,  # no bar when stderr is not a terminal
            dynamic_ncols=True,
        )

    def __enter__(self) -> PredictionProgress:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.__exit__(exc_type, exc, traceback)

    def count(self) -> None:
        """Count one image or frame predicted. An input with more frames than its container
        announces holds the bar one short of its total until the input ends
        (:meth:`input_done`)."""
        bar = self.bar
        if bar.total is not None and bar.n + 1 >= bar.total:
            bar.total = bar.n + 2  # before update(), which may show the bar
        bar.update()

    def input_done(self, index: int) -> None:
        """Input ``index`` of the groups is predicted: the total becomes the items counted and
        what the inputs after it are expected to hold (unknown if one does not say), so that
        a header that announced too many frames does not leave the bar short at the end."""
        rest = known_sum(self._expected[index + 1 :])
        self.bar.total = None if rest is None else self.bar.n + rest
        self.bar.refresh()


def expected_items(group: InputGroup, every: int) -> int | None:
    """What the bar expects of ``group``: its images, or the frames ``every`` keeps of a
    sequence as its container announces them (its frame count, else its duration times its
    frame rate); None where it says neither."""
    from sparsercnn.video import VideoFile

    if isinstance(group, list):
        return len(group)
    num_frames = group.num_frames
    if num_frames is None and isinstance(group, VideoFile) and group.duration is not None:
        num_frames = round(group.duration * group.fps)
    return None if num_frames is None else -(-num_frames // every)


def known_sum(counts: list[int | None]) -> int | None:
    """The sum of ``counts``, or None when one is unknown (None)."""
    known = [count for count in counts if count is not None]
    return sum(known) if len(known) == len(counts) else None

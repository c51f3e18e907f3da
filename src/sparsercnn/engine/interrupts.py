"""Ctrl-C and SIGTERM during training: the step under way finishes, then the run stops.

A signal that raised ``KeyboardInterrupt`` in the middle of a step left the run with nothing to
resume from since its last periodic checkpoint (a short budgeted run often has none). While a
:class:`DeferredInterrupt` is active, the first SIGINT or SIGTERM is only recorded; the trainer
checks :attr:`DeferredInterrupt.requested` after each step, writes a checkpoint of the steps
taken and then :meth:`~DeferredInterrupt.deliver` s the signal as it would have been handled
(``KeyboardInterrupt``, the command line's ``Terminated``, or the default action). A second
signal is delivered at once, unless it comes within :data:`REPEAT_GRACE_S` of the first: that
is the same request reaching the process twice (``torchrun`` passes the terminal's Ctrl-C on to
workers that the terminal already interrupted). In a multi-process run the trainer makes the
ranks agree, after each step, whether any was interrupted, so that all checkpoint the same step
(:func:`~sparsercnn.engine.distributed.any_rank`). (Data-loading workers ignore SIGINT, see
:mod:`sparsercnn.data.loader`: a terminal's Ctrl-C reaches the whole process group, and a
worker that died of it would fail the step that waits for its batch.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A repeated signal this soon after the first is the same request (seconds).
REPEAT_GRACE_S = 1.0


class DeferredInterrupt:
    """Context manager: while active (in the main thread, where Python runs signal handlers),
    the first SIGINT or SIGTERM is recorded in :attr:`requested` instead of acting.

    Signals the process ignores (``SIG_IGN``, as in a background job) stay ignored. On exit
    the previous handlers are restored.

    Args:
        notice: called when a signal is first deferred; what it returns (what the run does
            now, as it stands then) is written to stderr. ``None``: nothing is written.
    """

    def __init__(self, *, notice: Callable[[], str] | None = None) -> None:
        self.notice = notice
        self.requested: int | None = None
        self._requested_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN and previous is not None:
                    self._previous[signum] = signal.signal(signum, self._defer)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._restore()

    def deliver(self) -> None:
        """Act on the recorded signal as its previous handler would (normally raising
        ``KeyboardInterrupt`` or ``Terminated``); raise ``KeyboardInterrupt`` if it did not
        stop the program. Does nothing when no signal was recorded."""
        if self.requested is None:
            return
        self._restore()
        signal.raise_signal(self.requested)
        raise KeyboardInterrupt

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            if time.monotonic() - self._requested_at < REPEAT_GRACE_S:
                return  # the first request again
            # A second signal: act now.
            previous = self._previous.get(signum, signal.SIG_DFL)
            self._restore()
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signum)
            return
        self.requested = signum
        self._requested_at = time.monotonic()
        if self.notice is not None:
            # os.write: no lock a logging or print call interrupted here might hold.
            os.write(2, f"\n{self.notice()}\n".encode())

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

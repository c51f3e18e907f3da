"""DeferredInterrupt: the first SIGINT/SIGTERM waits for the trainer, a second acts at once (the
same one again within a second is the first), ignored signals stay ignored, and the handlers
are restored."""

from __future__ import annotations

import signal

import pytest

from sparsercnn.engine import interrupts
from sparsercnn.engine.interrupts import DeferredInterrupt

pytestmark = pytest.mark.usefixtures("python_sigint")


def test_the_first_signal_is_recorded_and_delivered_later() -> None:
    before = signal.getsignal(signal.SIGINT)
    with DeferredInterrupt() as interrupt:
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt here
        assert interrupt.requested == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):
        interrupt.deliver()


def test_a_second_signal_acts_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interrupts, "REPEAT_GRACE_S", 0.0)
    with pytest.raises(KeyboardInterrupt), DeferredInterrupt():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        pytest.fail("the second Ctrl-C did not stop the block")


def test_the_same_signal_again_at_once_is_the_first_request() -> None:
    """torchrun passes a terminal's Ctrl-C on to workers the terminal interrupted already."""
    with DeferredInterrupt() as interrupt:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        assert interrupt.requested == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        interrupt.deliver()


def test_sigterm_goes_to_the_previous_handler() -> None:
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with DeferredInterrupt() as interrupt:
            signal.raise_signal(signal.SIGTERM)
            assert not received
        with pytest.raises(KeyboardInterrupt):  # the handler did not stop the program
            interrupt.deliver()
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ignored_signals_stay_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with DeferredInterrupt() as interrupt:
            signal.raise_signal(signal.SIGINT)
        assert interrupt.requested is None
    finally:
        signal.signal(signal.SIGINT, previous)
    interrupt.deliver()  # nothing recorded: nothing happens


def test_the_notice_says_what_the_run_does_when_the_signal_comes(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The notice was fixed when training began: a signal before the first step was told of
    a checkpoint the run would not write."""
    state = ["before the first step"]
    with DeferredInterrupt(notice=lambda: f"interrupted {state[0]}") as interrupt:
        state[0] = "during a step"
        signal.raise_signal(signal.SIGINT)
    assert capfd.readouterr().err == "\ninterrupted during a step\n"
    with pytest.raises(KeyboardInterrupt):
        interrupt.deliver()

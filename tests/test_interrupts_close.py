"""A stop that lands while a broker closes waits for the close, then stops wfbus.

A driver's close flushes, hands back what it holds and destroys its C client; librdkafka runs
callbacks while a client is destroyed, and a signal handler raising in there cannot propagate
(CPython reports it later from an unrelated call as a SystemError: an emit stopped while closing
ended with "internal error" and no report). The broker here signals itself in the middle of its own
close, so the stop lands at a known point every time.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from wfbus import interrupts
from wfbus.brokers.local import LocalBroker, LocalSettings

STEPS = 200


class SignalledWhileClosing(LocalBroker):
    """A local broker whose close is interrupted by `signum` after its first step."""

    def __init__(self, path: Path, signum: int) -> None:
        super().__init__("local", LocalSettings(type="local", path=str(path)), path.parent)
        self.signum = signum
        self.closed_steps = 0

    def close(self) -> None:
        os.kill(os.getpid(), self.signum)
        for _ in range(STEPS):  # many bytecodes: a handler that raises would land among them
            self.closed_steps += 1
        super().close()


@pytest.mark.parametrize("signum", interrupts.STOP_SIGNALS)
def test_a_stop_during_close_lets_the_close_finish_then_stops(tmp_path, signum):
    broker = SignalledWhileClosing(tmp_path / "local.db", signum)
    with pytest.raises(interrupts.Stopped) as stopped, interrupts.handling():
        with broker:
            pass
    assert broker.closed_steps == STEPS  # the close ran to its end
    assert stopped.value.signum == signum  # and the stop still stops, with its own exit code


def test_outside_wfbus_own_handling_the_callers_handlers_still_run(tmp_path):
    """The Python API in a program with its own SIGTERM handler: wfbus does not take it over."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        broker = SignalledWhileClosing(tmp_path / "local.db", signal.SIGTERM)
        with broker:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]
    assert broker.closed_steps == STEPS


class StuckWhileClosing(LocalBroker):
    """A close stuck on a peer that stopped answering, stopped once and then once more."""

    def __init__(self, path: Path) -> None:
        super().__init__("local", LocalSettings(type="local", path=str(path)), path.parent)

    def close(self) -> None:
        import threading
        import time

        os.kill(os.getpid(), signal.SIGTERM)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a driver waiting for an answer that never comes
            time.sleep(0.01)
        super().close()


def test_a_second_stop_ends_a_close_that_is_stuck(tmp_path):
    """The first stop waits for the close; the second is not held back: a stop always stops."""
    import time

    started = time.monotonic()
    with pytest.raises(interrupts.Stopped) as stopped, interrupts.handling():
        with StuckWhileClosing(tmp_path / "local.db"):
            pass
    assert time.monotonic() - started < 5
    assert stopped.value.signum == signal.SIGTERM  # the first stop names the exit code

"""Ctrl-C, SIGTERM and SIGHUP: one way to stop, that waits for the batch on the wire.

CI job timeouts and `kill` send SIGTERM, a closed terminal SIGHUP; each must leave what Ctrl-C
leaves: a report of what was confirmed, an exact `--failed-out`, and exit 128+signal. `handling()`
makes all three raise `Stopped` (a KeyboardInterrupt, so every `except KeyboardInterrupt` sees it).

A signal landing between "the broker confirmed" and "we counted it / removed it at the source"
would make the summary wrong (or, in a replay, leave a duplicate). Inside `deferred()`, a stop
signal is remembered and raised once the block is done, so a batch is always accounted whole. The
block is bounded by the broker timeouts, so a stop still ends wfbus promptly.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; `signum` gives the exit code (128 + signum)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_of(exc: BaseException) -> int:
    return exc.signum if isinstance(exc, Stopped) else int(signal.SIGINT)


def signal_name(signum: int) -> str:
    return {2: "Ctrl-C (SIGINT)", 15: "SIGTERM", 1: "SIGHUP"}.get(signum, f"signal {signum}")


def exit_code(exc: BaseException) -> int:
    return 128 + signal_of(exc)


def _raise(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def handling() -> Iterator[None]:
    """While a command runs: every stop signal raises Stopped (restored afterwards, for in-process tests)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def note_for_the_process() -> list[int]:
    """From now until the process ends, a stop signal is only noted (`handling()` takes over while
    a command runs): one landing while wfbus starts, or after its report is written while the
    interpreter shuts down (drivers flushing, threads ending), no longer kills it by the default
    action with its work done. A second one still ends the process at once, so a stuck shutdown
    can always be stopped."""
    received: list[int] = []

    def note(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    if threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, note)
    return received


@contextmanager
def _stops_held(handler) -> Iterator[None]:  # noqa: ANN001 - a signal handler
    """`handler(received, signum)` for every stop signal while the block runs (the previous
    handlers restored after); the first stop noted is raised when the block ends."""
    received: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: handler(received, signum)) for s in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        if received:
            raise Stopped(received[0])


def _note(received: list[int], signum: int) -> None:
    received.append(signum)


def _note_then_stop(received: list[int], signum: int) -> None:
    received.append(signum)
    if len(received) > 1:  # a second stop: the close is stuck, and a stop always stops
        raise Stopped(received[0])


@contextmanager
def deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _stops_held(_note):
        yield


@contextmanager
def closing() -> Iterator[None]:
    """A driver's close (flushing, handing back what it holds, destroying its C client) is never
    torn by a stop. librdkafka runs callbacks while its clients are destroyed, and a handler raising
    there cannot propagate: CPython reports it later, from an unrelated call, as a SystemError (one
    emit stopped while closing ended with an internal error and no report). While `handling()` is
    in force the first stop waits for the close and is raised after it; a second one is raised at
    once, so a close stuck on a peer that stopped answering can still be stopped. Elsewhere
    (serve's threads, the Python API with its caller's own handlers) nothing changes."""
    ours = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is _raise
    )
    if not ours:
        yield
        return
    with _stops_held(_note_then_stop):
        yield

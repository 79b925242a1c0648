"""Ctrl-C that waits for the batch on the wire.

A KeyboardInterrupt landing between "the broker confirmed" and "we counted it / removed it at the
source" would make the summary wrong (or, in a replay, leave a duplicate). Inside `deferred()`, a
SIGINT is remembered and raised once the block is done, so a batch is always accounted whole.
The block is bounded by the broker timeouts, so Ctrl-C still ends wfbus promptly.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt

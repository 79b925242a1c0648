"""stdout and stderr that cannot fail a command: a write error is remembered, never raised.

A reader that goes away (``| head -1``) or a full disk must not turn a finished command into an
"internal error" or, worse, into exit 1 ("delivery failure"), which tells a script to resend
events that all arrived.  So while a command runs, ``sys.stdout`` and ``sys.stderr`` are wrapped:
the first failed write is kept, the descriptor is pointed at /dev/null (so nothing else, not even
the interpreter's flush at exit, trips over it again), and later writes are dropped.  When the
command is done, ``wfbus.cli.run`` turns what was kept into the exit status the
errors.py docstring describes.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any


class GuardedStream:
    """A text stream that records its first write error instead of raising it."""

    def __init__(self, target: IO[str] | None, name: str) -> None:
        self.name = name
        self.error: OSError | None = None
        if (
            target is None
        ):  # started with the descriptor closed (`wfbus depth >&-`): Python gives None
            target = open(os.devnull, "w", encoding="utf-8")
            self.error = OSError(errno.EBADF, f"{name} is closed")
        self._target = target

    @property
    def reader_left(self) -> bool:
        """The other end of a pipe was closed: the reader had enough, which is no failure."""
        return isinstance(self.error, BrokenPipeError)

    @property
    def failed(self) -> bool:
        """Output was lost for a reason other than a reader that left (disk full, I/O error, closed)."""
        return self.error is not None and not self.reader_left

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self._target.write(text)
            except OSError as exc:
                self._fail(exc)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.error is None:
            try:
                self._target.flush()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        self._silence()

    def _silence(self) -> None:
        """Point the descriptor at /dev/null: what is still buffered flushes there, quietly."""
        try:
            fd = self._target.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            return  # not a real descriptor (a test's capture): nothing flushes it at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        try:
            self._target.flush()
        except OSError:
            pass

    def describe(self) -> str:
        """The failure in one line, for the error message."""
        assert self.error is not None
        reason = self.error.strerror or str(self.error)
        return f"cannot write to {self.name}: {reason}"

    def __getattr__(
        self, name: str
    ) -> Any:  # isatty, fileno, encoding, buffer ... as the real stream
        return getattr(self._target, name)


@contextmanager
def guarded() -> Iterator[tuple[GuardedStream, GuardedStream]]:
    """Wrap sys.stdout and sys.stderr for the duration of one command, then put them back."""
    saved = sys.stdout, sys.stderr
    out, err = GuardedStream(sys.stdout, "stdout"), GuardedStream(sys.stderr, "stderr")
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved

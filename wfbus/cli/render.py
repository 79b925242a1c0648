"""How wfbus talks to people and scripts: rich on a terminal, plain text in a pipe, JSON on request.

Results go to stdout; errors, warnings and progress go to stderr.  NO_COLOR and non-TTY streams
get no colour and no box drawing, so output is stable to grep and diff.

Diagnostics (error, warn, note, and documents marked `diagnostic`) are redacted here; results are
printed as they are, because they carry event data (peek output, samples) that must never be altered.
Diagnostic text placed inside a result (an error column, a broker's target) is redacted where the
core builds it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Callable, Literal

from ..redact import redact

OutputMode = Literal["text", "json", "jsonl"]
OUTPUT_MODES = ("text", "json", "jsonl")


class Output:
    def __init__(self, mode: OutputMode = "text", stdout: IO[str] | None = None, stderr: IO[str] | None = None):
        self.mode = mode
        self._stdout = stdout
        self._stderr = stderr
        self._console = None
        self._err_console = None

    @property
    def stdout(self) -> IO[str]:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> IO[str]:
        return self._stderr or sys.stderr

    @property
    def console(self):
        if self._console is None:
            self._console = _make_console(self.stdout)
        return self._console

    @property
    def err_console(self):
        if self._err_console is None:
            self._err_console = _make_console(self.stderr)
        return self._err_console

    # -- data for scripts -------------------------------------------------------------------
    def json(self, document: Any, *, diagnostic: bool = False) -> None:
        """One document; `diagnostic` (an error document) is redacted, results never are."""
        text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
        self.stdout.write((redact(text) if diagnostic else text) + "\n")
        self.stdout.flush()

    def jsonl(self, documents: Iterable[Any]) -> None:
        """One event per line, exactly as read: `wfbus emit` takes the lines back unchanged."""
        for document in documents:
            self.stdout.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.stdout.flush()

    # -- text for people --------------------------------------------------------------------
    def line(self, text: str = "", style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
        from rich import box
        from rich.table import Table

        fancy = self.console.is_terminal
        table = Table(
            title=title if fancy else None,
            box=box.SIMPLE_HEAD if fancy else None,
            show_edge=False,
            header_style="bold" if fancy else None,
            pad_edge=False,
        )
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        if title and not fancy:
            self.line(title)
        self.console.print(table)

    def error(self, text: str) -> None:
        self.err_console.print(redact(f"error: {text}"), style="red", markup=False, highlight=False)

    def warn(self, text: str) -> None:
        self.err_console.print(redact(f"warning: {text}"), style="yellow", markup=False, highlight=False)

    def note(self, text: str) -> None:
        self.err_console.print(redact(text), style="dim", markup=False, highlight=False)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int, int | None], None] | None]:
        """A progress bar on stderr for people at a terminal; None (no output) for scripts."""
        if self.mode != "text" or not self.err_console.is_terminal:
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.err_console,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)

            def update(done: int, new_total: int | None = None) -> None:
                bar.update(task, completed=done, total=new_total if new_total is not None else total)

            yield update


def _make_console(stream: IO[str]):
    from rich.console import Console

    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(
        file=stream,
        highlight=False,
        no_color=bool(os.environ.get("NO_COLOR")) or None,
        width=None if is_tty else 4096,  # a pipe gets whole lines, not lines folded at 80 columns
        soft_wrap=not is_tty,
    )

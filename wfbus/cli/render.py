"""How wfbus talks to people and scripts: rich on a terminal, plain text in a pipe, JSON on request.

In a pipe (and in tests) rich is not even imported: its console alone costs ~90 ms of start-up, and
without a terminal it adds nothing but tab expansion, control-code stripping and column padding,
which `_plain` and `_plain_table` do the same way (tests/test_startup.py keeps rich out of pipes).

Results go to stdout; errors, warnings and progress go to stderr.  NO_COLOR and non-TTY streams
get no colour and no box drawing, so output is stable to grep and diff.

Diagnostics (error, warn, note, and documents marked `diagnostic`) are redacted here; results are
printed as they are, because they carry event data (peek output, samples) that must never be
altered. Diagnostic text placed inside a result (an error column, a broker's target) is redacted
where the core builds it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Literal

from ..redact import redact

OutputMode = Literal["text", "json", "jsonl"]
OUTPUT_MODES = ("text", "json", "jsonl")


class Output:
    def __init__(
        self,
        mode: OutputMode = "text",
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        no_color: bool = False,
    ):
        self.mode = mode
        self.no_color = no_color  # --no-color, as NO_COLOR does
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
            self._console = _make_console(self.stdout, self.no_color)
        return self._console

    @property
    def err_console(self):
        if self._err_console is None:
            self._err_console = _make_console(self.stderr, self.no_color)
        return self._err_console

    # -- data for scripts -------------------------------------------------------------------
    def json(self, document: Any, *, diagnostic: bool = False, one_line: bool = False) -> None:
        """One document; `diagnostic` (an error document) is redacted, results never are.

        Under `-o jsonl` (or `one_line`) it is one line, so a line reader (a backup file, `jq -c`)
        never receives a document torn over several lines."""
        if one_line or self.mode == "jsonl":
            text = json.dumps(document, ensure_ascii=False, default=str, separators=(",", ":"))
        else:
            text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
        self.stdout.write((redact(text) if diagnostic else text) + "\n")
        self.stdout.flush()

    def jsonl(self, documents: Iterable[Any]) -> None:
        """One event per line, exactly as read: `wfbus emit` takes the lines back unchanged."""
        for document in documents:
            self.stdout.write(
                json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"
            )
        self.stdout.flush()

    def json_stream(self, documents: Iterable[Any]) -> None:
        """The same text as `json(list(documents))`, written one element at a time (memory stays flat)."""
        write = self.stdout.write
        first = True
        for document in documents:
            text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
            write(("[\n  " if first else ",\n  ") + text.replace("\n", "\n  "))
            first = False
        write("[]\n" if first else "\n]\n")
        self.stdout.flush()

    # -- text for people --------------------------------------------------------------------
    @property
    def _plain_out(self) -> bool:
        return self._console is None and not _is_tty(self.stdout)

    @property
    def _plain_err(self) -> bool:
        return self._err_console is None and not _is_tty(self.stderr)

    def line(self, text: str = "", style: str | None = None) -> None:
        if self._plain_out:
            self.stdout.write(_plain(text) + "\n")
            self.stdout.flush()
            return
        self.console.print(text, style=style, markup=False, highlight=False)

    def err_line(self, text: str) -> None:
        """A line on stderr as it is (InputError's listed problems)."""
        self._err(text, None)

    def _err(self, text: str, style: str | None) -> None:
        if self._plain_err:
            self.stderr.write(_plain(text) + "\n")
            self.stderr.flush()
            return
        self.err_console.print(text, style=style, markup=False, highlight=False)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        title: str | None = None,
        shorten: Sequence[str] = (),
    ) -> None:
        """A table; on a terminal too narrow for it, the `shorten` columns (ids, bodies) are cut with
        an ellipsis so each row stays on one line (the others wrap). A pipe gets every cell whole."""
        if self._plain_out:
            if title:
                self.line(title)
            self.stdout.write(_plain_table(columns, rows))
            self.stdout.flush()
            return
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
        cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
        widths = (
            _shortened_widths(columns, cells, shorten, self.console.width)
            if fancy and shorten
            else {}
        )
        for index, column in enumerate(columns):
            if index in widths:
                table.add_column(column, width=widths[index], no_wrap=True, overflow="ellipsis")
            else:
                table.add_column(column, overflow="fold")
        for row in cells:
            table.add_row(*row)
        if title and not fancy:
            self.line(title)
        self.console.print(table)

    def error(self, text: str) -> None:
        self._err(redact(f"error: {text}"), "red")

    def warn(self, text: str) -> None:
        self._err(redact(f"warning: {text}"), "yellow")

    def note(self, text: str) -> None:
        self._err(redact(text), "dim")

    @contextmanager
    def progress(
        self, description: str, total: int | None
    ) -> Iterator[Callable[[int, int | None], None] | None]:
        """A progress bar on stderr for people at a terminal; None (no output) for scripts."""
        if self.mode != "text" or self._plain_err or not self.err_console.is_terminal:
            yield None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

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
                bar.update(
                    task, completed=done, total=new_total if new_total is not None else total
                )

            yield update


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


_CONTROL = str.maketrans(
    "", "", "\x07\x08\x0b\x0c\r"
)  # what rich strips (rich.control.strip_control_codes)


def _plain(text: str) -> str:
    """Text as rich prints it to a pipe: those control codes dropped, tabs expanded to 8 columns."""
    text = text.translate(_CONTROL)
    return text.expandtabs(8) if "\t" in text else text


def _cell_len(text: str) -> int:
    if text.isascii():
        return len(text)
    from rich.cells import (
        cell_len,
    )  # wide characters (CJK, emoji) take two columns, as rich counts them

    return cell_len(text)


def _plain_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """rich's Table(box=None, show_edge=False, pad_edge=False) in a pipe: header and rows padded to the
    widest cell of each column, two spaces between columns, a cell's lines below each other; no
    trailing spaces (they make `diff` and `grep 'x$'` fail for nothing)."""
    cells = [[_plain(str(c)).split("\n") for c in columns]]
    cells += [[_plain("" if c is None else str(c)).split("\n") for c in row] for row in rows]
    widths = [max(_cell_len(line) for row in cells for line in row[i]) for i in range(len(columns))]
    out = []
    for row in cells:
        for index in range(max(len(cell) for cell in row)):
            parts = []
            for cell, width in zip(row, widths, strict=False):
                line = cell[index] if index < len(cell) else ""
                parts.append(line + " " * (width - _cell_len(line)))
            out.append("  ".join(parts).rstrip())
    return "\n".join(out) + "\n" if out else ""


MIN_SHORTENED = 6  # an id cut shorter than this says nothing


def _shortened_widths(
    columns: Sequence[str], cells: list[list[str]], shorten: Sequence[str], width: int
) -> dict[int, int]:
    """Widths for the `shorten` columns so that the table fits `width` (index -> width); {} when it
    fits as it is.  The other columns keep their natural width; the room left is shared so that a
    narrow column keeps its width and the wide ones split the rest evenly (water filling)."""
    natural = [
        max([_cell_len(columns[i]), *(_line_len(row[i]) for row in cells)])
        for i in range(len(columns))
    ]
    overhead = 3 * len(columns)  # rich's padding and separators, with a column to spare
    cut = [i for i, name in enumerate(columns) if name in shorten]
    room = width - overhead - sum(w for i, w in enumerate(natural) if i not in cut)
    if sum(natural[i] for i in cut) <= room:
        return {}
    widths: dict[int, int] = {}
    left = sorted(cut, key=lambda i: natural[i])
    while left:
        share = max(MIN_SHORTENED, room // len(left))
        index = left.pop(0)
        widths[index] = max(
            min(natural[index], share),
            min(natural[index], MIN_SHORTENED),
            _cell_len(columns[index]),
        )
        room -= widths[index]
    return widths


def _line_len(text: str) -> int:
    return max((_cell_len(line) for line in text.split("\n")), default=0)


def _make_console(stream: IO[str], no_color: bool = False):
    from rich.console import Console

    is_tty = _is_tty(stream)
    return Console(
        file=stream,
        highlight=False,
        no_color=no_color or bool(os.environ.get("NO_COLOR")) or None,
        width=None if is_tty else 4096,  # a pipe gets whole lines, not lines folded at 80 columns
        soft_wrap=not is_tty,
    )

"""Where events come from: files, directories, JSON lines, stdin and inline flags.

Every event is paired with its *place* (``events.jsonl:12``, ``batch.json[3]``, ``<stdin>:4``)
so an error can point at it.  Sources are read twice by `emit` (validate everything, then send),
one event at a time, so memory stays flat however many events there are; stdin is spooled to a
temporary file on the first pass so it can be read again.  An input given twice (by any path to the
same file, or `-` twice) is refused before anything is read: it would be sent twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from . import strictjson
from .errors import EmptyInput, InputError, UsageError
from .event import EventInvalid, WireFormat, WorkflowEvent, parse_event

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",) + JSON_LINES_SUFFIXES
MAX_LISTED_PROBLEMS = 20
STDIN = "-"
BOM = b"\xef\xbb\xbf"


class Located(NamedTuple):
    """An event (or the reasons it is not one) and the place it was read from (a tuple: one per event)."""

    place: str
    event: WorkflowEvent | None
    problems: tuple[str, ...] = ()
    empty: bool = False  # not an event: the marker of an input that holds none


EMPTY_PROBLEM = "no events: the input is empty"


@dataclass(slots=True)
class ScanReport:
    """What the validation pass found: how many events, and every problem (capped)."""

    count: int = 0
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0
    empty: list[str] = field(default_factory=list)  # the inputs that hold no event at all
    # the events' ids in order: names "these events" for `emit --resume`, whatever paths they came by
    digest: Any = field(default_factory=lambda: hashlib.sha256())

    def add(self, place: str, reasons: Sequence[str]) -> None:
        for reason in reasons:
            if len(self.problems) < MAX_LISTED_PROBLEMS:
                self.problems.append(f"{place}: {reason}")
            else:
                self.more_problems += 1

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self, consequence: str = "nothing was sent", *, hint: str | None = None) -> None:
        if self.empty and len(self.empty) == len(self.problems) and not self.more_problems:
            raise EmptyInput(self.empty, consequence=consequence)
        if self.problems:
            raise InputError(self.problems, more=self.more_problems, consequence=consequence, hint=hint)


@dataclass(frozen=True, slots=True)
class InlineEvent:
    """The event given with --topic/--urn/--payload/--attempt."""

    topic: str
    urn: str
    payload: str | None = None
    attempt: int = 0

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"topic": self.topic, "urn": self.urn, "attempt": self.attempt}
        if self.payload is not None:
            doc["payload"] = _inline_payload(self.payload)
        return doc


def _inline_payload(text: str) -> Any:
    origin = "--payload"
    if text.startswith("@"):
        path = Path(text[1:])
        origin = f"--payload {text}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{origin}: cannot read {path}: {exc.strerror}", hint="check the file path") from None
        except UnicodeDecodeError:
            raise UsageError(f"{origin}: {path} is not UTF-8 text") from None
    try:
        return strictjson.loads(text)
    except strictjson.StrictJSONError as exc:
        raise InputError(
            [f"{origin}: {exc.message}"],
            hint="--payload takes JSON: quote strings ('\"text\"') or pass @file.json",
        ) from None


class EventSources:
    """The sources of one command, readable as many times as needed (stdin is spooled)."""

    def __init__(
        self,
        specs: Sequence[str],
        inline: InlineEvent | None = None,
        stdin: IO[bytes] | None = None,
    ) -> None:
        self._specs = list(specs)
        self._inline = inline
        self._stdin = stdin
        self._spool: Path | None = None
        self._files = self._expand(self._specs)

    def __enter__(self) -> EventSources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._spool is not None:
            self._spool.unlink(missing_ok=True)
            self._spool = None

    @property
    def empty(self) -> bool:
        return not self._files and self._inline is None

    def _expand(self, specs: Sequence[str]) -> list[str]:
        """The files to read, in order; an input given twice is refused rather than sent twice.

        Sameness is the file itself (device and inode), however it is spelled: `a` and `./a`, a
        symlink or hard link, a file and a directory holding it, stdin redirected from a named file.
        Refusing (exit 2, naming both) is clearer for a script than reading once and going on.
        """
        files: list[str] = []
        seen: dict[tuple[int, int], str] = {}  # a file's identity -> how it was given first

        def add(path: str, given: str) -> None:
            identity = _identity(os.stat(path))
            if identity in seen:
                raise _given_twice(seen[identity], given)
            seen[identity] = given
            files.append(path)

        for spec in specs:
            if spec == STDIN:
                if STDIN in files:
                    raise UsageError("- (stdin) is given twice: its events would be read twice",
                                     hint="name - once; stdin can be read only once")
                stdin_file = self._stdin_file()
                if stdin_file is not None:
                    if stdin_file in seen:
                        raise _given_twice(seen[stdin_file], "- (stdin is redirected from that file)")
                    seen[stdin_file] = "- (stdin, redirected from a file)"
                files.append(STDIN)
                continue
            path = Path(spec)
            if path.is_dir():
                found = sorted(
                    str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in JSON_SUFFIXES
                )
                if not found:
                    raise UsageError(
                        f"{spec}: directory has no .json, .jsonl or .ndjson files",
                        hint="point at a directory of event files, or name the files",
                    )
                for file in found:
                    add(file, f"{file} (in directory {spec})")
            elif path.is_file():
                add(spec, spec)
            else:
                raise UsageError(f"{spec}: no such file or directory", hint="check the path (use - for stdin)")
        return files

    def _stdin_file(self) -> tuple[int, int] | None:
        """The identity of the file stdin is redirected from (`< a.jsonl`), if it is a regular file."""
        if self._stdin is not None:
            return None  # injected by a test or a caller: not a descriptor
        try:
            status = os.fstat(sys.stdin.fileno())
        except (AttributeError, OSError, ValueError):
            return None
        return _identity(status) if stat.S_ISREG(status.st_mode) else None

    def scan(self, *, wire: WireFormat = "topic", size_limit: int | None = None) -> ScanReport:
        """Validation pass: count the events and collect every problem, holding none in memory."""
        report = ScanReport()
        for item in self:
            if item.empty:
                report.empty.append(item.place)
                report.add(item.place, item.problems)
                continue
            report.count += 1
            if item.event is not None:
                report.digest.update(item.event.event_id.encode())
            if item.problems:
                report.add(item.place, item.problems)
            elif size_limit is not None and item.event is not None:
                size = len(item.event.encode(wire))
                if size > size_limit:
                    report.add(item.place, [f"event is {size:,} bytes, over the broker's {size_limit:,}-byte limit"])
        return report

    def events(self) -> Iterator[tuple[str, WorkflowEvent]]:
        """Sending pass: the events, assuming scan() found no problem."""
        for item in self:
            if item.event is None:  # the sources changed between the passes
                raise InputError([f"{item.place}: {p}" for p in item.problems])
            yield item.place, item.event

    def __iter__(self) -> Iterator[Located]:
        if self._inline is not None:
            yield _located("--topic/--urn", self._inline.document())
        for spec in self._files:
            found = 0
            for item in self._read_stdin() if spec == STDIN else read_file(Path(spec), spec):
                found += 1
                yield item
            if not found:
                yield Located("<stdin>" if spec == STDIN else spec, None, (EMPTY_PROBLEM,), empty=True)

    def _read_stdin(self) -> Iterator[Located]:
        if self._spool is None:
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            fd, name = tempfile.mkstemp(prefix="wfbus-stdin-", suffix=".json")
            with os.fdopen(fd, "wb") as spool:
                shutil.copyfileobj(stream, spool, 1 << 20)
            self._spool = Path(name)
        yield from read_file(self._spool, "<stdin>", detect=True)


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _given_twice(first: str, second: str) -> UsageError:
    return UsageError(
        f"the same input is given twice, as {first} and as {second}: its events would be read and sent twice",
        hint="name each input once (a directory includes every file below it)",
    )


def read_file(path: Path, label: str, *, detect: bool = False) -> Iterator[Located]:
    """Events of one file: JSON lines by suffix (or by content when `detect`), else one document."""
    lines_mode = path.suffix.lower() in JSON_LINES_SUFFIXES
    if detect:
        lines_mode = _looks_like_json_lines(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Located(label, None, (f"cannot read: {exc.strerror}",))
        return
    with handle:
        if lines_mode:
            yield from _read_lines(handle, label)
        else:
            yield from _read_document(handle.read(), label)


def _looks_like_json_lines(path: Path) -> bool:
    """stdin has no suffix: a first line that is a whole JSON object means JSON lines."""
    with path.open("rb") as handle:
        first = handle.readline().removeprefix(BOM).strip()
    if not first or first.startswith(b"["):
        return False
    try:
        strictjson.loads(first.decode("utf-8"))
    except (strictjson.StrictJSONError, UnicodeDecodeError):
        return False
    return True


# no integer of 15 digits or fewer is outside ±(2^53−1): a line without 16 digits in a row needs no walk.
# Every digit becomes "0", then a plain substring search finds a run (faster than a regex, once per line)
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_SIXTEEN = b"0" * 16


def _read_lines(handle: IO[bytes], label: str) -> Iterator[Located]:
    """One parse per line, and per event only what it needs (the hot path of validate and emit)."""
    loads, as_zero, sixteen = strictjson.loads, _DIGITS_AS_ZERO, _SIXTEEN
    for number, raw in enumerate(handle, 1):
        if number == 1 and raw.startswith(BOM):
            yield Located(f"{label}:{number}", None, (_BOM_PROBLEM,))
            continue
        line = raw.rstrip(b"\r\n")
        if not line or not line.strip():
            continue
        try:
            doc = loads(line)
        except strictjson.StrictJSONError as exc:
            column = f" (column {exc.column})" if exc.column else ""
            yield Located(f"{label}:{number}", None, (exc.message + column,))
            continue
        yield _located(f"{label}:{number}", doc, sixteen not in line.translate(as_zero))


_BOM_PROBLEM = "starts with a UTF-8 byte order mark; save the file as UTF-8 without BOM"


def _read_document(data: bytes, label: str) -> Iterator[Located]:
    if data.startswith(BOM):
        yield Located(label, None, (_BOM_PROBLEM,))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield Located(f"{label}:{line}", None, ("not valid UTF-8; save the file as UTF-8",))
        return
    if not text.strip():
        return  # the caller reports an input without events
    try:
        doc = strictjson.loads(text)
    except strictjson.StrictJSONError as exc:
        place = f"{label}:{exc.line}" if exc.line else label
        column = f" (column {exc.column})" if exc.column else ""
        yield Located(place, None, (exc.message + column,))
        return
    if isinstance(doc, list):
        if not doc:
            yield Located(label, None, ("array is empty; expected at least one event",))
        for index, item in enumerate(doc):
            yield _located(f"{label}[{index}]", item)
    else:
        yield _located(label, doc)


def _located(place: str, doc: Any, ints_checked: bool = False) -> Located:
    try:
        return Located(place, parse_event(doc, ints_checked=ints_checked))
    except EventInvalid as exc:
        return Located(place, None, tuple(exc.problems))

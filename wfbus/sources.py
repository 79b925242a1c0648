"""Where events come from: files, directories, JSON lines, stdin and inline flags.

Every event is paired with its *place* (``events.jsonl:12``, ``batch.json[3]``, ``<stdin>:4``)
so an error can point at it.  Sources are read twice by `emit` (validate everything, then send),
one event at a time, so memory stays flat however many events there are; stdin is spooled to a
temporary file on the first pass so it can be read again.  An input given twice (by any path to the
same file, or `-` twice) is refused before anything is read: it would be sent twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, NamedTuple

from . import strictjson
from .errors import EmptyInput, InputError, Problem, UsageError
from .event import EventInvalid, WireFormat, WorkflowEvent, parse_event

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",) + JSON_LINES_SUFFIXES
MAX_LISTED_PROBLEMS = 20
PROGRESS_EVERY = 1000
STDIN = "-"
PAYLOAD_FROM_STDIN = "@-"
BOM = b"\xef\xbb\xbf"
STDIN_ON_A_TERMINAL = "reading events from stdin (Ctrl-D to end)"
Notice = Callable[[str], None]  # what the person waiting should know (the CLI prints it on stderr)


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
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    empty: list[str] = field(default_factory=list)  # the inputs that hold no event at all
    # the events' ids in order: names "these events" for `emit --resume`, whatever
    # paths they came by
    digest: Any = field(default_factory=lambda: hashlib.sha256())

    def add(self, place: str, reasons: Sequence[str]) -> None:
        for reason in reasons:
            if len(self.problems) < MAX_LISTED_PROBLEMS:
                self.problems.append(Problem.of(reason, place))
            else:
                self.more_problems += 1

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(
        self, consequence: str = "nothing was sent", *, hint: str | None = None
    ) -> None:
        if self.empty and len(self.empty) == len(self.problems) and not self.more_problems:
            raise EmptyInput(self.empty, consequence=consequence)
        if self.problems:
            raise InputError(
                self.problems, more=self.more_problems, consequence=consequence, hint=hint
            )


@dataclass(frozen=True, slots=True)
class InlineEvent:
    """The event given with --topic/--urn (or --urn-int)/--payload/--attempt.

    `payload_origin` is set when the payload text was read already (`--payload @-`: stdin, read once)."""

    topic: str
    urn: str | int
    payload: str | None = None
    attempt: int = 0
    payload_origin: str | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"topic": self.topic, "urn": self.urn, "attempt": self.attempt}
        if self.payload is not None:
            doc["payload"] = _inline_payload(self.payload, self.payload_origin)
        return doc


def _inline_payload(text: str, read_from: str | None = None) -> Any:
    origin = read_from or "--payload"
    if read_from is None and text.startswith("@"):
        path = Path(text[1:])
        origin = f"--payload {text}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"{origin}: cannot read {path}: {exc.strerror}", hint="check the file path"
            ) from None
        except UnicodeDecodeError:
            raise UsageError(f"{origin}: {path} is not UTF-8 text") from None
    try:
        return strictjson.loads(text)
    except strictjson.StrictJSONError as exc:
        raise InputError(
            [Problem(origin, None, exc.message)],
            hint="--payload takes JSON: quote strings ('\"text\"') or pass @file.json",
        ) from None


class EventSources:
    """The sources of one command, readable as many times as needed (stdin is spooled)."""

    def __init__(
        self,
        specs: Sequence[str],
        inline: InlineEvent | None = None,
        stdin: IO[bytes] | None = None,
        notice: Notice | None = None,
    ) -> None:
        self._specs = list(specs)
        self._stdin = stdin
        self._notice = notice
        self._spools: dict[
            str, Path
        ] = {}  # stdin and pipes (`<(cmd)`, /dev/stdin): read once, kept here
        self._streams: set[str] = set()  # the specs that are such pipes or devices
        self._inline = self._read_inline_payload(inline)
        self._files = self._expand(self._specs)

    def __enter__(self) -> EventSources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for spool in self._spools.values():
            spool.unlink(missing_ok=True)
        self._spools.clear()

    def _read_inline_payload(self, inline: InlineEvent | None) -> InlineEvent | None:
        """`--payload @-`: the payload is stdin's text, read once here (events are read twice)."""
        if (
            inline is None
            or inline.payload != PAYLOAD_FROM_STDIN
            or inline.payload_origin is not None
        ):
            return inline
        if STDIN in self._specs:
            raise UsageError(
                "--payload @- and - both read stdin: it can be read only once",
                hint="put the payload in a file (--payload @file.json) or the events in a file",
            )
        stream = self._stdin_stream()
        buffer = io.BytesIO()
        _copy(
            stream,
            buffer,
            self._say_if_terminal(stream, "reading the payload from stdin (Ctrl-D to end)"),
        )
        try:
            text = buffer.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("--payload @-: stdin is not UTF-8 text") from None
        return replace(inline, payload=text, payload_origin="--payload @- (stdin)")

    def _stdin_stream(self) -> IO[bytes]:
        return self._stdin if self._stdin is not None else sys.stdin.buffer

    def _say_if_terminal(self, stream: IO[bytes], message: str) -> bool:
        """A person at a terminal would otherwise see a command that seems to hang; True on a terminal."""
        terminal = _is_terminal(stream)
        if terminal and self._notice is not None:
            self._notice(message)
        return terminal

    @property
    def inline(self) -> InlineEvent | None:
        """The inline event, its payload text read already if it came from stdin (`--payload @-`)."""
        return self._inline

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
                    raise UsageError(
                        "- (stdin) is given twice: its events would be read twice",
                        hint="name - once; stdin can be read only once",
                    )
                stdin_file = self._stdin_file()
                if stdin_file is not None:
                    if stdin_file in seen:
                        raise _given_twice(
                            seen[stdin_file], "- (stdin is redirected from that file)"
                        )
                    seen[stdin_file] = "- (stdin, redirected from a file)"
                files.append(STDIN)
                continue
            path = Path(spec)
            if path.is_dir():
                found = self._directory_files(path)
                if not found:
                    raise UsageError(
                        f"{spec}: directory has no .json, .jsonl or .ndjson files",
                        hint="point at a directory of event files, or name the files",
                    )
                for file in found:
                    add(file, f"{file} (in directory {spec})")
            elif path.is_file():
                add(spec, spec)
            elif _is_stream(path):  # `<(cmd)` (/dev/fd/63), /dev/stdin on a pipe, a named FIFO
                add(spec, spec)
                self._streams.add(spec)
            else:
                raise UsageError(
                    f"{spec}: no such file or directory", hint="check the path (use - for stdin)"
                )
        return files

    def _directory_files(self, root: Path) -> list[str]:
        """Event files below `root`, sorted; hidden names (`.git/`, `.env.json`) are not the user's events.

        A link whose target is gone is skipped and named: it is a file the user may think was sent.
        """
        found: list[str] = []
        broken: list[str] = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                if name.startswith(".") or Path(name).suffix.lower() not in JSON_SUFFIXES:
                    continue
                path = str(
                    Path(folder) / name
                )  # as rglob spelled it: `a.jsonl` below `.`, not `./a.jsonl`
                if os.path.isfile(path):
                    found.append(path)
                elif os.path.islink(path) and not os.path.exists(path):
                    broken.append(path)
        if broken and self._notice is not None:
            more = f" and {len(broken) - 10} more" if len(broken) > 10 else ""
            shown = ", ".join(sorted(broken)[:10]) + more
            self._notice(f"note: skipped {len(broken)} broken link(s) in {root}: {shown}")
        return sorted(found)

    def _stdin_file(self) -> tuple[int, int] | None:
        """The identity of what stdin is redirected from (`< a.jsonl`, a pipe), if a file or a pipe."""
        if self._stdin is not None:
            return None  # injected by a test or a caller: not a descriptor
        try:
            status = os.fstat(sys.stdin.fileno())
        except (AttributeError, OSError, ValueError):
            return None
        return (
            _identity(status)
            if stat.S_ISREG(status.st_mode) or stat.S_ISFIFO(status.st_mode)
            else None
        )

    def scan(
        self,
        *,
        wire: WireFormat = "topic",
        size_limit: int | None = None,
        progress: Callable[[int], None] | None = None,
        digest: bool = True,
    ) -> ScanReport:
        """Validation pass: count the events and collect every problem, holding none in memory.

        `progress(events read)` every PROGRESS_EVERY events: a long validation shows it is moving.
        `digest`: fold every event id into `report.digest` (an emit's progress record is keyed by
        it); `validate` sends nothing and skips it, a third of its time per event."""
        report = ScanReport()
        for item in self:
            if progress is not None and report.count % PROGRESS_EVERY == 0:
                progress(report.count)
            if item.empty:
                report.empty.append(item.place)
                report.add(item.place, item.problems)
                continue
            report.count += 1
            if digest and item.event is not None:
                report.digest.update(item.event.event_id.encode())
            if item.problems:
                report.add(item.place, item.problems)
            elif size_limit is not None and item.event is not None:
                size = len(item.event.encode(wire))
                if size > size_limit:
                    report.add(
                        item.place,
                        [f"event is {size:,} bytes, over the broker's {size_limit:,}-byte limit"],
                    )
        return report

    def events(self) -> Iterator[tuple[str, WorkflowEvent]]:
        """Sending pass: the events, assuming scan() found no problem."""
        for item in self:
            if item.event is None:  # the sources changed between the passes
                raise InputError([Problem.of(p, item.place) for p in item.problems])
            yield item.place, item.event

    def __iter__(self) -> Iterator[Located]:
        if self._inline is not None:
            yield _located("--topic/--urn", self._inline.document())
        for spec in self._files:
            found = 0
            streamed = spec == STDIN or spec in self._streams
            for item in self._read_stream(spec) if streamed else read_file(Path(spec), spec):
                found += 1
                yield item
            if not found:
                yield Located(
                    "<stdin>" if spec == STDIN else spec, None, (EMPTY_PROBLEM,), empty=True
                )

    def _read_stream(self, spec: str) -> Iterator[Located]:
        """stdin or a pipe given by path: copied to a temporary file on the first pass, read from it after."""
        if spec not in self._spools:
            fd, name = tempfile.mkstemp(prefix="wfbus-stdin-", suffix=".json")
            self._spools[spec] = Path(name)
            with os.fdopen(fd, "wb") as spool:
                if spec == STDIN:
                    stream = self._stdin_stream()
                    _copy(stream, spool, self._say_if_terminal(stream, STDIN_ON_A_TERMINAL))
                else:
                    with open(
                        spec, "rb"
                    ) as stream:  # /dev/stdin or /dev/tty on a terminal: say so too
                        _copy(
                            stream,
                            spool,
                            self._say_if_terminal(
                                stream, f"reading events from {spec} (Ctrl-D to end)"
                            ),
                        )
        label = "<stdin>" if spec == STDIN else spec
        yield from read_file(self._spools[spec], label, detect=True)


def _copy(stream: IO[bytes], target: IO[bytes], terminal: bool) -> None:
    """Copy to the end. On a terminal, one Ctrl-D ends it: a buffered read(n) would take the first
    Ctrl-D as the end of a short read and wait for a second one."""
    if not terminal:
        shutil.copyfileobj(stream, target, 1 << 20)
        return
    read = getattr(stream, "read1", stream.read)
    while chunk := read(1 << 16):
        target.write(chunk)


def _is_terminal(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _is_stream(path: Path) -> bool:
    """A pipe or character device: readable once, like stdin (`validate <(cmd)`, `emit /dev/stdin`)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


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
            yield from _read_document(
                handle.read(), label, lines_hint=path.suffix.lower() == ".json"
            )


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


# no integer of 15 digits or fewer is outside ±(2^53−1): a line without 16 digits in a row needs no
# walk. Every digit becomes "0", then a plain substring search finds a run (faster than a regex,
# once per line)
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


def _read_document(data: bytes, label: str, *, lines_hint: bool = False) -> Iterator[Located]:
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
        hint = _JSON_LINES_HINT if lines_hint and _is_json_lines(text) else ""
        yield Located(place, None, (exc.message + column + hint,))
        return
    if isinstance(doc, list):
        if not doc:
            yield Located(label, None, ("array is empty; expected at least one event",))
        for index, item in enumerate(doc):
            yield _located(f"{label}[{index}]", item)
    else:
        yield _located(label, doc)


_JSON_LINES_HINT = "; the file looks like JSON lines (one event per line): name it .jsonl"


def _is_json_lines(text: str) -> bool:
    """Two or more lines, the first two each a whole JSON value: JSON lines in a file named .json."""
    lines = [line for line in text.splitlines() if line.strip()][:2]
    if len(lines) < 2:
        return False
    try:
        for line in lines:
            strictjson.loads(line)
    except strictjson.StrictJSONError:
        return False
    return True


def _located(place: str, doc: Any, ints_checked: bool = False) -> Located:
    try:
        return Located(place, parse_event(doc, ints_checked=ints_checked))
    except EventInvalid as exc:
        return Located(place, None, tuple(exc.problems))

"""`spool`: a broker that is a directory, one file per message — a third-party plugin, not wfbus code.

Layout under `path` (relative to the config file's folder):

    .lock                  flock: one publisher appends at a time, so file names sort in
                           publish order
    .seq                   the next sequence number (reserved under .lock before any
                           file is written)
    .tmp/                  files being written: never seen by a reader
    <queue>/               the main queue: `<seq:016d>-<uuid>.msg`, read in name order
    <queue>/.held/<id>/    messages one reader holds (claimed by rename: exactly one
                           reader wins each), with an `owner` file (host, pid) whose
                           mtime is the reader's lease
    <queue>.dlq/           the dead-letter queue, same layout

A message file is one line of JSON (headers, route, message id) followed by the body, byte for byte.
Publishing writes the file in .tmp, fsyncs it and renames it into the queue: once a message is
confirmed it is durable and visible, and a kill mid-publish leaves nothing half-written in a queue.

What it guarantees is declared in `SpoolBroker.implements`, and the contract suite holds it to
exactly that: order per queue; a resend is not recognised and publish + removal are two steps (a
replay killed between them repeats at most the batch on the wire); unselected messages go back to
their place; depth is exact; headers (all strings) are kept by a spool-to-spool replay. Messages
held by a killed reader are handed back by the next reader on the same host (the holder's pid is
gone), or from another host once the holder's lease (`hold_seconds` since its last
activity) has run out.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field, field_validator

from wfbus.brokers.base import (
    Broker,
    BrokerSettings,
    Capabilities,
    DeadLetterReader,
    Delivery,
    OutgoingMessage,
    QueueDepth,
    ReceivedMessage,
)
from wfbus.errors import BrokerUnavailable

SUFFIX = ".msg"
HELD = ".held"
OWNER = "owner"


class SpoolSettings(BrokerSettings):
    type: str = "spool"
    path: str = ".wfbus/spool"
    queue: str | None = None  # default: the broker's name
    dead_letter_queue: str | None = None  # default: "<queue>.dlq"
    hold_seconds: float = Field(
        120, gt=0
    )  # lease of a reader on another host that stopped touching it
    fsync: bool = True  # False: faster, but a confirmed message may be lost in a power cut

    @field_validator("queue", "dead_letter_queue")
    @classmethod
    def _directory_name(cls, value: str | None) -> str | None:
        """A queue is one directory under `path`: a name that escapes it or hides it is refused at load."""
        if value is not None and (
            not value or "/" in value or "\0" in value or value.startswith(".")
        ):
            raise ValueError(
                "a queue is a directory name: not empty, no '/', not starting with '.'"
            )
        return value

    def target(self) -> str:
        return f"{self.path} ({self.queue or '<name>'})"


class SpoolBroker(Broker):
    settings_model = SpoolSettings
    publish_batch_size = 100
    implements = Capabilities(
        ordering="per-queue",
        dedup_on_resend=False,
        atomic_transfer=False,
        keeps_unselected=True,
        native_move=False,
        exact_depth=True,
        keeps_properties=True,
    )
    settings: SpoolSettings

    def __init__(self, name: str, settings: SpoolSettings, base_dir: Path) -> None:
        super().__init__(name, settings, base_dir)
        self.root = (base_dir / settings.path).resolve()
        self.queue = settings.queue or name
        self.dead_letter_queue = settings.dead_letter_queue or f"{self.queue}.dlq"

    def queue_dir(self, dead_letter: bool) -> Path:
        return self.root / (self.dead_letter_queue if dead_letter else self.queue)

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        return str(self.queue_dir(dead_letter))

    def publish(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> list[Delivery]:
        errors = append(
            self.root,
            self.queue_dir(dead_letter).name,
            [(m.body, m.headers, m.topic) for m in messages],
            fsync=self.settings.fsync,
        )
        return [Delivery(message, error) for message, error in zip(messages, errors, strict=False)]

    def depth(self) -> list[QueueDepth]:
        return [self._depth(self.queue, "main"), self._depth(self.dead_letter_queue, "dead-letter")]

    def _depth(self, queue: str, role: str) -> QueueDepth:
        directory = self.root / queue
        held = sum(len(message_files(holder)) for holder in _holders(directory))
        return QueueDepth(
            self.name, queue, role, ready=len(message_files(directory)), in_flight=held
        )  # type: ignore[arg-type]

    def peek(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> list[ReceivedMessage]:
        """Reads the files in place: nothing is claimed, so a peek never disturbs a replay."""
        directory = self.queue_dir(dead_letter)
        out: list[ReceivedMessage] = []
        for name in message_files(directory):
            if limit is not None and len(out) >= limit:
                break
            try:
                out.append(_received(name, (directory / name).read_bytes()))
            except FileNotFoundError:  # a reader claimed or removed it meanwhile
                continue
            except OSError as exc:
                raise BrokerUnavailable(
                    f"spool: cannot read {directory / name}: {exc.strerror or exc}"
                ) from None
        return out

    def dead_letter_reader(self) -> SpoolDeadLetterReader:
        return SpoolDeadLetterReader(self)

    def purge(self, *, dead_letter: bool = False) -> int | None:
        """Removes the ready files (what a reader holds is its own until it acks or releases them)."""
        directory = self.queue_dir(dead_letter)
        removed = 0
        for name in message_files(directory):
            try:
                os.unlink(directory / name)
                removed += 1
            except FileNotFoundError:
                continue
        return removed


class SpoolDeadLetterReader(DeadLetterReader):
    """Claims dead-lettered files by renaming them into its own holder directory, in name order, up to
    the files present when it opened. Concurrent readers share the work (each file is claimed once);
    released and unselected files are renamed back to their place (their names keep their order)."""

    def __init__(self, broker: SpoolBroker) -> None:
        self.broker = broker
        self.directory = _ready(broker.queue_dir(True))
        self.source_label = f"{broker.name}:{broker.dead_letter_queue}"
        self.identity = f"spool:{socket.gethostname()}:{self.directory}"
        self.hold_seconds = broker.settings.hold_seconds
        self._holder = _new_holder(broker.root, self.directory)
        reclaim(self.directory, self.hold_seconds, keep=self._holder.name)
        self._pending = deque(
            message_files(self.directory)
        )  # the bound: what was there at the start
        self._bound = set(self._pending)
        self._held: set[str] = set()

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        self._touch()
        out: list[ReceivedMessage] = []
        while self._pending and len(out) < max_messages:
            name = self._pending.popleft()
            try:
                os.rename(self.directory / name, self._holder / name)
            except FileNotFoundError:
                continue  # another reader claimed it first, or it was removed
            except OSError as exc:
                raise BrokerUnavailable(
                    f"spool: cannot claim {self.directory / name}: {exc.strerror or exc}"
                ) from None
            self._held.add(name)
            try:
                out.append(_received(name, (self._holder / name).read_bytes()))
            except OSError as exc:
                self.release([ReceivedMessage(b"", {}, handle=name)])
                raise BrokerUnavailable(
                    f"spool: cannot read {self.directory / name}: {exc.strerror or exc}"
                ) from None
        return out

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        for message in messages:
            try:
                os.unlink(self._holder / message.handle)
            except FileNotFoundError:
                # reclaimed by a reader that judged this one dead: it may be moved
                # again (a duplicate)
                pass
            self._held.discard(message.handle)
        if self.broker.settings.fsync:
            _fsync_dir(self._holder)
        self._touch()

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        for message in messages:
            if message.handle in self._held:
                _move_back(self._holder, self.directory, message.handle)
                self._held.discard(message.handle)
        self._touch()

    def held_elsewhere(self) -> tuple[int, float | None] | None:
        """Files in this run's bound that a killed reader held (handed back now, after this run passed
        them), plus files held by readers on other hosts whose lease is still running. Files a live
        reader on this host holds belong to a concurrent replay, which accounts for them itself."""
        back = [
            name
            for name in reclaim(self.directory, self.hold_seconds, keep=self._holder.name)
            if name in self._bound
        ]
        count, wait = len(back), 0.0 if back else None
        host = socket.gethostname()
        for holder in _holders(self.directory):
            owner = _owner(holder)
            if holder.name == self._holder.name or owner is None or owner[0] == host:
                continue
            files = len(message_files(holder))
            if files:
                count += files
                remaining = max(0.0, self.hold_seconds - (time.time() - owner[2]))
                wait = remaining if wait is None else max(wait, remaining)
        return count, wait

    def close(self) -> None:
        for name in sorted(self._held):
            _move_back(self._holder, self.directory, name)
        self._held.clear()
        _remove_holder(self._holder)

    def _touch(self) -> None:
        try:
            os.utime(self._holder / OWNER)
        except OSError:
            pass  # judged dead and reclaimed: acks of what it held find nothing (said in `ack`)


# -- the spool format: what any program (the tests' own "consumer", another application) uses ------


def append(
    root: Path,
    queue: str,
    entries: Sequence[tuple[bytes, dict[str, str], str]],
    *,
    fsync: bool = True,
) -> list[str | None]:
    """Append (body, headers, route) messages to `queue`, in order; one answer per message: None when it
    is durably in the queue, else why not."""
    directory = _ready(root / queue)
    tmp = _ready(root / ".tmp")
    errors: list[str | None] = []
    with _publish_lock(root):
        first = _reserve(root, len(entries), fsync)
        for offset, (body, headers, route) in enumerate(entries):
            name = f"{first + offset:016d}-{uuid.uuid4().hex}{SUFFIX}"
            try:
                _write(tmp / name, encode(body, headers, route), fsync)
                os.rename(tmp / name, directory / name)
            except OSError as exc:
                _unlink_quietly(tmp / name)
                errors.append(f"spool: cannot write to {directory}: {exc.strerror or exc}")
                continue
            errors.append(None)
        if fsync:
            _fsync_dir(directory)
    return errors


def consume(root: Path, queue: str) -> list[bytes]:
    """Every body in `queue`, in order, removed: what a consumer of the spool does."""
    directory = root / queue
    bodies = []
    for name in message_files(directory):
        try:
            bodies.append(decode((directory / name).read_bytes())[1])
            os.unlink(directory / name)
        except FileNotFoundError:
            continue
    return bodies


def message_files(directory: Path) -> list[str]:
    """Names of the message files directly in `directory`, in queue order ([] if it does not exist)."""
    try:
        with os.scandir(directory) as entries:
            return sorted(
                e.name for e in entries if e.name.endswith(SUFFIX) and not e.name.startswith(".")
            )
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BrokerUnavailable(f"spool: cannot list {directory}: {exc.strerror or exc}") from None


def encode(body: bytes, headers: dict[str, str], route: str) -> bytes:
    meta = {"headers": dict(headers), "route": route, "id": uuid.uuid4().hex}
    return json.dumps(meta, ensure_ascii=True, separators=(",", ":")).encode() + b"\n" + body


def decode(data: bytes) -> tuple[dict, bytes]:
    """(meta, body); a file another program wrote without the meta line is all body."""
    line, sep, body = data.partition(b"\n")
    try:
        meta = json.loads(line) if sep else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("headers", {}), dict):
        return {}, data
    return meta, body


def reclaim(directory: Path, hold_seconds: float, keep: str) -> list[str]:
    """Hand back to `directory` the files of holders that are gone; the names handed back."""
    back: list[str] = []
    for holder in _holders(directory):
        if holder.name == keep or _alive(_owner(holder), hold_seconds):
            continue
        for name in message_files(holder):
            if _move_back(holder, directory, name):
                back.append(name)
        _remove_holder(holder)
    return back


def _received(name: str, data: bytes) -> ReceivedMessage:
    meta, body = decode(data)
    headers = {str(k): str(v) for k, v in meta.get("headers", {}).items()}
    return ReceivedMessage(
        body=body,
        headers=headers,
        handle=name,
        message_id=str(meta.get("id", "")),
        route=str(meta.get("route", "")),
        arrival_id=f"spool/{name[: -len(SUFFIX)]}",
    )  # seq + uuid: never reused


def _holders(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory / HELD) as entries:
            return [Path(e.path) for e in entries if e.is_dir()]
    except FileNotFoundError:
        return []


def _new_holder(root: Path, directory: Path) -> Path:
    """A holder directory that appears with its owner file already in it (built in .tmp, renamed in)."""
    name = uuid.uuid4().hex
    staging = _ready(root / ".tmp" / f"holder-{name}")
    (staging / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    _ready(directory / HELD)
    os.rename(staging, directory / HELD / name)
    return directory / HELD / name


def _owner(holder: Path) -> tuple[str, int, float] | None:
    """(host, pid, last activity) of a holder; None when it has no readable owner (being removed)."""
    try:
        doc = json.loads((holder / OWNER).read_text())
        return str(doc["host"]), int(doc["pid"]), (holder / OWNER).stat().st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(owner: tuple[str, int, float] | None, hold_seconds: float) -> bool:
    if owner is None:
        return False
    host, pid, touched = owner
    if host == socket.gethostname():
        return _pid_alive(pid)
    return time.time() - touched < hold_seconds


def _pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _move_back(holder: Path, directory: Path, name: str) -> bool:
    try:
        os.rename(holder / name, directory / name)
        return True
    except FileNotFoundError:
        return False


def _remove_holder(holder: Path) -> None:
    _unlink_quietly(holder / OWNER)
    try:
        holder.rmdir()
    except OSError:
        pass  # not empty (a concurrent reclaim is moving its files) or already gone


@contextmanager
def _publish_lock(root: Path) -> Iterator[None]:
    try:
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BrokerUnavailable(f"spool: cannot lock {root}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _reserve(root: Path, count: int, fsync: bool) -> int:
    """The first of `count` sequence numbers, written before any file so a crash never reuses one."""
    try:
        first = int((root / ".seq").read_text() or 0)
    except FileNotFoundError:
        first = 0
    except (OSError, ValueError) as exc:
        raise BrokerUnavailable(f"spool: cannot read {root / '.seq'}: {exc}") from None
    try:
        _write(root / ".seq.tmp", str(first + count).encode(), fsync)
        os.rename(root / ".seq.tmp", root / ".seq")
    except OSError as exc:
        raise BrokerUnavailable(
            f"spool: cannot write {root / '.seq'}: {exc.strerror or exc}"
        ) from None
    return first


def _write(path: Path, data: bytes, fsync: bool) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # the renames are done and visible to every reader; only their survival of a power
        # cut is less sure
        pass
    finally:
        os.close(fd)


def _ready(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerUnavailable(
            f"spool: cannot create {directory}: {exc.strerror or exc}",
            hint="check that the directory is writable, or set `path:` for this broker",
        ) from None
    return directory


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

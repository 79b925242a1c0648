"""The embedded local broker: a main queue and a dead-letter queue in one SQLite file.

It lets a new user try every command with no server, and lets tests and CI pipelines seed and
inspect events offline.

Where the data lives, unless the config sets `path:` (relative to the config file): the nearest
`.wfbus/` folder from the working directory upward (like git finds `.git/`: a project keeps its
events wherever in it wfbus runs), else `$XDG_DATA_HOME/wfbus/` (~/.local/share/wfbus/), so
state follows the user instead of appearing as a new `.wfbus/` in every folder.  The file is
`local.db` in that folder.  Only a write creates it: reading a broker that was never written
(depth, peek, a replay's plan) finds it empty and creates nothing.  Every write is one transaction
(WAL, synchronous=FULL), and a replay into the same file moves each message in a single transaction:
killed at any moment, a message is either still in the dead-letter queue or in the main queue, never
both, never neither.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import PrivateAttr, ValidationInfo, model_validator

from ..errors import BrokerUnavailable
from .base import (
    Broker,
    BrokerSettings,
    Capabilities,
    DeadLetterReader,
    Delivery,
    OutgoingMessage,
    QueueDepth,
    ReceivedMessage,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    headers     TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, id);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


PEEK_PAGE = 1000


DATA_FOLDER = ".wfbus"
DB_FILE = "local.db"


def data_folder(cwd: Path | None = None) -> Path:
    """The nearest `.wfbus/` from `cwd` upward, else $XDG_DATA_HOME/wfbus (an absolute path)."""
    start = Path(os.path.abspath(cwd or Path.cwd()))
    for folder in (start, *start.parents):
        candidate = folder / DATA_FOLDER
        if candidate.is_dir():
            return candidate
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = (
        Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    )  # XDG: relative is ignored
    return base / "wfbus"


class LocalSettings(BrokerSettings):
    type: str = "local"
    path: str | None = (
        None  # default: local.db in data_folder(); relative to the config file's folder
    )
    queue: str | None = None  # default: the broker's name
    dead_letter_queue: str | None = None  # default: "<queue>.dlq"

    _base_dir: Path | None = PrivateAttr(default=None)  # the config's folder (validation context)

    @model_validator(mode="after")
    def _remember_base_dir(self, info: ValidationInfo) -> LocalSettings:
        base_dir = (info.context or {}).get("base_dir")
        self._base_dir = Path(base_dir) if base_dir is not None else None
        return self

    def data_path(self, base_dir: Path) -> Path:
        return (base_dir / self.path).resolve() if self.path else data_folder() / DB_FILE

    def target(self) -> str:
        """Where the data is, in full: a relative `path:` resolved against the config file's folder."""
        if self.path and self._base_dir is not None:
            where = str(self.data_path(self._base_dir))
        else:
            where = self.path or str(data_folder() / DB_FILE)
        return (
            f"{where}#{self.queue}" if self.queue else where
        )  # the queue defaults to the broker's name


class LocalBroker(Broker):
    settings_model = LocalSettings
    publish_batch_size = 1000
    implements = Capabilities(ordering="per-queue", atomic_transfer=True)
    settings: LocalSettings

    def __init__(self, name: str, settings: LocalSettings, base_dir: Path) -> None:
        super().__init__(name, settings, base_dir)
        self.path = settings.data_path(base_dir)
        self.queue = settings.queue or name
        self.dead_letter_queue = settings.dead_letter_queue or f"{self.queue}.dlq"
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """The database, created on first use: for writes (a read uses `_read_db`)."""
        if self._db is None:
            self._db = connect(self.path)
        return self._db

    def _read_db(self) -> sqlite3.Connection | None:
        """The database if it exists; None when nothing was ever written (read as empty, create nothing)."""
        if self._db is None and not os.path.lexists(self.path):
            return None
        return self.db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _queue(self, dead_letter: bool) -> str:
        return self.dead_letter_queue if dead_letter else self.queue

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        return f"{self.path}#{self._queue(dead_letter)}"

    def database_id(self) -> str:
        """The random id written when this database file was created."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()
        return str(row[0])

    def destination_identity(self, *, dead_letter: bool = False) -> str:
        """The file's own id with its path: emit --resume into a database deleted and created
        again sends everything again instead of trusting what the old file had confirmed."""
        return f"local:{Path(self.path).resolve()}@{self.database_id()}#{self._queue(dead_letter)}"

    def publish(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> list[Delivery]:
        queue = self._queue(dead_letter)
        with transaction(self.db):
            insert(self.db, queue, messages)
        return [Delivery(m) for m in messages]

    def depth(self) -> list[QueueDepth]:
        db = self._read_db()
        rows = (
            {}
            if db is None
            else dict(
                db.execute(
                    "SELECT queue, COUNT(*) FROM messages WHERE queue IN (?, ?) GROUP BY queue",
                    (self.queue, self.dead_letter_queue),
                ).fetchall()
            )
        )
        return [
            QueueDepth(self.name, self.queue, "main", ready=rows.get(self.queue, 0)),
            QueueDepth(
                self.name,
                self.dead_letter_queue,
                "dead-letter",
                ready=rows.get(self.dead_letter_queue, 0),
            ),
        ]

    def purge(self, *, dead_letter: bool = False) -> int | None:
        if self._read_db() is None:
            return 0
        with transaction(self.db):
            return self.db.execute(
                "DELETE FROM messages WHERE queue = ?", (self._queue(dead_letter),)
            ).rowcount

    def peek(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> list[ReceivedMessage]:
        return list(self.peek_stream(dead_letter=dead_letter, limit=limit, force=force))

    def peek_stream(
        self, *, dead_letter: bool, limit: int | None, force: bool = False, page: int = PEEK_PAGE
    ) -> Iterator[ReceivedMessage]:
        """The queue in id order, a page of rows at a time (memory flat however long the queue).

        Bounded by the last id present when the peek starts, like a replay's reader: messages that
        arrive meanwhile are not shown, and no read transaction is held between pages.
        """
        queue = self._queue(dead_letter)
        if self._read_db() is None:
            return
        row = self.db.execute("SELECT MAX(id) FROM messages WHERE queue = ?", (queue,)).fetchone()
        last, cursor, left = row[0] or 0, 0, limit
        while left is None or left > 0:
            rows = self.db.execute(
                "SELECT id, body, headers, routing_key, message_id FROM messages "
                "WHERE queue = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (queue, cursor, last, page if left is None else min(page, left)),
            ).fetchall()
            if not rows:
                return
            cursor = rows[-1][0]
            if left is not None:
                left -= len(rows)
            for found in rows:
                yield _received(found)

    def dead_letter_reader(self) -> LocalDeadLetterReader:
        return LocalDeadLetterReader(self)


class LocalDeadLetterReader(DeadLetterReader):
    """Reads the DLQ in id order up to the last id present when the replay started.

    Released messages simply stay where they are (the cursor has passed them), so unselected
    messages keep their place and their order.
    """

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker
        self.source_label = f"{broker.name}:{broker.dead_letter_queue}"
        db = broker._read_db()
        # the file's own id: row ids (the journal's arrival ids) start again in a recreated file
        database = "-" if db is None else broker.database_id()
        self.identity = f"local:{Path(broker.path).resolve()}@{database}#{broker.dead_letter_queue}"
        row = (
            None
            if db is None
            else db.execute(
                "SELECT MAX(id) FROM messages WHERE queue = ?", (broker.dead_letter_queue,)
            ).fetchone()
        )
        self._last_id = (row[0] or 0) if row is not None else 0
        self._cursor = 0

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        if self._last_id == 0:
            return []  # nothing was dead-lettered when the replay began (or ever: nothing to open)
        rows = self.broker.db.execute(
            "SELECT id, body, headers, routing_key, message_id FROM messages "
            "WHERE queue = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
            (self.broker.dead_letter_queue, self._cursor, self._last_id, max_messages),
        ).fetchall()
        if rows:
            self._cursor = rows[-1][0]
        return [_received(row) for row in rows]

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        with transaction(self.broker.db):
            self.broker.db.executemany(
                "DELETE FROM messages WHERE id = ?", [(m.handle,) for m in messages]
            )

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Nothing to do: a local message stays in place until acked."""

    def transfer(
        self,
        messages: Sequence[ReceivedMessage],
        outgoing: Sequence[OutgoingMessage],
        destination: Broker,
    ) -> list[Delivery] | None:
        """Publish and ack in one transaction when the destination lives in the same file."""
        if not isinstance(destination, LocalBroker) or destination.path != self.broker.path:
            return None
        db = self.broker.db
        deliveries = []
        with transaction(db):
            moved = []
            for message, out in zip(messages, outgoing, strict=False):
                # another replay on the same file may have moved it first: then it is
                # not ours to move
                taken = (
                    db.execute("DELETE FROM messages WHERE id = ?", (message.handle,)).rowcount == 1
                )
                if taken:
                    moved.append(out)
                deliveries.append(Delivery(out, taken_elsewhere=not taken))
            insert(db, destination.queue, moved)
        return deliveries


def connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        # who this file is: one deleted and created again under the same path is another database
        # (its row ids start again, and the replay journal and emit's progress record key on it)
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('database_id', ?)", (uuid.uuid4().hex,)
        )
    except sqlite3.DatabaseError as exc:
        if not isinstance(
            exc, sqlite3.OperationalError
        ):  # the file is there but is no SQLite database
            raise BrokerUnavailable(
                f"local broker: {path} is not a wfbus local database: {exc}",
                hint="it is damaged or another file: move it aside (wfbus starts a new one), or set `path:` "
                "for this broker in the config",
            ) from None
        raise _cannot_open(path, exc) from None
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    return db


def _cannot_open(path: Path, exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"local broker: cannot open {path}: {exc}",
        hint="check that the folder is writable, or set `path:` for this broker in the config",
    )


class transaction:  # noqa: N801 - used like a function: `with transaction(db):`
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def insert(db: sqlite3.Connection, queue: str, messages: Sequence[OutgoingMessage]) -> None:
    """One executemany per batch, in the caller's transaction; per row only what the row needs."""
    now = time.time()
    ids = _message_ids(len(messages))
    dumps = _dumps_headers
    db.executemany(
        "INSERT INTO messages (queue, body, headers, routing_key, message_id, enqueued_at) VALUES (?, ?, ?, ?, ?, ?)",
        [(queue, m.body, dumps(m.headers), m.topic, next(ids), now) for m in messages],
    )


def _message_ids(count: int) -> Iterator[str]:
    """`count` random version-4 UUIDs as 32 hex digits (uuid4().hex), from one read of the OS's randomness."""
    pool = bytearray(os.urandom(16 * count))
    for start in range(0, 16 * count, 16):
        pool[start + 6] = (pool[start + 6] & 0x0F) | 0x40  # version 4
        pool[start + 8] = (pool[start + 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = pool.hex()
    return (text[start : start + 32] for start in range(0, 32 * count, 32))


try:  # the headers column is JSON text; orjson writes it ~10x faster than json.dumps
    import orjson as _orjson

    def _dumps_headers(headers: dict[str, str]) -> str:
        return _orjson.dumps(headers).decode()
except ImportError:  # pragma: no cover - orjson is a dependency

    def _dumps_headers(headers: dict[str, str]) -> str:
        return json.dumps(headers)


def _received(row: tuple) -> ReceivedMessage:
    row_id, body, headers, routing_key, message_id = row
    return ReceivedMessage(
        body=bytes(body),
        headers=json.loads(headers),
        handle=row_id,
        message_id=message_id,
        route=routing_key,
        arrival_id=f"row/{row_id}",  # AUTOINCREMENT: a row id is never reused
    )

"""How far an emit got, kept on disk so that `wfbus emit --resume` can finish a killed one.

Ctrl-C, SIGTERM and SIGHUP leave an exact `--failed-out`; SIGKILL, an OOM kill or a power cut leave
nothing but this record. Every emit writes it (one small SQLite update per batch, after the broker
answered): the index below which every event was answered, and the indices of the events that were
not confirmed. `--resume` sends exactly those and the ones after the mark, so a killed emit is
finished without re-sending the file; only the batch that was on the wire when the process died can
arrive twice.

An emit is named by what it sends and where: the broker, its destination, and a digest of the events'
ids in order (so the same events piped again on stdin are recognised, and a changed file is not).
Records live beside the replay journal and are dropped after RETENTION_SECONDS.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .journal import default_path

RETENTION_SECONDS = 14 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS emits (
    key        TEXT PRIMARY KEY,
    state      TEXT NOT NULL,      -- running | open | done
    answered   INTEGER NOT NULL,   -- every event with a lower index has had the broker's answer
    total      INTEGER NOT NULL,
    updated    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS unconfirmed (
    key   TEXT NOT NULL,
    idx   INTEGER NOT NULL,
    PRIMARY KEY (key, idx)
);
"""


def emit_key(broker: str, destination: str, dead_letter: bool, digest: str, count: int) -> str:
    text = "\0".join((broker, destination, "dead-letter" if dead_letter else "main", digest, str(count)))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Earlier:
    """What an earlier emit of the same events left: the resume point."""

    state: str
    answered: int
    unconfirmed: set[int] = field(default_factory=set)

    def needs(self, index: int) -> bool:
        return index >= self.answered or index in self.unconfirmed

    @property
    def done(self) -> bool:
        return self.state == "done"


class EmitProgress:
    def __init__(self, key: str, total: int, path: Path | None = None) -> None:
        self.key = key
        self.total = total
        self.path = path or default_path().with_name("emits.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # survives a killed process; a power cut costs duplicates
        self.db.executescript(SCHEMA)
        expired = time.time() - RETENTION_SECONDS
        self.db.execute("DELETE FROM unconfirmed WHERE key IN (SELECT key FROM emits WHERE updated < ?)", (expired,))
        self.db.execute("DELETE FROM emits WHERE updated < ?", (expired,))

    def earlier(self) -> Earlier | None:
        row = self.db.execute("SELECT state, answered FROM emits WHERE key = ?", (self.key,)).fetchone()
        if row is None:
            return None
        indices = {r[0] for r in self.db.execute("SELECT idx FROM unconfirmed WHERE key = ?", (self.key,))}
        return Earlier(row[0], row[1], indices)

    def start(self, earlier: Earlier | None) -> None:
        """A fresh emit forgets the earlier record; a resumed one continues it."""
        self.db.execute("BEGIN IMMEDIATE")
        if earlier is None:
            self.db.execute("DELETE FROM unconfirmed WHERE key = ?", (self.key,))
            answered = 0
        else:
            answered = earlier.answered
        self.db.execute("INSERT OR REPLACE INTO emits VALUES (?, 'running', ?, ?, ?)",
                        (self.key, answered, self.total, time.time()))
        self.db.execute("COMMIT")

    def answered(self, confirmed: Iterable[int], unconfirmed: Iterable[int], upto: int) -> None:
        """The broker answered a batch: record it before the next one goes out."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("DELETE FROM unconfirmed WHERE key = ? AND idx = ?", [(self.key, i) for i in confirmed])
        self.db.executemany("INSERT OR IGNORE INTO unconfirmed VALUES (?, ?)", [(self.key, i) for i in unconfirmed])
        self.db.execute("UPDATE emits SET answered = MAX(answered, ?), updated = ? WHERE key = ?",
                        (upto, time.time(), self.key))
        self.db.execute("COMMIT")

    def finish(self, complete: bool) -> None:
        """`done` only when every event was confirmed; otherwise the record stays open for --resume."""
        self.db.execute("UPDATE emits SET state = ?, updated = ? WHERE key = ?",
                        ("done" if complete else "open", time.time(), self.key))
        if complete:
            self.db.execute("DELETE FROM unconfirmed WHERE key = ?", (self.key,))

    def close(self) -> None:
        self.db.close()

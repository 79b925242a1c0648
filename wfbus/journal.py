"""The replay journal: which dead-lettered messages were already published (confirmed).

A replay killed between "the destination confirmed" and "the source removed it" would publish the
message again when rerun.  The journal closes that gap: the confirmed message's source id is
written (and synced) before the source is asked to remove it, so a rerun that receives it again
only finishes the removal.  Entries keyed by an arrival id (a message that can never arrive again
under that id: SQS MessageId, RabbitMQ publish id + death count) are kept after the removal until
RETENTION_SECONDS, so a message a crashed broker hands out again is recognised too; others are
forgotten once removed.  It lives in the user's state directory
(``$XDG_STATE_HOME/wfbus/journal.db``, or ``$WFBUS_STATE_DIR``), in SQLite.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

RETENTION_SECONDS = 14 * 24 * 3600  # SQS keeps a message at most 14 days

SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    source     TEXT NOT NULL,
    message_id TEXT NOT NULL,
    at         REAL NOT NULL,
    PRIMARY KEY (source, message_id)
);
"""


def default_path() -> Path:
    explicit = os.environ.get("WFBUS_STATE_DIR")
    if explicit:
        return Path(explicit) / "journal.db"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wfbus" / "journal.db"


class Journal:
    """Opened on first use, and created only by the first entry written: a replay that moves nothing
    (an empty dead-letter queue, a plan) leaves no file behind."""

    def __init__(self, source: str = "", path: Path | None = None) -> None:
        self.source = source
        self.path = path or default_path()
        self._db: sqlite3.Connection | None = None

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL (no fsync per commit) survives a killed process, which is what the journal is
            # for; a power cut could forget recent entries, which only costs duplicates,
            # never a message
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute("DELETE FROM published WHERE at < ?", (time.time() - RETENTION_SECONDS,))
            self._db = db
        return self._db

    @property
    def db(self) -> sqlite3.Connection:
        db = self._open(create=True)
        assert db is not None
        return db

    def bind(self, source: str) -> None:
        """Key entries by the source's real identity, known once its reader is open."""
        self.source = source

    def already_published(self, message_ids: Iterable[str | None]) -> set[str]:
        ids = [m for m in message_ids if m]
        db = self._open(create=False)
        if not ids or db is None:
            return set()
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = db.execute(
                f"SELECT message_id FROM published WHERE source = ? AND message_id IN ({','.join('?' * len(chunk))})",
                (self.source, *chunk),
            ).fetchall()
            found.update(row[0] for row in rows)
        return found

    def mark_published(self, message_ids: Iterable[str | None]) -> None:
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "INSERT OR REPLACE INTO published VALUES (?, ?, ?)",
            [(self.source, m, now) for m in message_ids if m],
        )
        self.db.execute("COMMIT")

    def forget(self, message_ids: Iterable[str | None]) -> None:
        if self._open(create=False) is None:
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "DELETE FROM published WHERE source = ? AND message_id = ?",
            [(self.source, m) for m in message_ids if m],
        )
        self.db.execute("COMMIT")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

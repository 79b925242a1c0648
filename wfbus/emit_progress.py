"""How far an emit got, kept on disk so that `wfbus emit --resume` can finish a killed one.

Ctrl-C, SIGTERM and SIGHUP leave an exact `--failed-out`; SIGKILL, an OOM kill or a power cut leave
nothing but this record. Every emit writes it (one small SQLite update per batch, after the broker
answered): the index below which every event was answered, and the indices of the events that were
not confirmed. Answers are recorded oldest batch first, so the mark never passes a batch whose
answer was not read. `--resume` sends exactly those and the ones after the mark, so a killed emit is
finished without re-sending the file; only the batches in flight when the process died (at most the
broker's `pipeline_window` batches) can arrive twice.

An emit is named by what it sends and where: the destination's real identity (an SQS queue's ARN, a
Kafka cluster id and topic id, a RabbitMQ host, vhost and exchange: a recreated topic is another
destination), and a digest of the events' ids in order (so the same events piped again on stdin are
recognised, and a changed file is not). A record names the process that owns it while it runs, so a
`--resume` cannot start beside a run that is still going; and when a stopped run wrote every
undelivered event to `--failed-out`, the record says so, so that file and `--resume` are not both
used. Records live beside the replay journal and are dropped after RETENTION_SECONDS.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .journal import default_path

RETENTION_SECONDS = 14 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS emit_runs (
    key        TEXT PRIMARY KEY,
    state      TEXT NOT NULL,      -- running | open | handed-off | done
    answered   INTEGER NOT NULL,   -- every event with a lower index has had the broker's answer
    total      INTEGER NOT NULL,
    updated    REAL NOT NULL,
    host       TEXT NOT NULL,      -- the process that runs it (state running)
    pid        INTEGER NOT NULL,
    failed_out TEXT                -- handed-off: the file that holds every undelivered event
);
CREATE TABLE IF NOT EXISTS unconfirmed (
    key   TEXT NOT NULL,
    idx   INTEGER NOT NULL,
    PRIMARY KEY (key, idx)
);
"""


def emit_key(destination_identity: str, dead_letter: bool, digest: str, count: int) -> str:
    text = "\0".join(
        (destination_identity, "dead-letter" if dead_letter else "main", digest, str(count))
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Earlier:
    """What an earlier emit of the same events left: the resume point."""

    state: str
    answered: int
    host: str = ""
    pid: int = 0
    failed_out: str | None = None
    unconfirmed: set[int] = field(default_factory=set)

    def needs(self, index: int) -> bool:
        return index >= self.answered or index in self.unconfirmed

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def killed(self) -> bool:
        """It never reached its end: the batches in flight when it died may have arrived unrecorded."""
        return self.state == "running"

    @property
    def still_running(self) -> bool:
        """Its process is alive on this host (another host's cannot be checked: taken as gone)."""
        if self.state != "running" or self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class EmitProgress:
    def __init__(self, key: str, total: int, path: Path | None = None) -> None:
        self.key = key
        self.total = total
        self.path = path or default_path().with_name("emits.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "PRAGMA synchronous=NORMAL"
        )  # survives a killed process; a power cut costs duplicates
        self.db.executescript(SCHEMA)
        expired = time.time() - RETENTION_SECONDS
        self.db.execute(
            "DELETE FROM unconfirmed WHERE key IN (SELECT key FROM emit_runs WHERE updated < ?)",
            (expired,),
        )
        self.db.execute("DELETE FROM emit_runs WHERE updated < ?", (expired,))

    def earlier(self) -> Earlier | None:
        row = self.db.execute(
            "SELECT state, answered, host, pid, failed_out FROM emit_runs WHERE key = ?",
            (self.key,),
        ).fetchone()
        if row is None:
            return None
        indices = {
            r[0] for r in self.db.execute("SELECT idx FROM unconfirmed WHERE key = ?", (self.key,))
        }
        return Earlier(row[0], row[1], row[2], row[3], row[4], indices)

    def start(self, earlier: Earlier | None) -> None:
        """A fresh emit forgets the earlier record; a resumed one continues it."""
        self.db.execute("BEGIN IMMEDIATE")
        if earlier is None:
            self.db.execute("DELETE FROM unconfirmed WHERE key = ?", (self.key,))
            answered = 0
        else:
            answered = earlier.answered
        self.db.execute(
            "INSERT OR REPLACE INTO emit_runs VALUES (?, 'running', ?, ?, ?, ?, ?, NULL)",
            (self.key, answered, self.total, time.time(), socket.gethostname(), os.getpid()),
        )
        self.db.execute("COMMIT")

    def answered(self, confirmed: Iterable[int], unconfirmed: Iterable[int], upto: int) -> None:
        """The broker answered a batch: record it before the next one goes out."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "DELETE FROM unconfirmed WHERE key = ? AND idx = ?", [(self.key, i) for i in confirmed]
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO unconfirmed VALUES (?, ?)", [(self.key, i) for i in unconfirmed]
        )
        self.db.execute(
            "UPDATE emit_runs SET answered = MAX(answered, ?), updated = ? WHERE key = ?",
            (upto, time.time(), self.key),
        )
        self.db.execute("COMMIT")

    def finish(self, complete: bool, failed_out: str | None = None) -> None:
        """`done` when every event was confirmed; `handed-off` when `failed_out` holds every one that was
        not (that file is the way on); otherwise the record stays open for --resume."""
        state = "done" if complete else "handed-off" if failed_out else "open"
        self.db.execute(
            "UPDATE emit_runs SET state = ?, updated = ?, failed_out = ? WHERE key = ?",
            (state, time.time(), failed_out, self.key),
        )
        if complete:
            self.db.execute("DELETE FROM unconfirmed WHERE key = ?", (self.key,))

    def close(self) -> None:
        self.db.close()

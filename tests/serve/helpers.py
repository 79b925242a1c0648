"""Generated events and what `wfbus emit` sends for them (the byte-for-byte reference)."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

TOPICS = ("order.submit", "order.cancel", "billing.charge", "order.ship.ünïcode")


def generated_events(seed: int, count: int) -> list[dict]:
    """Varied events: string and integer urns, absent/null/nested/unicode payloads,
    `event` for `topic`."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        doc: dict = {}
        key = "event" if rng.random() < 0.2 else "topic"
        doc[key] = rng.choice(TOPICS)
        doc["urn"] = rng.choice(
            [
                f"o-{rng.randrange(12)}",
                rng.randrange(-5, 2**53 - 1) if rng.random() < 0.1 else rng.randrange(12),
            ]
        )
        kind = rng.randrange(5)
        if kind == 1:
            doc["payload"] = None
        elif kind == 2:
            doc["payload"] = {
                "total": rng.randrange(10**6) / 100,
                "items": [{"sku": f"s{j}"} for j in range(3)],
                "note": 'ünïcødé ✓ "quoted"',
                "i": i,
            }
        elif kind == 3:
            doc["payload"] = [i, "x" * rng.randrange(200), True, None, 1.5e-7]
        elif kind == 4:
            doc["payload"] = "plain text"
        if rng.random() < 0.5:
            doc["attempt"] = rng.randrange(4)
        events.append(doc)
    return events


def emitted_bodies(directory: Path, events: list[dict]) -> list[bytes]:
    """The bodies `wfbus emit` sends for these events (to the local broker `spare`), in order."""
    source = directory / "reference.jsonl"
    source.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
    )
    db = directory / "spare.db"
    before = _count(db)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-c",
            str(directory / "wfbus.yaml"),
            "emit",
            "-b",
            "spare",
            str(source),
        ],
        cwd=directory,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute("SELECT body FROM messages ORDER BY id").fetchall()
    finally:
        connection.close()
    return [bytes(b) for (b,) in rows[before:]]


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    connection = sqlite3.connect(db)
    try:
        return connection.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()


def per_key(bodies: list[bytes]) -> dict[str, list[bytes]]:
    groups: dict[str, list[bytes]] = {}
    for body in bodies:
        groups.setdefault(str(json.loads(body)["urn"]), []).append(body)
    return groups


def event_id(doc: dict) -> str:
    from wfbus.event import parse_event

    return parse_event(doc).event_id


def first_of_each_event_id(events: list[dict], bodies: list[bytes]) -> list[bytes]:
    """What an SQS FIFO queue keeps of these bodies: a repeat of an event id (`event` and `topic`
    spell the same event) is dropped by its deduplication id within five minutes."""
    seen: set[str] = set()
    kept = []
    for event, body in zip(events, bodies, strict=True):
        if (identity := event_id(event)) not in seen:
            seen.add(identity)
            kept.append(body)
    return kept

"""Holdout check for Kafka: an independent client (kcat, librdkafka; not kafka-python) reads the dead-letter
topic before a replay and the destination after it; key, value and every header must be the same
bytes, in the same order per key, plus wfbus's `replayed-from`. kcat is installed by .ci/run
(Debian package kcat)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter

import pytest
from conftest import write_jsonl
from contract.kits import KAFKA_BOOTSTRAP

from brokers.kafka_drivers import kafka_driver  # noqa: F401 - each test, each driver
from brokers.test_kafka_fidelity import foreign_records, kafka_config, produce, seeded

pytestmark = pytest.mark.broker("kafka")


def kcat_records(topic: str) -> list[tuple]:
    """(partition, key, value, headers) of every record, read by kcat -J. kcat escapes control characters
    as \\u00XX and writes other bytes as they are, so the text read as Latin-1 gives the bytes back."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is not installed (apt-get install -y kcat; .ci/run does it)"
    result = subprocess.run(
        [
            kcat,
            "-b",
            KAFKA_BOOTSTRAP,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-J",
            "-X",
            "isolation.level=read_committed",
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = []
    for line in result.stdout.splitlines():
        doc = json.loads(line.decode("latin-1"))
        raw = doc.get("headers") or []
        headers = tuple(
            (raw[i], None if raw[i + 1] is None else raw[i + 1].encode("latin-1"))
            for i in range(0, len(raw), 2)
        )
        as_bytes = lambda text: None if text is None else text.encode("latin-1")  # noqa: E731
        out.append(
            (doc["partition"], as_bytes(doc.get("key")), as_bytes(doc.get("payload")), headers)
        )
    return out


def test_kcat_reads_back_exactly_what_was_dead_lettered(wfbus, tmp_path):
    rng = seeded("kcat holdout")
    settings = kafka_config(tmp_path)
    dlq = settings["dead_letter_topic"]
    events = [
        {
            "topic": rng.choice(["order.submit", "billing.charge"]),
            "urn": f"o-{rng.randrange(6)}",
            "payload": {"i": i, "text": rng.choice(["größe", "🚚", "\u2028", "plain"])},
            "attempt": rng.randrange(3),
        }
        for i in range(rng.randrange(20, 60))
    ]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    foreign = foreign_records(rng, rng.randrange(20, 50))
    produce(dlq, foreign)

    dead = kcat_records(dlq)
    assert len(dead) == len(events) + len(foreign)
    assert Counter(v for _, _, v, _ in dead) >= Counter(
        v for _, v, _ in foreign
    )  # kcat read the bytes as sent
    report = wfbus("-o", "json", "replay", "--yes", "--batch", str(rng.randrange(4, 25))).json()
    assert report["replayed"] == len(dead), report
    arrived = kcat_records(settings["topic"])

    replayed_from = ("replayed-from", f"k:{dlq}".encode())
    assert Counter((k, v, h) for _, k, v, h in arrived) == Counter(
        (k, v, (*h, replayed_from)) for _, k, v, h in dead
    )
    for key in {
        k for _, k, _, _ in dead if k is not None
    }:  # per key: the dead-letter order, in one partition
        assert [(v, h[:-1]) for _, k, v, h in arrived if k == key] == [
            (v, h) for _, k, v, h in dead if k == key
        ]
        assert len({p for p, k, _, _ in arrived if k == key}) == 1

"""Kafka replay fidelity on a real broker: what a selective replay leaves stays dead-lettered, the record
is republished as it was (key, null value, every header byte for byte), order per key, transactions,
and a journal keyed by the topic's real identity.

Inputs are generated from a printed seed (set WFBUS_TEST_SEED to replay one)."""

from __future__ import annotations

import json
import os
import random
import struct
import time
import uuid
from collections import Counter

import pytest
from conftest import write_config, write_jsonl
from contract.kits import KAFKA_BOOTSTRAP, kafka_create_topics
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from brokers.kafka_drivers import driver_settings, kafka_driver  # noqa: F401 - each test, each driver

pytestmark = pytest.mark.broker("kafka")


def seeded(name: str) -> random.Random:
    seed = int(os.environ.get("WFBUS_TEST_SEED") or random.randrange(1 << 30))
    print(f"{name}: seed {seed} (WFBUS_TEST_SEED={seed} reruns it)")
    return random.Random(seed)


def kafka_config(tmp_path, *, partitions: int = 3, **extra) -> dict:
    """Fresh topic + dead-letter topic, a broker `k` in ./wfbus.yaml; returns its settings."""
    name = f"wfbus-{uuid.uuid4().hex[:10]}"
    kafka_create_topics(name, f"{name}.dlq", partitions=partitions)
    settings = {
        "type": "kafka",
        "bootstrap_servers": [KAFKA_BOOTSTRAP],
        "topic": name,
        "dead_letter_topic": f"{name}.dlq",
        "consumer_group": f"app-{name}",
        "replay_group": f"rp-{name}",
        "timeout_seconds": 10,
        **driver_settings(),
        **extra,
    }
    write_config(tmp_path / "wfbus.yaml", {"k": settings}, "k")
    return settings


@pytest.fixture
def kafka_broker(tmp_path):
    return kafka_config(tmp_path)


def produce(topic: str, records: list[tuple], **config) -> None:
    """(key, value, headers) records, in order, through one idempotent producer."""
    producer = KafkaProducer(
        bootstrap_servers=KAFKA_BOOTSTRAP, acks="all", enable_idempotence=True, **config
    )
    for key, value, headers in records:
        producer.send(topic, key=key, value=value, headers=list(headers))
    producer.flush(30)
    producer.close(10)


def consume_all(topic: str, isolation_level: str = "read_uncommitted") -> list:
    """Every record of the topic, in partition then offset order (read to the end offsets)."""
    consumer = KafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP, enable_auto_commit=False, isolation_level=isolation_level
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    end = consumer.end_offsets(partitions)
    records: list = []
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        assert time.monotonic() < deadline, "could not read the topic to its end"
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)])
    consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def dead_count(wfbus) -> int:
    rows = wfbus("depth", "-o", "json").json()["queues"]
    return next(q["lag"] for q in rows if q["role"] == "dead-letter")


def replay(wfbus, *args: str) -> dict:
    result = wfbus("-o", "json", "replay", "--yes", *args)
    assert result.code == 0, result.err + result.out
    return result.json()


def bodies(records) -> Counter:
    return Counter(r.value for r in records)


# -- 13.2: a selective replay leaves the unselected dead-lettered ----------------------------------


def test_selective_replay_keeps_the_unselected_for_a_later_replay(wfbus, kafka_broker, tmp_path):
    rng = seeded("selective")
    events = [
        {
            "topic": rng.choice(["order.submit", "order.ship", "billing.charge", "billing.refund"]),
            "urn": f"u-{rng.randrange(25)}",
            "payload": {"n": i},
        }
        for i in range(rng.randrange(250, 400))
    ]
    orders = [e for e in events if e["topic"].startswith("order.")]
    billing = [e for e in events if e["topic"].startswith("billing.")]
    assert (
        wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "dlq.jsonl", events))).code == 0
    )
    dlq = consume_all(kafka_broker["dead_letter_topic"])
    assert {r.partition for r in dlq} == {0, 1, 2}  # interleaved across every partition

    first = replay(wfbus, "--topic", "order.*", "--batch", str(rng.randrange(5, 40)))
    assert (first["replayed"], first["left"], first["unselected_passed_over"]) == (
        len(orders),
        len(billing),
        False,
    )
    moved = consume_all(kafka_broker["topic"])
    assert bodies(moved) == bodies(
        r for r in dlq if json.loads(r.value)["topic"].startswith("order.")
    )
    assert dead_count(wfbus) == len(billing)  # the billing events are still dead-lettered
    still_dead = json.loads(wfbus("peek", "--dead-letter", "--all", "--force", "-o", "json").out)
    assert sorted(e["payload"]["n"] for e in still_dead) == sorted(
        e["payload"]["n"] for e in billing
    )

    plan = replay(wfbus, "--dry-run")  # the plan sees only what is still there
    assert (plan["examined"], plan["selected"]) == (len(billing), len(billing))

    second = replay(wfbus, "--topic", "billing.*", "--batch", str(rng.randrange(5, 40)))
    assert (second["examined"], second["replayed"], second["left"]) == (
        len(billing),
        len(billing),
        0,
    )
    assert dead_count(wfbus) == 0
    third = replay(wfbus)
    assert (third["examined"], third["replayed"]) == (0, 0)

    moved = consume_all(kafka_broker["topic"])
    assert bodies(moved) == bodies(dlq)  # every event exactly once: none lost, no duplicate
    for urn in {e["urn"] for e in events}:  # per key, in dead-letter order within each replay
        for prefix in ("order.", "billing."):
            sent = [
                json.loads(r.value)["payload"]["n"]
                for r in dlq
                if json.loads(r.value)["urn"] == urn
                and json.loads(r.value)["topic"].startswith(prefix)
            ]
            got = [
                json.loads(r.value)["payload"]["n"]
                for r in moved
                if json.loads(r.value)["urn"] == urn
                and json.loads(r.value)["topic"].startswith(prefix)
            ]
            assert got == sent


def test_a_failed_message_blocks_nothing_after_it_and_is_retried_alone(wfbus, tmp_path):
    """A message the destination refuses stays; the ones after it that were replayed are not replayed again."""
    from kafka.admin import KafkaAdminClient, NewTopic

    settings = kafka_config(tmp_path, partitions=1)
    small = f"{settings['topic']}-small"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(small, 1, 1, topic_configs={"max.message.bytes": "2048"})])
    admin.close()
    write_config(
        tmp_path / "wfbus.yaml", {"k": settings, "small": {**settings, "topic": small}}, "k"
    )
    events = [
        {"topic": "t", "urn": f"u{i}", "payload": {"n": i, "pad": "x" * (4000 if i == 3 else 1)}}
        for i in range(8)
    ]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    result = wfbus(
        "-o", "json", "replay", "--yes", "--to", "small", "--batch", "1"
    )  # one record per request
    assert result.code == 1 and result.json()["replayed"] == 7
    assert dead_count(wfbus) == 1
    assert [
        e["payload"]["n"]
        for e in json.loads(wfbus("peek", "--dead-letter", "--all", "-o", "json").out)
    ] == [3]
    assert replay(wfbus)["replayed"] == 1  # the big one, into the main topic that takes it
    assert sorted(json.loads(r.value)["payload"]["n"] for r in consume_all(small)) == [
        0,
        1,
        2,
        4,
        5,
        6,
        7,
    ]
    assert [json.loads(r.value)["payload"]["n"] for r in consume_all(settings["topic"])] == [3]


def test_too_many_gaps_to_remember_stop_the_replay_and_lose_nothing(wfbus, tmp_path):
    """The replayed offsets above the commit point live in the commit's metadata: when they would not fit
    the replay stops (exit 1, said) instead of replaying what a later run could not tell apart."""
    settings = kafka_config(tmp_path, partitions=1, commit_metadata_max_bytes=64)
    events = [
        {"topic": "a" if i % 2 else "b", "urn": "one", "payload": {"n": i}} for i in range(120)
    ]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    result = wfbus("-o", "json", "replay", "--yes", "--topic", "a", "--batch", "10")
    report = result.json()
    assert result.code == 1, result.err
    assert "metadata" in report["aborted"] and 0 < report["replayed"] < 60
    first = report["replayed"]
    assert dead_count(wfbus) == 120 - first
    assert (
        replay(wfbus)["replayed"] == 120 - first
    )  # without filters: everything else, nothing twice
    assert dead_count(wfbus) == 0
    assert sorted(
        json.loads(r.value)["payload"]["n"] for r in consume_all(settings["topic"])
    ) == list(range(120))


# -- 13.6: the record as it was --------------------------------------------------------------------


def foreign_records(rng: random.Random, count: int) -> list[tuple]:
    """Records as other producers leave them in a DLQ: binary and repeated headers (a Spring DLT's 8-byte
    offsets), foreign keys, null keys, tombstones, non-UTF-8 values, and workflow events with foreign keys."""

    def header_value() -> bytes:
        return rng.choice(
            [
                struct.pack(">q", rng.randrange(1 << 40)),
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))),
                b"",
                b"\xff\xfe\x00",
                "größe ✓".encode(),
                str(rng.randrange(10)).encode(),
            ]
        )

    names = [
        "kafka_dlt-original-offset",
        "kafka_dlt-exception-message",
        "x-repeat",
        "x-repeat",
        "trace",
        "attempt",
        "urn",
        "topic",
        "event-id",
    ]
    records = []
    for i in range(count):
        headers = [(rng.choice(names), header_value()) for _ in range(rng.randrange(0, 7))]
        kind = rng.choice(["event", "foreign", "tombstone"])
        key = rng.choice(
            [None, f"tenant-{rng.randrange(5)}".encode(), bytes([0xFF, rng.randrange(256), 0])]
        )
        if kind == "event":
            value = json.dumps(
                {"topic": "order.submit", "urn": f"o-{i}", "payload": {"i": i}, "attempt": 1},
                separators=(",", ":"),
            ).encode()
        elif kind == "foreign":
            value = rng.choice(
                [b"\x00\x01\xff binary", "plain text ünïcode".encode(), b"{not json", b""]
            )
            value += bytes([i % 256])
        else:
            value, key = None, key or b"tomb"
        records.append((key, value, headers))
    return records


def as_sent(record) -> tuple:
    return record.key, record.value, tuple(record.headers)


def test_replay_republishes_key_null_value_and_every_header_byte_for_byte(wfbus, kafka_broker):
    rng = seeded("foreign")
    dlq = kafka_broker["dead_letter_topic"]
    produce(dlq, foreign_records(rng, rng.randrange(40, 90)))
    dead = consume_all(dlq)
    report = replay(wfbus, "--batch", str(rng.randrange(3, 30)))
    assert report["replayed"] == len(dead)
    replayed_from = ("replayed-from", f"k:{dlq}".encode())
    expected = Counter((r.key, r.value, (*r.headers, replayed_from)) for r in dead)
    got = consume_all(kafka_broker["topic"])
    assert Counter(as_sent(r) for r in got) == expected

    def keyed(records) -> dict:
        return {k: [as_sent(r) for r in records if r.key == k] for k in {r.key for r in records}}

    assert {
        k: [(v, h[:-1]) for _, v, h in rs] for k, rs in keyed(got).items() if k is not None
    } == {
        k: [(v, h) for _, v, h in rs] for k, rs in keyed(dead).items() if k is not None
    }  # order per key
    for record in got:  # the original key decides the partition, as it did in the DLQ
        if record.key is not None:
            assert record.partition == next(r.partition for r in dead if r.key == record.key)


def test_attempt_policy_rewrites_the_headers_it_changes_in_place(wfbus, kafka_broker):
    dlq = kafka_broker["dead_letter_topic"]
    body = json.dumps({"topic": "t", "urn": "u", "attempt": 2}, separators=(",", ":")).encode()
    headers = [("attempt", b"2"), ("x-bin", b"\xff\x00"), ("x-bin", b"again"), ("trace", b"t-1")]
    produce(dlq, [(b"orig-key", body, headers)])
    assert replay(wfbus, "--attempt", "increment")["replayed"] == 1
    [record] = consume_all(kafka_broker["topic"])
    assert record.key == b"orig-key" and json.loads(record.value)["attempt"] == 3
    assert [k for k, _ in record.headers] == ["attempt", "x-bin", "x-bin", "trace", "replayed-from"]
    assert record.headers[0] == ("attempt", b"3") and record.headers[1:4] == headers[1:]


# -- 13.1: order per key ---------------------------------------------------------------------------


def test_order_per_key_is_kept_over_many_batches_on_emit_and_replay(
    wfbus, kafka_broker, tmp_path, monkeypatch
):
    from wfbus.brokers.kafka import KafkaBroker

    rng = seeded("order")
    monkeypatch.setattr(
        KafkaBroker, "publish_batch_size", rng.randrange(150, 400)
    )  # several emit batches
    urns = [f"urn-{i}" for i in range(rng.randrange(7, 12))] + [rng.randrange(10**6)]
    events = [
        {"topic": "step", "urn": rng.choice(urns), "payload": {"seq": i}}
        for i in range(rng.randrange(2000, 2600))
    ]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0

    def per_key(records) -> dict:
        out: dict = {}
        for record in records:
            out.setdefault(record.key, []).append(json.loads(record.value)["payload"]["seq"])
        return out

    expected: dict = {}
    for e in events:
        expected.setdefault(str(e["urn"]).encode(), []).append(e["payload"]["seq"])
    assert per_key(consume_all(kafka_broker["dead_letter_topic"])) == expected
    assert replay(wfbus, "--batch", str(rng.randrange(60, 250)))["replayed"] == len(events)
    assert per_key(consume_all(kafka_broker["topic"])) == expected


# -- 13.4: transactions ----------------------------------------------------------------------------


def test_aborted_transactional_records_are_not_replayed(wfbus, kafka_broker, tmp_path):
    dlq = kafka_broker["dead_letter_topic"]
    producer = KafkaProducer(
        bootstrap_servers=KAFKA_BOOTSTRAP, transactional_id=f"tx-{uuid.uuid4().hex[:8]}"
    )
    producer.init_transactions()

    def transaction(tag: str, count: int, commit: bool) -> None:
        producer.begin_transaction()
        for i in range(count):
            event = {"topic": "t", "urn": f"{tag}{i % 4}", "payload": {"tag": tag, "i": i}}
            producer.send(dlq, key=event["urn"].encode(), value=json.dumps(event).encode())
        producer.flush(
            30
        )  # on the wire (and in the log) before the abort, or kafka-python drops them unsent
        producer.commit_transaction() if commit else producer.abort_transaction()

    transaction("kept", 9, True)
    transaction("aborted", 7, False)
    transaction("late", 5, True)
    producer.close(10)
    assert len(consume_all(dlq)) == 21  # read_uncommitted sees the aborted ones too
    report = replay(wfbus)
    assert report["replayed"] == 14
    tags = Counter(
        json.loads(r.value)["payload"]["tag"] for r in consume_all(kafka_broker["topic"])
    )
    assert tags == {"kept": 9, "late": 5}
    assert dead_count(wfbus) == 0  # the transaction markers do not count as dead-lettered messages
    assert replay(wfbus)["replayed"] == 0


# -- 12.5: the journal is keyed by the topic's real identity ---------------------------------------


def _identity(tmp_path) -> str:
    from wfbus.config import load

    with (
        load(str(tmp_path / "wfbus.yaml")).open("k") as broker,
        broker.dead_letter_reader() as reader,
    ):
        return reader.identity or f"{broker.name}:{reader.source_label}"


def _recreate(topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=15000)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 60
        while True:
            try:
                admin.create_topics([NewTopic(topic, 1, 1)])
                break
            except TopicAlreadyExistsError:  # deletion is asynchronous
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        admin.close()


def test_a_recreated_topic_does_not_inherit_journal_entries(wfbus, tmp_path):
    from wfbus.journal import Journal

    settings = kafka_config(tmp_path, partitions=1)
    dlq = settings["dead_letter_topic"]
    assert wfbus("emit", "--dead-letter", "--topic", "t", "--urn", "old").code == 0
    before = _identity(tmp_path)
    probe = KafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP)
    probe.partitions_for_topic(dlq)
    cluster_id = probe._client.cluster.cluster_id
    probe.close()
    assert cluster_id and cluster_id in before and dlq in before
    # a replay killed between the destination's confirmation and the commit left this entry
    journal = Journal(before, path=tmp_path / "state" / "wfbus" / "journal.db")
    journal.mark_published([f"{dlq}/0/0"])
    journal.close()

    _recreate(dlq)
    time.sleep(1)
    assert (
        wfbus("emit", "--dead-letter", "--topic", "t", "--urn", "new").code == 0
    )  # offset 0 again
    assert _identity(tmp_path) != before
    report = replay(wfbus)
    assert (report["replayed"], report["resumed"]) == (
        1,
        0,
    )  # published, not taken for the old record
    assert [json.loads(r.value)["urn"] for r in consume_all(settings["topic"])] == ["new"]

"""Kafka behaviour that the broker decides, on a real Apache Kafka (KRaft) broker."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from conftest import write_config, write_jsonl
from contract.kits import KAFKA_BOOTSTRAP, kafka_create_topics
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from brokers.kafka_drivers import driver_settings, kafka_driver  # noqa: F401 - each test, each driver

pytestmark = pytest.mark.broker("kafka")


@pytest.fixture
def kafka_broker(tmp_path):
    name = f"wfbus-{uuid.uuid4().hex[:10]}"
    kafka_create_topics(name, f"{name}.dlq")
    settings = {
        "type": "kafka",
        "bootstrap_servers": [KAFKA_BOOTSTRAP],
        "topic": name,
        "dead_letter_topic": f"{name}.dlq",
        "consumer_group": f"app-{name}",
        "replay_group": f"rp-{name}",
        **driver_settings(),
    }
    write_config(tmp_path / "wfbus.yaml", {"k": settings}, "k")
    return settings


def _consume_all(topic: str) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    records = list(consumer)
    consumer.close()
    return records


def test_key_is_the_urn_so_one_entity_stays_on_one_partition_in_order(
    wfbus, kafka_broker, tmp_path
):
    events = [{"topic": f"step.{i}", "urn": f"order-{i % 4}", "attempt": i} for i in range(40)]
    assert wfbus("emit", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    records = _consume_all(kafka_broker["topic"])
    assert len(records) == 40
    by_key: dict[bytes, set] = {}
    for record in records:
        by_key.setdefault(record.key, set()).add(record.partition)
        assert dict(record.headers)["urn"] == record.key
    assert all(len(p) == 1 for p in by_key.values())
    for key in by_key:
        attempts = [
            json.loads(r.value)["attempt"]
            for r in sorted(records, key=lambda r: r.offset)
            if r.key == key
        ]
        assert attempts == sorted(attempts)


def test_lag_is_exact_per_partition_and_in_total(wfbus, kafka_broker, tmp_path):
    events = [{"topic": "t", "urn": f"u{i}"} for i in range(30)]
    assert wfbus("emit", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    topic = kafka_broker["topic"]
    ends = {}
    for record in _consume_all(topic):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    # the application consumed 2 messages of partition 0 and everything of partition 1;
    # nothing of partition 2
    consumer = KafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP,
        group_id=kafka_broker["consumer_group"],
        enable_auto_commit=False,
    )
    consumer.commit(
        {
            TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1),
            TopicPartition(topic, 1): OffsetAndMetadata(ends.get(1, 0), "", -1),
        }
    )
    consumer.close()
    [main] = [q for q in wfbus("depth", "-o", "json").json()["queues"] if q["role"] == "main"]
    expected = {"0": ends.get(0, 0) - 2, "1": 0, "2": ends.get(2, 0)}
    assert main["detail"]["lag_by_partition"] == expected
    assert main["lag"] == sum(expected.values()) == 30 - 2 - ends.get(1, 0)


def test_dead_letter_depth_counts_what_the_replay_group_has_not_replayed(
    wfbus, kafka_broker, tmp_path
):
    events = [{"topic": "a" if i % 2 else "b", "urn": f"u{i}"} for i in range(10)]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    assert wfbus("replay", "--limit", "4").code == 0

    def dead():
        return [
            q for q in wfbus("depth", "-o", "json").json()["queues"] if q["role"] == "dead-letter"
        ][0]["lag"]

    assert (
        dead() == 6
    )  # the 6 messages past the limit were not committed past: the next replay takes them
    assert wfbus("replay").code == 0
    assert dead() == 0
    assert len(_consume_all(kafka_broker["topic"])) == 10


def test_replay_headers_keep_the_key_and_add_replayed_from(wfbus, kafka_broker):
    assert (
        wfbus(
            "emit", "--dead-letter", "--topic", "t", "--urn", "order-7", "--payload", '{"a":1}'
        ).code
        == 0
    )
    assert wfbus("replay").code == 0
    [record] = _consume_all(kafka_broker["topic"])
    headers = {k: v.decode() for k, v in record.headers}
    assert record.key == b"order-7"
    assert headers["replayed-from"] == f"k:{kafka_broker['dead_letter_topic']}"
    assert set(headers) >= {"topic", "urn", "attempt", "event-id"}


def test_replay_dry_run_commits_nothing_and_says_unselected_stay(wfbus, kafka_broker, tmp_path):
    events = [{"topic": "a", "urn": "1"}, {"topic": "b", "urn": "2"}]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    result = wfbus("replay", "--topic", "a", "--dry-run")
    assert result.code == 0 and "not selected: left in the dead-letter queue" in result.out
    assert [q for q in wfbus("depth", "-o", "json").json()["queues"] if q["role"] == "dead-letter"][
        0
    ]["lag"] == 2
    result = wfbus("replay", "--topic", "a")
    assert result.code == 0 and "not selected: left in the dead-letter queue" in result.out
    assert [q for q in wfbus("depth", "-o", "json").json()["queues"] if q["role"] == "dead-letter"][
        0
    ]["lag"] == 1


def test_unknown_topic_and_unreachable_broker_exit_5_promptly(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "missing": {
                "type": "kafka",
                "bootstrap_servers": [KAFKA_BOOTSTRAP],
                "topic": "no-such-topic-x",
                "timeout_seconds": 3,
                **driver_settings(),
            },
            "down": {
                "type": "kafka",
                "bootstrap_servers": ["127.0.0.1:9"],
                "topic": "t",
                "timeout_seconds": 3,
                **driver_settings(),
            },
        },
    )
    started = time.monotonic()
    result = wfbus("emit", "-b", "missing", "--topic", "t", "--urn", "u")
    assert result.code == 5 and "no-such-topic-x" in result.err and "Traceback" not in result.err
    result = wfbus("emit", "-b", "down", "--topic", "t", "--urn", "u")
    assert result.code == 5 and "no Kafka broker reachable" in result.err
    assert time.monotonic() - started < 30


def test_an_event_the_broker_refuses_fails_alone_with_exit_1_and_the_rest_are_confirmed(
    wfbus, tmp_path
):
    """The topic takes records of at most 1 KiB (max.message.bytes): the broker refuses the big one."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"wfbus-small-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
    admin.create_topics([NewTopic(name, 1, 1, topic_configs={"max.message.bytes": "1024"})])
    admin.close()
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "k": {
                "type": "kafka",
                "bootstrap_servers": [KAFKA_BOOTSTRAP],
                "topic": name,
                "timeout_seconds": 5,
                **driver_settings(),
            }
        },
        "k",
    )
    assert wfbus("emit", "--topic", "t", "--urn", "before").code == 0
    write_jsonl(
        tmp_path / "big.jsonl", [{"topic": "t", "urn": "big", "payload": {"blob": "x" * 4000}}]
    )
    result = wfbus("-o", "json", "emit", "big.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1, result.err
    doc = result.json()
    assert doc["published"] == 0 and [f["place"] for f in doc["failed"]] == ["big.jsonl:1"]
    assert "TooLarge" in doc["failed"][0]["error"]
    assert json.loads((tmp_path / "failed.jsonl").read_text())["urn"] == "big"
    assert wfbus("emit", "--topic", "t", "--urn", "after").code == 0  # the producer carries on
    assert [r.key for r in _consume_all(name)] == [b"before", b"after"]


def test_an_unreachable_cluster_is_said_within_the_connect_timeout_not_the_delivery_timeout(
    wfbus, tmp_path
):
    """The connection set-up is bounded apart from delivery (timeout_seconds 30 here): exit 5 in seconds."""
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "down": {
                "type": "kafka",
                "bootstrap_servers": ["127.0.0.1:9"],
                "topic": "t",
                "timeout_seconds": 30,
                **driver_settings(),
            }
        },
    )
    started = time.monotonic()
    result = wfbus("depth")
    assert result.code == 5 and "no Kafka broker reachable" in result.err
    assert time.monotonic() - started < 15  # was 30 s: the whole delivery timeout

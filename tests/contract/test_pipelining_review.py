"""Adversarial review of pipelined publishing (issue 14 item 2): failing reproductions.

Each test names the defect it reproduces and fails on the code it was written against. Everything
runs in this process against the real servers of tests/contract/kits.py (own uniquely named
queues/topics, deleted afterwards); batch sizes are lowered by monkeypatch so that a few hundred
events span the broker's whole window.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from contract.kits import (
    KAFKA_BOOTSTRAP,
    SQS_ENDPOINT,
    RabbitMqKit,
    rabbit_channel,
    sqs_client,
)
from wfbus.brokers import broker_class
from wfbus.emit import emit as emit_events
from wfbus.interrupts import handling
from wfbus.sources import EventSources


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("WFBUS_STATE_DIR", str(path))
    return path


def _emit(broker, events: list[dict], tmp_path: Path, *, resume: bool = False, failed_out=None):
    source = tmp_path / "events.jsonl"
    if not source.exists():
        source.write_text("".join(json.dumps(e) + "\n" for e in events))
    with EventSources([str(source)]) as sources:
        return emit_events(broker, sources, resume=resume, failed_out=failed_out)


# -- Kafka, kafka-python driver ----------------------------------------------------------------
def test_kafka_python_one_oversized_record_fails_alone_with_batches_in_flight(
    tmp_path, monkeypatch, state_dir
):
    """DEFECT: with the kafka-python driver, one record over the topic's max.message.bytes fails
    every record packed with it in the window: 400 events of one key, record 60 too large, batches
    of 50 (window 4): 190 events fail, every one blamed as "larger than the topic's
    max.message.bytes", and events 250.. of the same key arrive before them (order per key broken
    once --failed-out is resent). With window 1 it was 40; librdkafka fails record 60 alone. The
    docs (guarantees.md, Partial failures) promise a refused Kafka record fails alone; and the
    retry loop (`emit failed.jsonl --failed-out failed.jsonl`) fails the innocent ones again."""
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"wfbus-review-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=15000)
    admin.create_topics(
        [
            NewTopic(name, 1, 1, topic_configs={"max.message.bytes": "3000"}),
            NewTopic(f"{name}.dlq", 1, 1),
        ]
    )
    try:
        time.sleep(1)
        cls = broker_class("kafka")
        monkeypatch.setattr(cls, "publish_batch_size", 50)
        settings = cls.settings_model(
            type="kafka",
            bootstrap_servers=[KAFKA_BOOTSTRAP],
            topic=name,
            dead_letter_topic=f"{name}.dlq",
            driver="kafka-python",
            timeout_seconds=10,
        )
        count, big = 400, 60
        events = [
            {
                "topic": "order.x",
                "urn": "k1",
                "payload": {"i": i, "pad": "x" * 8000 if i == big else ""},
            }
            for i in range(count)
        ]
        failed_out = tmp_path / "failed.jsonl"
        with cls("target", settings, tmp_path) as broker:
            report = _emit(broker, events, tmp_path, failed_out=failed_out)
        consumer = KafkaConsumer(
            name,
            bootstrap_servers=KAFKA_BOOTSTRAP,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        arrived = [json.loads(m.value)["payload"]["i"] for m in consumer]
        consumer.close()
        failed = [json.loads(line)["payload"]["i"] for line in failed_out.read_text().splitlines()]
        assert sorted(arrived + failed) == list(range(count)), "lost or duplicated"
        print(f"published {report.published}, failed {report.failed_count}: {failed[:3]}..")
        assert failed == [big], (
            f"{len(failed)} events failed for one oversized record (first {failed[:5]}, last "
            f"{failed[-3:]}); reasons: {sorted({f.error[:60] for f in report.failed})}"
        )
    finally:
        admin.delete_topics([name, f"{name}.dlq"])
        admin.close()


# -- a second stop signal with batches in flight -------------------------------------------------
def _rabbit_depth(queue: str) -> int:
    connection, channel = rabbit_channel()
    try:
        return channel.queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_a_second_stop_with_batches_in_flight_then_resume_reports_its_duplicates(
    tmp_path, monkeypatch, state_dir
):
    """DEFECT: a second stop signal while emit reads the answers of the batches in flight marks
    the batches whose answer it did not read as unconfirmed and leaves the progress record 'open'
    (not 'running'), so `emit --resume` resends them with `duplicates_bound` 0 ("resume is exact"
    says the code): they were on the wire (here confirmed by RabbitMQ), so they arrive twice,
    unreported. RabbitMQ, batches of 20 (window 3), 200 events: the first SIGTERM lands while
    batch 1's answer is read, the second while batch 2's is; batch 3 is never read."""
    kit = RabbitMqKit()
    settings_dict = kit.create(tmp_path)
    try:
        cls = broker_class("rabbitmq")
        monkeypatch.setattr(cls, "publish_batch_size", 20)
        settings = cls.settings_model(**settings_dict)
        real_submit = cls.submit
        answers = {"read": 0}

        class Signalling:
            def __init__(self, pending):
                self.pending, self.messages = pending, pending.messages

            def result(self):
                answers["read"] += 1
                if answers["read"] <= 2:  # a stop while reading answers 1 and 2
                    os.kill(os.getpid(), signal.SIGTERM)
                return self.pending.result()

        def submit(broker, messages, **kwargs):
            return Signalling(real_submit(broker, messages, **kwargs))

        count = 200
        events = [
            {"topic": "order.x", "urn": f"u{i % 7}", "payload": {"i": i}} for i in range(count)
        ]
        with handling():
            monkeypatch.setattr(cls, "submit", submit)
            with cls("target", settings, tmp_path) as broker:
                first = _emit(broker, events, tmp_path)
            monkeypatch.setattr(cls, "submit", real_submit)
        assert first.stopped_by == signal.SIGTERM and first.failed_out_cut_short  # the second stop
        with cls("target", settings, tmp_path) as broker:
            resumed = _emit(broker, events, tmp_path, resume=True)
        time.sleep(1)
        held = _rabbit_depth(settings_dict["queue"])
        print(
            f"first: published {first.published}, failed {first.failed_count}, not attempted "
            f"{first.not_attempted}; resume: sent {resumed.published}, skipped "
            f"{resumed.skipped_confirmed}, duplicates_bound {resumed.duplicates_bound}; queue {held}"
        )
        assert held >= count, "lost"
        assert held - count <= resumed.duplicates_bound, (
            f"{held - count} duplicates, reported bound {resumed.duplicates_bound}"
        )
    finally:
        kit.cleanup()


# -- SQS FIFO with `deduplication: random`: a resend is not recognised ---------------------------
class _Killed(BaseException):
    """Stands for SIGKILL: the process dies before recording an answer (nothing handles it)."""


def _sqs_depth(url: str) -> int:
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_resume_after_a_kill_into_a_fifo_queue_with_random_dedup_reports_its_duplicates(
    tmp_path, monkeypatch, state_dir
):
    """DEFECT: SqsBroker.capabilities_for declares dedup_on_resend (README: SQS FIFO "resend
    recognised: yes") for every FIFO queue, but with `deduplication: random` each send gets a
    fresh dedup id, so SQS takes a resend as new. After a kill with 4 batches of 100 in flight,
    `emit --resume` reports duplicates_bound (`may_be_duplicated`) 0 and 400 events arrive twice.
    The kill is the process dying just before it records batch 3's answer (in this process: the
    thread pool finishes sending the window, as a killed process's requests on the wire do)."""
    from wfbus import emit_progress

    client = sqs_client()
    name = f"wfbus-review-{uuid.uuid4().hex[:10]}.fifo"
    url = client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    try:
        cls = broker_class("sqs")
        settings = cls.settings_model(
            type="sqs",
            queue_url=url,
            dead_letter_queue_url=url,
            endpoint_url=SQS_ENDPOINT,
            region="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            deduplication="random",
        )
        count = 1000
        events = [
            {"topic": "order.x", "urn": f"u{i % 9}", "payload": {"i": i}} for i in range(count)
        ]
        real_answered = emit_progress.EmitProgress.answered
        calls = {"n": 0}

        def answered(self, confirmed, unconfirmed, upto):
            calls["n"] += 1
            if calls["n"] == 3:
                raise _Killed()
            return real_answered(self, confirmed, unconfirmed, upto)

        monkeypatch.setattr(emit_progress.EmitProgress, "answered", answered)
        broker = cls("target", settings, tmp_path)
        with pytest.raises(_Killed):
            _emit(broker, events, tmp_path)
        broker.close()  # the window's requests finish, as they would on the wire
        monkeypatch.setattr(emit_progress.EmitProgress, "answered", real_answered)
        with cls("target", settings, tmp_path) as broker:
            resumed = _emit(broker, events, tmp_path, resume=True)
        time.sleep(1)
        held = _sqs_depth(url)
        print(
            f"resume: sent {resumed.published}, skipped {resumed.skipped_confirmed}, "
            f"duplicates_bound {resumed.duplicates_bound}; queue {held}"
        )
        assert held >= count, "lost"
        assert held - count <= resumed.duplicates_bound, (
            f"{held - count} duplicates, reported bound {resumed.duplicates_bound}"
        )
    finally:
        client.delete_queue(QueueUrl=url)


# -- Kafka, kafka-python driver: a batch refused part-way through submit --------------------------
def test_kafka_python_a_missing_topic_mid_batch_does_not_disown_records_already_sent(
    tmp_path, monkeypatch, state_dir
):
    """DEFECT: KafkaPythonPublisher.submit checks each event topic's existence as it reaches it,
    after send() has handed the earlier records of the batch to the producer; the raised
    BrokerUnavailable makes emit account the whole batch "not confirmed" (PendingPublish.answered
    with the error), but the producer delivers the records already sent. With topic_template,
    30 events for an existing topic then 1 for a missing one: the report says published 0, exit 5
    ("nothing published"), --failed-out holds all 31, and the topic holds 30 of them: a rerun of
    --failed-out duplicates 30. librdkafka checks every topic before producing (holds: 0 sent)."""
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"wfbus-review-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=15000)
    admin.create_topics([NewTopic(f"{name}.order.a", 1, 1)])
    try:
        time.sleep(1)
        cls = broker_class("kafka")
        settings = cls.settings_model(
            type="kafka",
            bootstrap_servers=[KAFKA_BOOTSTRAP],
            topic_template=name + ".{topic}",
            driver="kafka-python",
            timeout_seconds=5,
        )
        events = [{"topic": "order.a", "urn": "k", "payload": {"i": i}} for i in range(30)]
        events.append({"topic": "order.b", "urn": "k", "payload": {"i": 30}})
        failed_out = tmp_path / "failed.jsonl"
        with cls("target", settings, tmp_path) as broker:
            report = _emit(broker, events, tmp_path, failed_out=failed_out)
        consumer = KafkaConsumer(
            f"{name}.order.a",
            bootstrap_servers=KAFKA_BOOTSTRAP,
            auto_offset_reset="earliest",
            consumer_timeout_ms=4000,
        )
        arrived = [json.loads(m.value)["payload"]["i"] for m in consumer]
        consumer.close()
        failed = [json.loads(line)["payload"]["i"] for line in failed_out.read_text().splitlines()]
        print(f"published {report.published}, topic holds {len(arrived)}, failed-out {len(failed)}")
        assert not set(arrived) & set(failed), (
            f"{len(set(arrived) & set(failed))} events both delivered and in --failed-out"
        )
        assert report.published == len(arrived), "the report's count differs from the topic's"
    finally:
        topics = [t for t in admin.list_topics() if t.startswith(name)]
        admin.delete_topics(topics)
        admin.close()

"""Read what a broker's main destination holds with the broker's own client, not with wfbus.

The counting invariants (every event at the destination exactly once, byte for byte, in order per
key) are checked against what an independent consumer sees.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import yaml


def target_settings(config_dir: Path) -> dict:
    return yaml.safe_load((config_dir / "wfbus.yaml").read_text())["brokers"]["target"]


def drain_main(config_dir: Path, expected: int, timeout: float = 60) -> list[bytes]:
    """Every body in the target's main destination, in the order a consumer receives them.

    SQS and RabbitMQ messages are consumed (removed); local and Kafka are read without removal.
    """
    settings = target_settings(config_dir)
    kind = settings["type"]
    if kind == "local":
        db = sqlite3.connect(settings["path"])
        try:
            return [
                bytes(b)
                for (b,) in db.execute(
                    "SELECT body FROM messages WHERE queue = ? ORDER BY id", (settings["queue"],)
                )
            ]
        finally:
            db.close()
    if kind == "sqs":
        return _drain_sqs(settings, expected, timeout)
    if kind == "rabbitmq":
        return _drain_rabbitmq(settings, expected, timeout)
    if kind == "kafka":
        return _read_kafka(settings, expected, timeout)
    if (
        kind == "spool"
    ):  # the plugin broker (tests/plugin_broker): consumed with the spool format's reader
        from plugin_broker.spool import consume

        return consume(Path(settings["path"]), settings["queue"])
    raise AssertionError(f"no drain for {kind}")


def _drain_sqs(settings: dict, expected: int, timeout: float) -> list[bytes]:
    from contract.kits import sqs_client

    client = sqs_client()
    out: list[bytes] = []
    empty_polls = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and empty_polls < (2 if len(out) >= expected else 6):
        got = client.receive_message(
            QueueUrl=settings["queue_url"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            empty_polls += 1
            continue
        empty_polls = 0
        out.extend(m["Body"].encode() for m in got)
        client.delete_message_batch(
            QueueUrl=settings["queue_url"],
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )
    if time.monotonic() >= deadline and empty_polls == 0:
        # a reader that stops early must say so: a partial read would be counted as lost messages
        raise AssertionError(
            f"drain of {settings['queue_url']} timed out after {timeout} s with messages "
            f"still arriving ({len(out)} read, {expected} expected)"
        )
    return out


def _drain_rabbitmq(settings: dict, expected: int, timeout: float) -> list[bytes]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(settings["url"]))
    try:
        channel = connection.channel()
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _props, body = channel.basic_get(settings["queue"], auto_ack=True)
            if method is None:
                if len(out) >= expected:
                    break
                time.sleep(0.2)
                if (
                    channel.queue_declare(settings["queue"], passive=True).method.message_count == 0
                    and len(out) >= expected
                ):
                    break
                continue
            out.append(body)
        else:
            left = channel.queue_declare(settings["queue"], passive=True).method.message_count
            if left:  # a reader that stops early must say so, not report the rest as lost
                raise AssertionError(
                    f"drain of {settings['queue']} timed out after {timeout} s: {len(out)} "
                    f"read, {left} still in the queue"
                )
        return out
    finally:
        connection.close()


def _read_kafka(settings: dict, expected: int, timeout: float) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings["bootstrap_servers"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        partitions = [
            TopicPartition(settings["topic"], p)
            for p in consumer.partitions_for_topic(settings["topic"])
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        total = sum(end.values()) - sum(consumer.beginning_offsets(partitions).values())
        out: list[bytes] = []
        budget = max(timeout, total / 2000)  # a big topic on a loaded machine takes longer to read
        deadline = time.monotonic() + budget
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() >= deadline:  # never return a partial read: it would count as lost
                raise AssertionError(
                    f"reading topic {settings['topic']} timed out after {budget:.0f} s: "
                    f"{len(out)} of {total} records read"
                )
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                out.extend(r.value for r in records)
        return out
    finally:
        consumer.close()


def events_of(bodies: list[bytes]) -> list[dict]:
    return [json.loads(b) for b in bodies]


def count_main(config_dir: Path) -> int:
    """How many messages the target's main destination holds now (cheap, for timing a kill)."""
    settings = target_settings(config_dir)
    kind = settings["type"]
    if kind == "local":
        db = sqlite3.connect(settings["path"], timeout=30)
        try:
            return db.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ?", (settings["queue"],)
            ).fetchone()[0]
        except sqlite3.OperationalError:  # the file is being created
            return 0
        finally:
            db.close()
    if kind == "sqs":
        from contract.kits import sqs_client

        attributes = sqs_client().get_queue_attributes(
            QueueUrl=settings["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    if kind == "rabbitmq":
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(settings["url"]))
        try:
            return (
                connection.channel()
                .queue_declare(settings["queue"], passive=True)
                .method.message_count
            )
        finally:
            connection.close()
    if kind == "kafka":
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=settings["bootstrap_servers"])
        try:
            partitions = [
                TopicPartition(settings["topic"], p)
                for p in consumer.partitions_for_topic(settings["topic"])
            ]
            return sum(consumer.end_offsets(partitions).values())
        finally:
            consumer.close()
    if kind == "spool":
        from plugin_broker.spool import message_files

        return len(message_files(Path(settings["path"]) / settings["queue"]))
    raise AssertionError(f"no count for {kind}")


def inject_foreign_dead_letters(config_dir: Path, messages: list[tuple[bytes, str, dict]]) -> None:
    """Put (body, key, headers) messages that are not workflow events into the target's dead-letter
    queue the way another application's failures would arrive there, with the broker's own client.

    Headers carry values of every type the broker has (RabbitMQ: int, bool, nested table, list,
    bytes; Kafka: binary bytes and a repeated key; SQS: String, Number and Binary attributes).
    """
    settings = target_settings(config_dir)
    kind = settings["type"]
    if kind == "local":
        db = sqlite3.connect(settings["path"], timeout=30)
        try:
            with db:
                db.executemany(
                    "INSERT INTO messages (queue, body, headers, routing_key, message_id, enqueued_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            settings["queue"] + ".dlq",
                            body,
                            json.dumps({k: str(v) for k, v in headers.items()}),
                            headers.get("topic", ""),
                            "",
                            time.time(),
                        )
                        for body, key, headers in messages
                    ],
                )
        finally:
            db.close()
    elif kind == "sqs":
        from contract.kits import sqs_client

        client = sqs_client()
        policy = json.loads(
            client.get_queue_attributes(
                QueueUrl=settings["queue_url"], AttributeNames=["RedrivePolicy"]
            )["Attributes"]["RedrivePolicy"]
        )
        dlq = client.get_queue_url(QueueName=policy["deadLetterTargetArn"].rsplit(":", 1)[-1])[
            "QueueUrl"
        ]
        for body, key, headers in messages:
            entry = {
                "QueueUrl": dlq,
                "MessageBody": body.decode("utf-8"),
                "MessageAttributes": {
                    name: (
                        {"DataType": "Number", "StringValue": str(value)}
                        if isinstance(value, int)
                        else {"DataType": "Binary", "BinaryValue": value}
                        if isinstance(value, bytes)
                        else {"DataType": "String", "StringValue": str(value)}
                    )
                    for name, value in headers.items()
                },
            }
            if dlq.endswith(".fifo"):
                entry.update(
                    MessageGroupId=key, MessageDeduplicationId=hashlib.sha256(body).hexdigest()
                )
            client.send_message(**entry)
    elif kind == "rabbitmq":
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(settings["url"]))
        try:  # published to the work queue and rejected there: dead-lettered for real, with x-death
            channel = connection.channel()
            channel.confirm_delivery()
            for body, key, headers in messages:
                channel.basic_publish(
                    settings["exchange"],
                    headers.get("topic", "order.foreign"),
                    body,
                    pika.BasicProperties(
                        headers=headers,
                        correlation_id=key,
                        app_id="other-app",
                        type="foreign",
                        priority=3,
                        delivery_mode=2,
                        content_type="application/octet-stream",
                    ),
                )
            rejected = 0
            while rejected < len(messages):
                method, _props, _body = channel.basic_get(settings["queue"])
                if method is None:
                    time.sleep(0.05)
                    continue
                channel.basic_reject(method.delivery_tag, requeue=False)
                rejected += 1
        finally:
            connection.close()
    elif kind == "kafka":
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=settings["bootstrap_servers"], acks="all")
        try:
            for body, key, headers in messages:
                record_headers = [
                    (name, value if isinstance(value, bytes) else str(value).encode())
                    for name, value in headers.items()
                ] + [("repeated", b"\x00\x01"), ("repeated", b"\xff")]
                producer.send(
                    settings["dead_letter_topic"],
                    value=body,
                    key=key.encode(),
                    headers=record_headers,
                )
            producer.flush(30)
        finally:
            producer.close()
    elif kind == "spool":  # another application appending to the spool (its headers are strings)
        from plugin_broker.spool import append

        errors = append(
            Path(settings["path"]),
            settings.get("dead_letter_queue") or settings["queue"] + ".dlq",
            [
                (body, {k: str(v) for k, v in headers.items()}, headers.get("topic", ""))
                for body, key, headers in messages
            ],
        )
        assert errors == [None] * len(messages), errors
    else:
        raise AssertionError(f"no injection for {kind}")

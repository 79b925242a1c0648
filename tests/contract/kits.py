"""One kit per broker type: how to give a test its own fresh queues on the real server.

The contract tests only talk to wfbus; a kit only prepares topology (queues, topics, bindings)
the way an operator would have it, and says what the broker can and cannot promise.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class Kit:
    kind = "base"
    passes_over_unselected = False  # Kafka: a replay skips what it does not select
    # "total"; "per-key": only one urn's events keep their order (SQS FIFO groups, Kafka partitions);
    # "none": best-effort order (SQS standard queues)
    order = "total"
    # after kill -9 during a replay and a rerun: 0 where publish and removal are one transaction (local)
    # or the destination drops a resend (SQS FIFO dedup id); else at most the batch on the wire (--batch 10)
    kill_duplicates_bound = 10

    def settings(self, tmp_path: Path) -> dict:
        raise NotImplementedError

    def cleanup(self) -> None:
        pass


class LocalKit(Kit):
    kind = "local"
    kill_duplicates_bound = 0

    def settings(self, tmp_path: Path) -> dict:
        return {"type": "local", "path": str(tmp_path / "local.db"), "queue": f"q-{uuid.uuid4().hex[:8]}"}


def sqs_client():
    import boto3

    return boto3.client("sqs", endpoint_url=SQS_ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


SQS_ENDPOINT = os.environ.get("WFBUS_TEST_SQS_ENDPOINT", "http://127.0.0.1:19324")


class SqsKit(Kit):
    """A main queue whose RedrivePolicy points at its DLQ, as an operator would set it up."""

    kind = "sqs"
    fifo = False
    order = "none"
    max_receive_count = 10

    def settings(self, tmp_path: Path) -> dict:
        client = sqs_client()
        suffix = ".fifo" if self.fifo else ""
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        fifo_attributes = {"FifoQueue": "true"} if self.fifo else {}
        dlq = client.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=fifo_attributes)["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        import json

        main = client.create_queue(QueueName=f"{name}{suffix}", Attributes={
            **fifo_attributes,
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_receive_count}),
        })["QueueUrl"]
        self.queue_urls = [main, dlq]
        return {"type": "sqs", "queue_url": main, "endpoint_url": SQS_ENDPOINT, "region": "us-east-1",
                "aws_access_key_id": "test", "aws_secret_access_key": "test", "visibility_timeout": 4}

    def cleanup(self) -> None:
        client = sqs_client()
        for url in getattr(self, "queue_urls", []):
            try:
                client.delete_queue(QueueUrl=url)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


class SqsFifoKit(SqsKit):
    kind = "sqs-fifo"
    fifo = True
    kill_duplicates_bound = 0
    order = "per-key"


KAFKA_BOOTSTRAP = os.environ.get("WFBUS_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def kafka_create_topics(*names: str, partitions: int = 3) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=15000)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        admin.wait_for_topics(list(names)) if hasattr(admin, "wait_for_topics") else None
    finally:
        admin.close()


class KafkaKit(Kit):
    """A 3-partition topic and its dead-letter topic, and a fresh application consumer group."""

    kind = "kafka"
    passes_over_unselected = True
    order = "per-key"

    def settings(self, tmp_path: Path) -> dict:
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        kafka_create_topics(name, f"{name}.dlq")
        return {"type": "kafka", "bootstrap_servers": [KAFKA_BOOTSTRAP], "topic": name,
                "dead_letter_topic": f"{name}.dlq", "consumer_group": f"app-{name}",
                "replay_group": f"replay-{name}", "timeout_seconds": 10}


RABBITMQ_URL = os.environ.get("WFBUS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5673/%2F")


def rabbit_channel():
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    return connection, connection.channel()


class RabbitMqKit(Kit):
    """An exchange, a work queue bound to `order.#`/`billing.#` that dead-letters into a DLQ."""

    kind = "rabbitmq"

    def settings(self, tmp_path: Path) -> dict:
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        self.names = name
        connection, channel = rabbit_channel()
        try:
            channel.exchange_declare(name, "topic", durable=True)
            channel.exchange_declare(f"{name}.dlx", "topic", durable=True)
            channel.queue_declare(f"{name}.dlq", durable=True)
            channel.queue_bind(f"{name}.dlq", f"{name}.dlx", "#")
            channel.queue_declare(name, durable=True, arguments={"x-dead-letter-exchange": f"{name}.dlx"})
            for pattern in ("order.#", "billing.#"):
                channel.queue_bind(name, name, pattern)
        finally:
            connection.close()
        return {"type": "rabbitmq", "url": RABBITMQ_URL, "exchange": name, "queue": name,
                "dead_letter_queue": f"{name}.dlq", "timeout_seconds": 10}

    def cleanup(self) -> None:
        connection, channel = rabbit_channel()
        try:
            for queue in (self.names, f"{self.names}.dlq"):
                channel.queue_delete(queue)
            for exchange in (self.names, f"{self.names}.dlx"):
                channel.exchange_delete(exchange)
        finally:
            connection.close()


KITS: dict[str, type[Kit]] = {"local": LocalKit, "sqs": SqsKit, "sqs-fifo": SqsFifoKit, "kafka": KafkaKit,
                              "rabbitmq": RabbitMqKit}


def selected_kinds() -> list[str]:
    """Every broker type unless WFBUS_TEST_BROKERS narrows it; a listed broker whose server is
    missing fails its tests (CI lists them all), it is never skipped."""
    wanted = os.environ.get("WFBUS_TEST_BROKERS", ",".join(KITS))
    return [kind.strip() for kind in wanted.split(",") if kind.strip()]

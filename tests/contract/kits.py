"""One kit per broker type: how to give a test its own fresh queues on the real server.

The contract tests only talk to wfbus; a kit only prepares topology (queues, topics, bindings)
the way an operator would have it. What a test may expect of the broker (order, unselected messages
kept, duplicates after a kill) is not written here: it is derived from the Capabilities the broker
type declares for these settings, so every broker, a plugin included, is held to exactly its claims.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from wfbus.brokers import broker_class
from wfbus.brokers.base import Capabilities

# the batch on the wire in the kill tests (`replay --batch 10`): what a kill may repeat where the
# broker neither transfers atomically nor recognises a resend
KILL_BATCH = 10

# whose order a test may check, for each declared ordering scope
_ORDER_EXPECTED = {
    "total": "total",
    "per-queue": "total",
    "per-key": "per-key",
    "per-group": "per-key",
    "none": "none",
}


class Kit:
    kind = "base"

    def __init__(self) -> None:
        self._settings: dict | None = None

    def install(self, site: Path, monkeypatch) -> None:
        """Make the broker type available (a plugin kit installs its package); built-in types: nothing."""

    def settings(self, tmp_path: Path) -> dict:
        """Fresh topology on the server and the broker settings that point at it (remembered: they
        decide the capabilities, e.g. an SQS FIFO queue)."""
        self._settings = self.create(tmp_path)
        return self._settings

    def create(self, tmp_path: Path) -> dict:
        raise NotImplementedError

    def cleanup(self) -> None:
        pass

    @property
    def capabilities(self) -> Capabilities:
        """What the broker type declares for these settings, read the way core code reads it."""
        if self._settings is None:
            raise AssertionError(
                f"{self.kind}: settings() must be called before capabilities are read"
            )
        cls = broker_class(self._settings["type"])
        return cls.capabilities_for(cls.settings_model(**self._settings))

    @property
    def order(self) -> str:
        """ "total": the read-back order is the publish order (per-queue ordering); "per-key": only one
        urn's events keep their order (SQS FIFO groups, Kafka partitions); "none": no order promised."""
        return _ORDER_EXPECTED[self.capabilities.ordering]

    @property
    def passes_over_unselected(self) -> bool:
        """A selective replay does not keep what it did not pick for a later replay."""
        return not self.capabilities.keeps_unselected

    @property
    def kill_duplicates_bound(self) -> int:
        """After kill -9 during a replay and a rerun: 0 where publish and removal are one transaction or
        the destination drops a resend; else at most the batch that was on the wire."""
        caps = self.capabilities
        return 0 if caps.atomic_transfer or caps.dedup_on_resend else KILL_BATCH


class LocalKit(Kit):
    kind = "local"

    def create(self, tmp_path: Path) -> dict:
        return {
            "type": "local",
            "path": str(tmp_path / "local.db"),
            "queue": f"q-{uuid.uuid4().hex[:8]}",
        }


def sqs_client():
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=SQS_ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


SQS_ENDPOINT = os.environ.get("WFBUS_TEST_SQS_ENDPOINT", "http://127.0.0.1:19324")


class SqsKit(Kit):
    """A main queue whose RedrivePolicy points at its DLQ, as an operator would set it up."""

    kind = "sqs"
    fifo = False
    max_receive_count = 10

    def create(self, tmp_path: Path) -> dict:
        client = sqs_client()
        suffix = ".fifo" if self.fifo else ""
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        fifo_attributes = {"FifoQueue": "true"} if self.fifo else {}
        dlq = client.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=fifo_attributes)[
            "QueueUrl"
        ]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        import json

        main = client.create_queue(
            QueueName=f"{name}{suffix}",
            Attributes={
                **fifo_attributes,
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_receive_count}
                ),
            },
        )["QueueUrl"]
        self.queue_urls = [main, dlq]
        return {
            "type": "sqs",
            "queue_url": main,
            "endpoint_url": SQS_ENDPOINT,
            "region": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "visibility_timeout": 4,
        }

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
    # unselected messages stay: the commit stops at them (replayed offsets above it in its metadata)

    def create(self, tmp_path: Path) -> dict:
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        kafka_create_topics(name, f"{name}.dlq")
        return {
            "type": "kafka",
            "bootstrap_servers": [KAFKA_BOOTSTRAP],
            "topic": name,
            "dead_letter_topic": f"{name}.dlq",
            "consumer_group": f"app-{name}",
            "replay_group": f"replay-{name}",
            "timeout_seconds": 10,
        }


class KafkaPythonKit(KafkaKit):
    """The same topology, published with the kafka-python driver (kind `kafka` is the default driver:
    librdkafka when confluent-kafka is installed)."""

    kind = "kafka-python"

    def create(self, tmp_path: Path) -> dict:
        return {**super().create(tmp_path), "driver": "kafka-python"}


RABBITMQ_URL = os.environ.get("WFBUS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5673/%2F")


def rabbit_channel():
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    return connection, connection.channel()


class RabbitMqKit(Kit):
    """An exchange, a work queue bound to `order.#`/`billing.#` that dead-letters into a DLQ."""

    kind = "rabbitmq"

    def create(self, tmp_path: Path) -> dict:
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        self.names = name
        connection, channel = rabbit_channel()
        try:
            channel.exchange_declare(name, "topic", durable=True)
            channel.exchange_declare(f"{name}.dlx", "topic", durable=True)
            channel.queue_declare(f"{name}.dlq", durable=True)
            channel.queue_bind(f"{name}.dlq", f"{name}.dlx", "#")
            channel.queue_declare(
                name, durable=True, arguments={"x-dead-letter-exchange": f"{name}.dlx"}
            )
            for pattern in ("order.#", "billing.#"):
                channel.queue_bind(name, name, pattern)
        finally:
            connection.close()
        return {
            "type": "rabbitmq",
            "url": RABBITMQ_URL,
            "exchange": name,
            "queue": name,
            "dead_letter_queue": f"{name}.dlq",
            "timeout_seconds": 10,
        }

    def cleanup(self) -> None:
        connection, channel = rabbit_channel()
        try:
            for queue in (self.names, f"{self.names}.dlq"):
                channel.queue_delete(queue)
            for exchange in (self.names, f"{self.names}.dlx"):
                channel.exchange_delete(exchange)
        finally:
            connection.close()


class PluginKit(Kit):
    """A fifth broker type written as a third-party plugin (tests/plugin_broker: `spool`, a directory of
    one file per message), installed as a package with an entry point, in this process and in every
    wfbus process a test starts (PYTHONPATH). The suite expects of it only what it declares."""

    kind = "plugin"

    def install(self, site: Path, monkeypatch) -> None:
        import plugin_broker

        from wfbus import brokers

        plugin_broker.install(site)
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        )
        brokers._entry_points.cache_clear()

    def create(self, tmp_path: Path) -> dict:
        return {
            "type": "spool",
            "path": str(tmp_path / "spool"),
            "queue": f"q-{uuid.uuid4().hex[:8]}",
        }


KITS: dict[str, type[Kit]] = {
    "local": LocalKit,
    "sqs": SqsKit,
    "sqs-fifo": SqsFifoKit,
    "kafka": KafkaKit,
    "kafka-python": KafkaPythonKit,
    "rabbitmq": RabbitMqKit,
    "plugin": PluginKit,
}


def selected_kinds() -> list[str]:
    """Every broker type unless WFBUS_TEST_BROKERS narrows it; a listed broker whose server is
    missing fails its tests (CI lists them all), it is never skipped."""
    wanted = os.environ.get("WFBUS_TEST_BROKERS", ",".join(KITS))
    return [kind.strip() for kind in wanted.split(",") if kind.strip()]

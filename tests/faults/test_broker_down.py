"""A broker that crashes during a large emit: wfbus stops promptly, --failed-out holds exactly the
unconfirmed events, and emitting that file once the broker is back completes the set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from conftest import REPO, write_config, write_jsonl
from contract.kits import KAFKA_BOOTSTRAP, RABBITMQ_URL, kafka_create_topics

CTL = str(REPO / "scripts" / "services" / "ctl")
TOTAL = 60_000


def ctl(*args: str, keep: bool = False) -> None:
    env = {**os.environ, **({"WFBUS_SERVICES_KEEP": "1"} if keep else {})}
    subprocess.run([CTL, *args], check=True, env=env, capture_output=True, timeout=240)


class RabbitMqTarget:
    service = "rabbitmq"

    def __init__(self) -> None:
        import pika

        self.name = f"wfbus-down-{uuid.uuid4().hex[:8]}"
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        channel = connection.channel()
        channel.exchange_declare(self.name, "topic", durable=True)
        channel.queue_declare(self.name, durable=True)
        channel.queue_bind(self.name, self.name, "#")
        connection.close()
        self.settings = {
            "type": "rabbitmq",
            "url": RABBITMQ_URL,
            "exchange": self.name,
            "queue": self.name,
            "timeout_seconds": 5,
        }

    def arrived(self) -> int:
        import pika

        try:
            connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        except pika.exceptions.AMQPConnectionError:
            return -1
        try:
            return connection.channel().queue_declare(self.name, passive=True).method.message_count
        finally:
            connection.close()

    def urns(self) -> Counter:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        channel = connection.channel()
        seen: Counter = Counter()
        while True:
            method, _, body = channel.basic_get(self.name, auto_ack=True)
            if method is None:
                break
            seen[json.loads(body)["urn"]] += 1
        channel.queue_delete(self.name)
        channel.exchange_delete(self.name)
        connection.close()
        return seen


class KafkaTarget:
    service = "kafka"
    driver: dict = {}  # the default driver (librdkafka when confluent-kafka is installed)
    # librdkafka sends 60k events in about a second, too few to stop the broker mid-emit reliably
    total = 400_000

    def __init__(self) -> None:
        self.name = f"wfbus-down-{uuid.uuid4().hex[:8]}"
        kafka_create_topics(self.name)
        self.settings = {
            "type": "kafka",
            "bootstrap_servers": [KAFKA_BOOTSTRAP],
            "topic": self.name,
            "timeout_seconds": 5,
            **self.driver,
        }

    def _consumer(self, **extra):
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=KAFKA_BOOTSTRAP,
            enable_auto_commit=False,
            request_timeout_ms=3000,
            **extra,
        )
        partitions = [
            TopicPartition(self.name, p)
            for p in sorted(consumer.partitions_for_topic(self.name) or ())
        ]
        return consumer, partitions

    def arrived(self) -> int:
        try:
            consumer, partitions = self._consumer()
        except Exception:  # noqa: BLE001 - the broker is down: nothing can be counted
            return -1
        try:
            return sum(consumer.end_offsets(partitions).values())
        finally:
            consumer.close()

    def urns(self) -> Counter:
        consumer, partitions = self._consumer(
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        seen: Counter = Counter()
        for record in consumer:
            seen[json.loads(record.value)["urn"]] += 1
            if all(consumer.position(p) >= ends[p] for p in partitions):
                break
        consumer.close()
        return seen


class KafkaPythonTarget(KafkaTarget):
    driver = {"driver": "kafka-python"}
    total = TOTAL


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [RabbitMqTarget, KafkaTarget, KafkaPythonTarget],
    ids=["rabbitmq", "kafka", "kafka-python"],
)
def test_broker_stopped_mid_emit_exits_promptly_and_failed_out_completes_the_set(
    tmp_path, wfbus, kind
):
    target = kind()
    total = getattr(target, "total", TOTAL)
    write_config(tmp_path / "wfbus.yaml", {"b": target.settings}, "b")
    write_jsonl(
        tmp_path / "e.jsonl", [{"topic": "order.submit", "urn": f"u{i:06d}"} for i in range(total)]
    )

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-o",
            "json",
            "emit",
            "e.jsonl",
            "--failed-out",
            "failed.jsonl",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    deadline = time.monotonic() + 60
    while target.arrived() < 3000 and time.monotonic() < deadline:
        time.sleep(0.1)
    ctl("kill", target.service)  # a crash: no goodbye to the clients
    stopped_at = time.monotonic()
    try:
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - stopped_at
        assert proc.returncode in (1, 5), err.decode()[-2000:]
        assert took < 60, (
            f"{took:.0f} s after the broker stopped"
        )  # prompt: bounded timeouts, no hang
        report = json.loads(out)
        failed = [
            json.loads(line)["urn"] for line in (tmp_path / "failed.jsonl").read_text().splitlines()
        ]
        assert 0 < report["published"] < total
        assert len(failed) == total - report["published"]  # exactly the unconfirmed ones
        assert len(set(failed)) == len(failed)
    finally:
        if proc.poll() is None:
            proc.kill()
        ctl("start", target.service, keep=True)

    assert wfbus("emit", "failed.jsonl").code == 0
    seen = target.urns()
    assert set(seen) == {f"u{i:06d}" for i in range(total)}  # none lost
    duplicates = sum(count - 1 for count in seen.values())
    print(
        f"{target.service} stopped mid-emit: exited {proc.returncode} {took:.1f} s after the stop; "
        f"published {report['published']}, failed-out {len(failed)}, lost 0, duplicates {duplicates}"
    )

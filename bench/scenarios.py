"""The benchmark scenarios: wfbus and the tool a user would otherwise reach for, on the same input."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml

from .runner import Bench, Row

KAFKA = os.environ.get("WFBUS_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
SQS = os.environ.get("WFBUS_TEST_SQS_ENDPOINT", "http://127.0.0.1:19324")
RABBIT = os.environ.get("WFBUS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5673/%2F")
KAFKA_JARS = (
    Path(os.environ.get("WFBUS_SERVICES_CACHE", Path.home() / ".cache" / "wfbus-services"))
    / "kafka"
    / "lib"
)


def _events(count: int) -> list[dict]:
    """About 200 bytes each, realistic order events."""
    return [
        {
            "topic": "order.submit",
            "urn": f"order-{i:07d}",
            "payload": {
                "customerId": f"cust-{i % 977:04d}",
                "total": round(10 + i % 500 * 0.37, 2),
                "currency": "EUR",
                "items": [{"sku": f"SKU-{i % 91:03d}", "qty": 1 + i % 3}],
            },
            "attempt": 0,
        }
        for i in range(count)
    ]


def _write_jsonl(bench: Bench, name: str, count: int) -> Path:
    path = bench.workdir / name
    if not path.exists():
        with path.open("w") as handle:
            for event in _events(count):
                handle.write(json.dumps(event, separators=(",", ":")) + "\n")
    return path


class Topology:
    """Bench queues and topics on the running servers, and a wfbus.yaml pointing at them."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.id = uuid.uuid4().hex[:8]
        self.brokers: dict[str, dict] = {
            "local": {"type": "local", "path": str(bench.workdir / "local.db")}
        }
        self.write()

    def write(self) -> None:
        path = self.bench.workdir / "wfbus.yaml"
        path.write_text(yaml.safe_dump({"brokers": self.brokers}))
        path.chmod(
            0o600
        )  # it holds the bench's SQS keys: as a user keeps it (else wfbus warns on every run)

    def kafka(self) -> dict:
        if "kafka" not in self.brokers:
            from kafka.admin import KafkaAdminClient, NewTopic

            topic = f"bench-{self.id}"
            admin = KafkaAdminClient(bootstrap_servers=KAFKA)
            admin.create_topics(
                [
                    NewTopic(topic, 3, 1),
                    NewTopic(f"{topic}.dlq", 3, 1),
                    NewTopic(f"{topic}.dlq-py", 3, 1),
                    NewTopic(f"{topic}.kcat", 3, 1),
                    NewTopic(f"{topic}.console", 3, 1),
                ]
            )
            admin.close()

            def drop() -> None:
                admin = KafkaAdminClient(bootstrap_servers=KAFKA)
                admin.delete_topics(
                    [topic, f"{topic}.dlq", f"{topic}.dlq-py", f"{topic}.kcat", f"{topic}.console"]
                )
                admin.close()

            self.bench.cleanups.append(drop)
            self.brokers["kafka"] = {
                "type": "kafka",
                "bootstrap_servers": [KAFKA],
                "topic": topic,
                "dead_letter_topic": f"{topic}.dlq",
                "replay_group": f"bench-replay-{self.id}",
            }
            # the same topics through the other driver (the default, `auto`, is librdkafka)
            self.brokers["kafka-python"] = {
                **self.brokers["kafka"],
                "driver": "kafka-python",
                "dead_letter_topic": f"{topic}.dlq-py",
                "replay_group": f"bench-replay-py-{self.id}",
            }
            self.write()
        return self.brokers["kafka"]

    def rabbit(self) -> dict:
        if "rabbitmq" not in self.brokers:
            import pika

            name = f"bench-{self.id}"
            connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
            channel = connection.channel()
            channel.exchange_declare(name, "topic", durable=True)
            channel.queue_declare(f"{name}.dlq", durable=True)
            channel.queue_declare(name, durable=True)
            channel.queue_bind(name, name, "#")
            connection.close()

            def drop() -> None:
                connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
                channel = connection.channel()
                channel.queue_delete(name)
                channel.queue_delete(f"{name}.dlq")
                channel.exchange_delete(name)
                connection.close()

            self.bench.cleanups.append(drop)
            self.brokers["rabbitmq"] = {
                "type": "rabbitmq",
                "url": RABBIT,
                "exchange": name,
                "queue": name,
                "dead_letter_queue": f"{name}.dlq",
            }
            self.write()
        return self.brokers["rabbitmq"]

    def sqs(self) -> dict:
        if "sqs" not in self.brokers:
            client = sqs_client()
            name = f"bench-{self.id}"
            dlq = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            main = client.create_queue(
                QueueName=name,
                Attributes={
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
                },
            )["QueueUrl"]
            self.bench.cleanups.append(
                lambda: [client.delete_queue(QueueUrl=u) for u in (main, dlq)]
            )
            self.brokers["sqs"] = {
                "type": "sqs",
                "queue_url": main,
                "endpoint_url": SQS,
                "region": "us-east-1",
                "aws_access_key_id": "bench",
                "aws_secret_access_key": "bench",
                "receive_wait_seconds": 0,
            }
            self.sqs_urls = (main, dlq)
            self.write()
        return self.brokers["sqs"]


def sqs_client():
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=SQS,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _topology(bench: Bench) -> Topology:
    if not hasattr(bench, "_topology"):
        bench._topology = Topology(bench)  # type: ignore[attr-defined]
    return bench._topology  # type: ignore[attr-defined]


def _repeat_runs(bench: Bench, runs: int, action: Callable[[], object]) -> float:
    """Median seconds of one run, over `runs` runs (for one-event start-up figures)."""
    import statistics

    return statistics.median(bench.clock(action) for _ in range(runs))


# -- scenarios -------------------------------------------------------------------------------
def startup(bench: Bench) -> None:
    topo = _topology(bench)
    runs = 3 if bench.scale < 0.1 else 10
    bench.compare(
        "start-up: --help",
        {
            "wfbus --help": (1, lambda: _repeat_runs(bench, runs, lambda: bench.wfbus("--help"))),
            "python3 -c pass (interpreter floor)": (
                1,
                lambda: _repeat_runs(
                    bench, runs, lambda: bench.run([sys.executable, "-c", "pass"])
                ),
            ),
        },
    )
    one = ["--topic", "order.submit", "--urn", "order-1", "--payload", '{"total":1.5}']
    bench.compare(
        "start-up: one-event emit, local",
        {
            "wfbus emit -b local": (
                1,
                lambda: _repeat_runs(bench, runs, lambda: bench.wfbus("emit", "-b", "local", *one)),
            ),
        },
    )
    kafka = topo.kafka()
    body = json.dumps(
        {"topic": "order.submit", "urn": "order-1", "payload": {"total": 1.5}, "attempt": 0}
    )
    contenders = {
        "wfbus emit -b kafka": (
            1,
            lambda: _repeat_runs(bench, runs, lambda: bench.wfbus("emit", "-b", "kafka", *one)),
        )
    }
    if shutil.which("kcat"):
        contenders["kcat -P"] = (
            1,
            lambda: _repeat_runs(
                bench,
                runs,
                lambda: bench.run(
                    ["kcat", "-P", "-b", KAFKA, "-t", kafka["topic"], "-K", "\t", "-X", "acks=all"],
                    stdin=f"order-1\t{body}\n".encode(),
                ),
            ),
        )
    bench.compare("start-up: one-event emit, Kafka", contenders)
    rabbit = topo.rabbit()
    contenders = {
        "wfbus emit -b rabbitmq": (
            1,
            lambda: _repeat_runs(bench, runs, lambda: bench.wfbus("emit", "-b", "rabbitmq", *one)),
        )
    }
    if shutil.which("amqp-publish"):
        contenders["amqp-publish"] = (
            1,
            lambda: _repeat_runs(
                bench,
                runs,
                lambda: bench.run(
                    [
                        "amqp-publish",
                        "--url",
                        RABBIT.rsplit("/", 1)[0],
                        "-e",
                        rabbit["exchange"],
                        "-r",
                        "order.submit",
                        "-p",
                        "-C",
                        "application/json",
                        "-b",
                        body,
                    ]
                ),
            ),
        )
    bench.compare("start-up: one-event emit, RabbitMQ", contenders)
    sqs = topo.sqs()
    contenders = {
        "wfbus emit -b sqs": (
            1,
            lambda: _repeat_runs(bench, runs, lambda: bench.wfbus("emit", "-b", "sqs", *one)),
        )
    }
    if shutil.which("aws"):
        contenders["aws sqs send-message"] = (
            1,
            lambda: _repeat_runs(
                bench,
                runs,
                lambda: bench.run(
                    [
                        "env",
                        "AWS_ACCESS_KEY_ID=bench",
                        "AWS_SECRET_ACCESS_KEY=bench",
                        "aws",
                        "sqs",
                        "send-message",
                        "--endpoint-url",
                        SQS,
                        "--region",
                        "us-east-1",
                        "--queue-url",
                        sqs["queue_url"],
                        "--message-body",
                        body,
                    ]
                ),
            ),
        )
    bench.compare("start-up: one-event emit, SQS", contenders)


def validate(bench: Bench) -> None:
    count = bench.n(1_000_000, floor=1000)
    path = _write_jsonl(bench, f"validate-{count}.jsonl", count)
    floor = "import json,sys\nfor line in open(sys.argv[1],'rb'): json.loads(line)"
    bench.compare(
        "validate only",
        {
            "wfbus validate": (
                count,
                lambda: bench.clock(lambda: bench.wfbus("validate", str(path))),
            ),
            "python json.loads loop (parse only, no checks)": (
                count,
                lambda: bench.clock(lambda: bench.run([sys.executable, "-c", floor, str(path)])),
            ),
        },
        repeat=max(1, bench.repeat - 1),
    )


def memory(bench: Bench) -> None:
    small, large = bench.n(10_000, floor=100), bench.n(1_000_000, floor=1000)
    for count in (small, large):
        path = _write_jsonl(bench, f"memory-{count}.jsonl", count)
        (bench.workdir / "mem.db").unlink(missing_ok=True)
        started = time.perf_counter()
        rss = bench.peak_rss_kb(
            [
                sys.executable,
                "-m",
                "wfbus",
                "--config",
                str(_memory_config(bench)),
                "emit",
                str(path),
            ]
        )
        bench.rows.append(
            Row(
                "memory: peak RSS of emit (local)",
                f"wfbus emit {count:,} events",
                count,
                time.perf_counter() - started,
                1,
                peak_rss_kb=rss,
            )
        )
        print(f"   {count:>9} events: peak RSS {rss / 1024:.1f} MiB", file=sys.stderr)


def peek_memory(bench: Bench) -> None:
    """Peak RSS of `peek --all` (JSON lines and the text table) of the local broker: 10k vs 1M messages."""
    small, large = bench.n(10_000, floor=100), bench.n(1_000_000, floor=1000)
    config = _memory_config(bench)
    for count in (small, large):
        path = _write_jsonl(bench, f"memory-{count}.jsonl", count)
        (bench.workdir / "mem.db").unlink(missing_ok=True)
        bench.run([sys.executable, "-m", "wfbus", "--config", str(config), "emit", str(path)])
        for label, extra in (("-o jsonl", ["-o", "jsonl"]), ("text", [])):
            started = time.perf_counter()
            rss = bench.peak_rss_kb(
                [sys.executable, "-m", "wfbus", "--config", str(config), "peek", "--all", *extra]
            )
            bench.rows.append(
                Row(
                    f"memory: peak RSS of peek --all {label} (local)",
                    f"wfbus peek --all {label}, {count:,} messages",
                    count,
                    time.perf_counter() - started,
                    1,
                    peak_rss_kb=rss,
                )
            )
            print(
                f"   peek {label} {count:>9} messages: peak RSS {rss / 1024:.1f} MiB",
                file=sys.stderr,
            )


def _memory_config(bench: Bench) -> Path:
    path = bench.workdir / "memory.yaml"
    path.write_text(
        yaml.safe_dump({"brokers": {"m": {"type": "local", "path": str(bench.workdir / "mem.db")}}})
    )
    return path


def _kafka_python_producer_settings() -> dict:
    """The settings wfbus's kafka-python driver uses, read from it: the bare loop stays its fair
    floor when the driver is tuned."""
    from wfbus.brokers.kafka_publish_python import BATCH_BYTES, LINGER_MS

    return {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": LINGER_MS,
        "batch_size": BATCH_BYTES,
        "max_in_flight_requests_per_connection": 5,
    }


def _kafka_python_loop(topic: str, keyed: list[tuple[bytes, bytes]]) -> float:
    """A bare kafka-python producer: send every record, flush, every future checked (the same work)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=KAFKA, **_kafka_python_producer_settings())
    started = time.perf_counter()
    futures = [producer.send(topic, key=key, value=value) for key, value in keyed]
    producer.flush()
    failed = sum(1 for f in futures if f.failed())
    elapsed = time.perf_counter() - started
    producer.close()
    if failed:
        raise RuntimeError(f"bare kafka-python loop: {failed} records failed")
    return elapsed


def _librdkafka_loop(topic: str, keyed: list[tuple[bytes, bytes]]) -> float:
    """A bare confluent-kafka producer with a delivery callback per message, idempotent, acks=all."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": KAFKA, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    failed = []
    started = time.perf_counter()
    for key, value in keyed:
        while True:
            try:
                producer.produce(
                    topic,
                    value,
                    key,
                    on_delivery=lambda err, _msg: failed.append(err) if err else None,
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    elapsed = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"bare librdkafka loop: {len(failed)} records failed")
    return elapsed


def bulk_kafka(bench: Bench) -> None:
    topo = _topology(bench)
    kafka = topo.kafka()
    count = bench.n(100_000, floor=200)
    path = _write_jsonl(bench, f"bulk-{count}.jsonl", count)
    keyed_path = bench.workdir / f"bulk-{count}.keyed"
    records = []
    with path.open("rb") as source:
        for line in source:
            records.append((json.loads(line)["urn"].encode(), line.rstrip(b"\n")))
    if not keyed_path.exists():
        keyed_path.write_bytes(b"".join(key + b"\t" + value + b"\n" for key, value in records))
    contenders = {
        "wfbus emit, librdkafka driver (acks=all, idempotent)": (
            count,
            lambda: bench.clock(lambda: bench.wfbus("emit", "-b", "kafka", str(path))),
        ),
        "wfbus emit, kafka-python driver (acks=all, idempotent)": (
            count,
            lambda: bench.clock(lambda: bench.wfbus("emit", "-b", "kafka-python", str(path))),
        ),
        "bare kafka-python producer loop (same settings)": (
            count,
            lambda: _kafka_python_loop(f"{kafka['topic']}.console", records),
        ),
        "bare confluent-kafka producer loop (idempotent)": (
            count,
            lambda: _librdkafka_loop(f"{kafka['topic']}.console", records),
        ),
    }
    if shutil.which("kcat"):
        contenders["kcat -P -K (acks=all, idempotent)"] = (
            count,
            lambda: bench.clock(
                lambda: bench.run(
                    [
                        "kcat",
                        "-P",
                        "-b",
                        KAFKA,
                        "-t",
                        f"{kafka['topic']}.kcat",
                        "-K",
                        "\t",
                        "-X",
                        "acks=all",
                        "-X",
                        "enable.idempotence=true",
                        "-l",
                        str(keyed_path),
                    ]
                )
            ),
        )
    bench.compare("bulk emit: Kafka, 3 partitions", contenders, repeat=max(1, bench.repeat - 1))
    rss = bench.peak_rss_kb([sys.executable, "-m", "wfbus", "emit", "-b", "kafka", str(path)])
    bench.rows[-len(contenders)].peak_rss_kb = rss


def bulk_rabbit(bench: Bench) -> None:
    import pika

    topo = _topology(bench)
    rabbit = topo.rabbit()
    count = bench.n(50_000, floor=200)
    naive = min(count, bench.n(2_000, floor=50))
    subprocess_count = min(count, bench.n(1_000, floor=20))
    path = _write_jsonl(bench, f"bulk-{count}.jsonl", count)
    bodies = [line.rstrip(b"\n") for line in path.read_bytes().splitlines()]

    def purge() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
        connection.channel().queue_purge(rabbit["queue"])
        connection.close()

    def pika_publish(n: int, confirms: bool) -> float:
        connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
        channel = connection.channel()
        if confirms:
            channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        started = time.perf_counter()
        for body in bodies[:n]:
            channel.basic_publish(rabbit["exchange"], "order.submit", body, properties)
        connection.process_data_events(0)
        elapsed = time.perf_counter() - started
        connection.close()
        return elapsed

    contenders = {
        "wfbus emit (persistent, confirms, mandatory)": (
            count,
            lambda: bench.clock(lambda: bench.wfbus("emit", "-b", "rabbitmq", str(path))),
        ),
        "pika, one sync confirm per message": (naive, lambda: pika_publish(naive, True)),
        "pika, no confirms (ceiling)": (count, lambda: pika_publish(count, False)),
    }
    if shutil.which("amqp-publish"):

        def amqp_publish() -> float:
            started = time.perf_counter()
            for body in bodies[:subprocess_count]:
                bench.run(
                    [
                        "amqp-publish",
                        "--url",
                        RABBIT.rsplit("/", 1)[0],
                        "-e",
                        rabbit["exchange"],
                        "-r",
                        "order.submit",
                        "-p",
                        "-b",
                        body.decode(),
                    ]
                )
            return time.perf_counter() - started

        contenders["amqp-publish, one process per event"] = (subprocess_count, amqp_publish)
    bench.compare("bulk emit: RabbitMQ", contenders, setup=purge, repeat=max(1, bench.repeat - 1))
    purge()


def bulk_sqs(bench: Bench) -> None:
    topo = _topology(bench)
    sqs = topo.sqs()
    client = sqs_client()
    count = bench.n(10_000, floor=100)
    loop = min(count, bench.n(1_000, floor=20))
    cli_calls = max(1, min(count, bench.n(500, floor=20)) // 10)
    path = _write_jsonl(bench, f"bulk-{count}.jsonl", count)
    bodies = [line.decode() for line in path.read_bytes().splitlines()]

    def purge() -> None:
        client.purge_queue(QueueUrl=sqs["queue_url"])

    def boto3_loop() -> float:
        started = time.perf_counter()
        for body in bodies[:loop]:
            client.send_message(QueueUrl=sqs["queue_url"], MessageBody=body)
        return time.perf_counter() - started

    def boto3_threads() -> float:
        """The fair peer: send_message_batch of 10 from 8 threads (what a tuned script does)."""
        from concurrent.futures import ThreadPoolExecutor

        chunks = [bodies[i : i + 10] for i in range(0, count, 10)]

        def send(chunk: list[str]) -> int:
            answer = client.send_message_batch(
                QueueUrl=sqs["queue_url"],
                Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)],
            )
            return len(answer.get("Failed", []))

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            failed = sum(pool.map(send, chunks))
        elapsed = time.perf_counter() - started
        if failed:
            raise RuntimeError(f"boto3 threads: {failed} messages failed")
        return elapsed

    contenders = {
        "wfbus emit": (
            count,
            lambda: bench.clock(lambda: bench.wfbus("emit", "-b", "sqs", str(path))),
        ),
        "boto3 send_message_batch, 8 threads": (count, boto3_threads),
        "boto3 loop, one SendMessage per event": (loop, boto3_loop),
    }
    if shutil.which("aws"):

        def aws_cli() -> float:
            started = time.perf_counter()
            for call in range(cli_calls):
                entries = [
                    {"Id": str(i), "MessageBody": b}
                    for i, b in enumerate(bodies[call * 10 : call * 10 + 10])
                ]
                bench.run(
                    [
                        "env",
                        "AWS_ACCESS_KEY_ID=bench",
                        "AWS_SECRET_ACCESS_KEY=bench",
                        "aws",
                        "sqs",
                        "send-message-batch",
                        "--endpoint-url",
                        SQS,
                        "--region",
                        "us-east-1",
                        "--queue-url",
                        sqs["queue_url"],
                        "--entries",
                        json.dumps(entries),
                    ]
                )
            return time.perf_counter() - started

        contenders["aws sqs send-message-batch (10 per call)"] = (cli_calls * 10, aws_cli)
    bench.compare("bulk emit: SQS", contenders, setup=purge, repeat=max(1, bench.repeat - 1))
    purge()


def replay(bench: Bench) -> None:
    topo = _topology(bench)
    count = bench.n(10_000, floor=100)
    path = _write_jsonl(bench, f"bulk-{count}.jsonl", count)
    for broker, prepare in (
        ("local", lambda: None),
        ("kafka", topo.kafka),
        ("kafka-python", topo.kafka),
        ("rabbitmq", topo.rabbit),
        ("sqs", topo.sqs),
    ):
        prepare()

        def seed(broker: str = broker) -> None:
            if broker == "sqs":
                client = sqs_client()
                client.purge_queue(QueueUrl=topo.sqs_urls[0])
                client.purge_queue(QueueUrl=topo.sqs_urls[1])
            if broker == "rabbitmq":
                import pika

                connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
                connection.channel().queue_purge(topo.brokers["rabbitmq"]["queue"])
                connection.close()
            bench.wfbus("emit", "-b", broker, "--dead-letter", str(path))

        contenders = {
            f"wfbus replay ({broker})": (
                count,
                lambda broker=broker: bench.clock(
                    lambda: bench.wfbus("replay", "-b", broker, "--yes", "--batch", "500")
                ),
            )
        }
        if broker == "sqs":
            contenders["SQS native StartMessageMoveTask (ElasticMQ)"] = (
                count,
                lambda: _native_move(topo),
            )
        bench.compare(
            f"replay 10k-style DLQ: {broker}",
            contenders,
            setup=seed,
            repeat=max(1, bench.repeat - 1),
        )


def _native_move(topo: Topology) -> float:
    client = sqs_client()
    main, dlq = topo.sqs_urls
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    started = time.perf_counter()
    client.start_message_move_task(SourceArn=arn)
    while True:
        tasks = client.list_message_move_tasks(SourceArn=arn).get("Results", [])
        if tasks and tasks[0].get("Status") in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    left = int(
        client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    if tasks[0].get("Status") != "COMPLETED" or left:
        raise RuntimeError(f"native move task did not move everything: {tasks[0]}, {left} left")
    return elapsed


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "startup": startup,
    "validate": validate,
    "bulk_kafka": bulk_kafka,
    "bulk_rabbit": bulk_rabbit,
    "bulk_sqs": bulk_sqs,
    "replay": replay,
    "memory": memory,
    "peek_memory": peek_memory,
}

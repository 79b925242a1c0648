"""The two Kafka drivers (`driver: auto | librdkafka | kafka-python`) on a real broker: which one
runs, that they put the same bytes in the same partitions (either one can read or replay what the
other wrote), that pipelined batches keep the order per key, and that one record the topic refuses
fails alone while its batch and the batches in flight around it are confirmed.

Inputs are generated from a printed seed (set WFBUS_TEST_SEED to replay one)."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import Counter, deque
from pathlib import Path

import pytest
from conftest import REPO, run_process, write_config, write_jsonl
from contract.kits import KAFKA_BOOTSTRAP, kafka_create_topics

from brokers.kafka_drivers import SETTINGS, selected_drivers
from brokers.test_kafka_fidelity import consume_all, foreign_records, produce, replay

pytestmark = pytest.mark.broker("kafka")

DRIVER_OF = {"kafka": "librdkafka", "kafka-python": "kafka-python"}  # test kind -> its driver


def seeded(name: str) -> random.Random:
    seed = int(os.environ.get("WFBUS_TEST_SEED") or random.randrange(1 << 30))
    print(f"{name}: seed {seed} (WFBUS_TEST_SEED={seed} reruns it)")
    return random.Random(seed)


def topics(partitions: int = 3, **configs: str) -> str:
    name = f"wfbus-drv-{uuid.uuid4().hex[:10]}"
    if configs:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP)
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
        admin.close()
    else:
        kafka_create_topics(name, f"{name}.dlq", partitions=partitions)
    return name


def settings_for(name: str, **extra) -> dict:
    return {
        "type": "kafka",
        "bootstrap_servers": [KAFKA_BOOTSTRAP],
        "topic": name,
        "dead_letter_topic": f"{name}.dlq",
        "replay_group": f"rp-{name}",
        "timeout_seconds": 10,
        **extra,
    }


def broker(settings: dict, tmp_path: Path):
    from wfbus.brokers.kafka import KafkaBroker, KafkaSettings

    return KafkaBroker("k", KafkaSettings(**settings), tmp_path)


# -- which driver runs --------------------------------------------------------------------------


def test_auto_picks_librdkafka_and_each_setting_publishes_with_its_driver(wfbus, tmp_path):
    from wfbus.brokers.kafka_publish_librdkafka import LibrdkafkaPublisher
    from wfbus.brokers.kafka_publish_python import KafkaPythonPublisher

    name = topics()
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "auto": settings_for(name),
            "rd": settings_for(name, driver="librdkafka"),
            "kp": settings_for(name, driver="kafka-python"),
        },
    )
    rows = {row["name"]: row["target"] for row in wfbus("-o", "json", "brokers").json()["brokers"]}
    assert "driver librdkafka" in rows["auto"] and "driver librdkafka" in rows["rd"]
    assert "driver kafka-python" in rows["kp"]

    from wfbus.brokers.base import OutgoingMessage

    for driver, publisher_class in (
        ("auto", LibrdkafkaPublisher),
        ("librdkafka", LibrdkafkaPublisher),
        ("kafka-python", KafkaPythonPublisher),
    ):
        with broker(settings_for(name, driver=driver), tmp_path) as b:
            message = OutgoingMessage(
                body=driver.encode(), topic="t", key=driver, event_id="e", headers={}
            )
            assert [d.ok for d in b.publish([message])] == [True]
            assert type(b.publisher) is publisher_class, driver
    assert sorted(r.value for r in consume_all(name)) == [b"auto", b"kafka-python", b"librdkafka"]


BLOCK_CONFLUENT = """\
import sys

class _NoConfluentKafka:
    def find_spec(self, name, path=None, target=None):
        if name == "confluent_kafka" or name.startswith("confluent_kafka."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoConfluentKafka())
"""


def test_librdkafka_named_but_not_installed_is_a_config_error_and_auto_falls_back(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_CONFLUENT)
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    name = topics()
    write_config(
        tmp_path / "wfbus.yaml",
        {"rd": settings_for(name, driver="librdkafka"), "auto": settings_for(name)},
    )
    result = run_process("emit", "-b", "rd", "--topic", "t", "--urn", "u", cwd=tmp_path, env=env)
    assert result.code == 4, result.err  # a config error
    assert "confluent-kafka" in result.err and "driver: kafka-python" in result.err
    assert "Traceback" not in result.err

    write_config(tmp_path / "wfbus.yaml", {"auto": settings_for(name)})
    result = run_process("-o", "json", "brokers", cwd=tmp_path, env=env)
    [row] = json.loads(result.out)["brokers"]
    assert "driver kafka-python" in row["target"]
    result = run_process(
        "emit", "-b", "auto", "--topic", "t", "--urn", "fell-back", cwd=tmp_path, env=env
    )
    assert result.code == 0, result.err
    assert [r.key for r in consume_all(name)] == [b"fell-back"]


# -- the same records whichever driver wrote them -----------------------------------------------


def _as_read(record) -> tuple:
    return record.key, record.value, tuple(record.headers)


def test_both_drivers_emit_the_same_bytes_to_the_same_partitions(wfbus, tmp_path):
    """Key, value and headers byte for byte, and the partition of each key (murmur2, as the Java
    client and kafka-python choose it): switching drivers keeps a key's records in one partition."""
    rng = seeded("emit-fidelity")
    urns = [
        lambda: f"urn:o:{rng.randrange(40)}",
        lambda: "ünï-©ode",
        lambda: f"k{rng.randrange(10**9)}",
    ]
    events = [
        {
            "topic": rng.choice(["order.submit", "billing.run"]),
            "attempt": rng.randrange(4),
            "urn": rng.choice(urns)(),
            "payload": {"i": i, "text": "x" * rng.randrange(0, 3000)},
        }
        for i in range(rng.randrange(200, 700))
    ]
    write_jsonl(tmp_path / "e.jsonl", events)
    written = {}
    for driver in ("librdkafka", "kafka-python"):
        name = topics(partitions=5)
        write_config(tmp_path / "wfbus.yaml", {"k": settings_for(name, driver=driver)}, "k")
        assert wfbus("emit", "e.jsonl").code == 0
        written[driver] = {(r.partition, *_as_read(r)) for r in consume_all(name)}
        assert len(consume_all(name)) == len(events)
    assert written["librdkafka"] == written["kafka-python"]


@pytest.mark.parametrize(
    "writer,replayer", [("librdkafka", "kafka-python"), ("kafka-python", "librdkafka")]
)
def test_what_one_driver_wrote_the_other_reads_and_replays_byte_for_byte(
    wfbus, tmp_path, writer, replayer
):
    """Events emitted to the dead-letter topic with one driver, plus foreign records (null keys,
    tombstones, repeated binary headers, null header values), are peeked and replayed with the
    other: every record arrives once with its key, value and headers (a null header value stays
    null with librdkafka; kafka-python can only send it empty)."""
    from confluent_kafka import Producer

    rng = seeded(f"{writer}->{replayer}")
    name = topics()
    dlq = f"{name}.dlq"
    write_config(
        tmp_path / "wfbus.yaml",
        {"w": settings_for(name, driver=writer), "r": settings_for(name, driver=replayer)},
    )
    events = [
        {
            "topic": "order.submit",
            "urn": f"u{rng.randrange(12)}",
            "attempt": rng.randrange(3),
            "payload": {"i": i},
        }
        for i in range(rng.randrange(20, 80))
    ]
    write_jsonl(tmp_path / "e.jsonl", events)
    assert wfbus("emit", "-b", "w", "--dead-letter", "e.jsonl").code == 0
    produce(dlq, foreign_records(rng, rng.randrange(20, 60)))
    nulls = Producer({"bootstrap.servers": KAFKA_BOOTSTRAP, "enable.idempotence": True})
    for i in range(rng.randrange(3, 9)):  # null header values, which only librdkafka can write
        nulls.produce(
            dlq,
            value=f"null-header-{i}".encode(),
            key=rng.choice([None, b"nk"]),
            headers=[("x-null", None), ("x-bin", bytes([i, 0, 255])), ("x-null", None)],
        )
    assert nulls.flush(30) == 0
    dead = consume_all(dlq)

    peeked = wfbus("-o", "json", "peek", "-b", "r", "--dead-letter", "--all", "--force")
    assert peeked.code == 1, peeked.err  # foreign records are left out of a json backup (and said)
    mine = [e["payload"]["i"] for e in json.loads(peeked.out) if e["urn"].startswith("u")]
    assert sorted(mine) == [e["payload"]["i"] for e in events]
    rows = wfbus("-o", "json", "depth", "-b", "r").json()["queues"]
    lag = [q for q in rows if q["role"] == "dead-letter"]
    assert lag[0]["ready"] == len(dead)

    assert replay(wfbus, "-b", "r", "--batch", str(rng.randrange(3, 40)))["replayed"] == len(dead)
    replayed_from = ("replayed-from", f"r:{dlq}".encode())

    def sent_as(headers) -> tuple:
        if replayer == "kafka-python":
            headers = [(k, b"" if v is None else v) for k, v in headers]
        return (*headers, replayed_from)

    expected = Counter((r.key, r.value, sent_as(r.headers)) for r in dead)
    assert Counter(_as_read(r) for r in consume_all(name)) == expected
    if replayer == "librdkafka":
        assert any(v is None for r in consume_all(name) for _, v in r.headers)  # the null survived


# -- pipelining ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", selected_drivers())
def test_batches_in_flight_keep_the_order_per_key_across_batch_boundaries(tmp_path, kind):
    """Up to `pipeline_window` batches submitted before the oldest answer is read; every message is
    confirmed by its own delivery report, arrives exactly once, and each key's messages arrive in
    the order they were submitted, however batches cut through them (a plain consumer counts)."""
    from wfbus.brokers.base import OutgoingMessage

    rng = seeded(f"pipeline-{kind}")
    name = topics(partitions=rng.choice([1, 3, 6]))
    keys = [f"key-{i}" for i in range(rng.randrange(3, 40))]
    total = rng.randrange(6000, 15000)
    messages = [
        OutgoingMessage(
            body=json.dumps({"seq": i, "pad": "p" * rng.choice([0, 10, 200, 5000])}).encode(),
            topic="t",
            key=rng.choice(keys),
            event_id=str(i),
            headers={"seq": str(i)},
        )
        for i in range(total)
    ]
    with broker(settings_for(name, **SETTINGS[kind]), tmp_path) as b:
        assert b.pipeline_window >= 2 and b.driver == DRIVER_OF[kind]
        in_flight: deque = deque()
        answered = []
        start = 0
        while start < total:
            size = rng.choice([1, 7, rng.randrange(1, 3000), b.publish_batch_size])
            in_flight.append(b.submit(messages[start : start + size]))
            start += size
            if len(in_flight) == b.pipeline_window:
                answered.extend(in_flight.popleft().result())
        while in_flight:
            answered.extend(in_flight.popleft().result())
    # one answer per message, in order
    assert [d.message.event_id for d in answered] == [m.event_id for m in messages]
    assert all(d.ok for d in answered), [d.error for d in answered if not d.ok][:3]

    records = consume_all(name)
    seqs = [json.loads(r.value)["seq"] for r in records]
    assert sorted(seqs) == list(range(total))  # every message exactly once
    per_key: dict = {}
    for record in records:  # partition then offset order: a key's records are in one partition
        per_key.setdefault(record.key.decode(), []).append(json.loads(record.value)["seq"])
    for key, got in per_key.items():
        assert got == sorted(got), f"{key} out of order: {got[:20]}"


@pytest.mark.parametrize("kind", selected_drivers())
def test_a_record_the_topic_refuses_fails_alone_among_batches_in_flight(tmp_path, kind):
    """The topic takes records of at most 4 KiB (max.message.bytes), far below a producer batch: the
    few larger records fail with the broker's reason, each alone (librdkafka; kafka-python's
    producer fails every later record too); every record confirmed by its report is at the
    destination, and nothing that was reported failed is there."""
    from wfbus.brokers.base import OutgoingMessage

    rng = seeded(f"refused-{kind}")
    name = topics(partitions=2, **{"max.message.bytes": "4096"})
    total = rng.randrange(800, 2500)
    big = set(rng.sample(range(total), rng.randrange(1, 6)))
    messages = [
        OutgoingMessage(
            body=json.dumps(
                {"seq": i, "pad": "b" * (6000 if i in big else rng.randrange(400))}
            ).encode(),
            topic="t",
            key=f"k{rng.randrange(9)}",
            event_id=str(i),
            headers={},
        )
        for i in range(total)
    ]
    answered = []
    with broker({**settings_for(name, **SETTINGS[kind]), "timeout_seconds": 5}, tmp_path) as b:
        in_flight: deque = deque()
        for start in range(0, total, 300):
            in_flight.append(b.submit(messages[start : start + 300]))
            if len(in_flight) == b.pipeline_window:
                answered.extend(in_flight.popleft().result())
        while in_flight:
            answered.extend(in_flight.popleft().result())
    failed = {int(d.message.event_id) for d in answered if not d.ok}
    print(f"{kind}: {len(big)} too large, {len(failed)} failed")
    assert big <= failed
    assert all("TooLarge" in (d.error or "") for d in answered if int(d.message.event_id) in big)
    arrived = Counter(json.loads(r.value)["seq"] for r in consume_all(name))
    assert set(arrived) == set(range(total)) - failed and max(arrived.values()) == 1
    if kind == "kafka":  # librdkafka: the refused records fail alone
        assert failed == big


# -- the librdkafka publisher on its own: connection set-up, SASL, TLS -----------------------------


def test_librdkafka_reports_an_unreachable_cluster_a_refused_login_and_an_unknown_ca_in_seconds(
    tmp_path,
):
    """The publisher alone (no kafka-python call before it): each failure is BrokerUnavailable
    within about connect_timeout_seconds (2 s; timeout_seconds is 30 here), said for what it is,
    and the password never appears; the right password and the right CA publish."""
    import time

    from wfbus.brokers.base import OutgoingMessage
    from wfbus.errors import BrokerUnavailable

    name = topics()
    sasl_at = os.environ.get("WFBUS_TEST_KAFKA_SASL_BOOTSTRAP", "127.0.0.1:19094")
    ssl_at = os.environ.get("WFBUS_TEST_KAFKA_SSL_BOOTSTRAP", "127.0.0.1:19095")
    sasl = {
        "bootstrap_servers": [sasl_at],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "wfbus",
    }
    ssl = {"bootstrap_servers": [ssl_at], "security_protocol": "SSL"}
    failing = {
        "no Kafka broker reachable": {"bootstrap_servers": ["127.0.0.1:9"]},
        "authentication failed": {**sasl, "sasl_password": "not-the-password"},
        "ssl_cafile": ssl,  # the system CAs do not know the test CA
    }
    message = OutgoingMessage(body=b"x", topic="t", key="k", event_id="e", headers={})
    for said, extra in failing.items():
        settings = {
            "type": "kafka",
            "topic": name,
            "timeout_seconds": 30,
            "driver": "librdkafka",
            **extra,
        }
        with broker(settings, tmp_path) as b:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as caught:
                b.publish([message])
            took = time.monotonic() - started
        text = f"{caught.value.message} {caught.value.hint}"
        assert said in text and "not-the-password" not in text, text
        assert took < 8, f"{said}: {took:.1f} s"
    for extra in (
        {**sasl, "sasl_password": "wfbus-secret"},
        {**ssl, "ssl_cafile": os.environ["WFBUS_TEST_KAFKA_CA"]},
    ):
        settings = {
            "type": "kafka",
            "topic": name,
            "timeout_seconds": 10,
            "driver": "librdkafka",
            **extra,
        }
        with broker(settings, tmp_path) as b:
            assert [d.ok for d in b.publish([message])] == [True]
    assert len(consume_all(name)) == 2


# -- naming the destination (the key of an emit's resume record) -----------------------------------


def _delete_topic(name: str) -> None:
    import time

    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=15000)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # deletion is asynchronous: wait until creating works
        try:
            kafka_create_topics(name, partitions=3)
            return
        except Exception:  # noqa: BLE001 - TopicAlreadyExists while the deletion completes
            time.sleep(0.5)
    raise AssertionError(f"topic {name} could not be recreated")


def test_both_drivers_name_a_destination_alike_and_a_recreated_topic_is_another(tmp_path):
    """`emit --resume` finds an interrupted emit by the destination's identity (cluster id, topic,
    topic id): whichever driver ran first, the other must name the same topic the same way, and a
    topic deleted and created again under the same name must be another destination."""
    from wfbus.errors import BrokerUnavailable

    name = topics()

    def identities() -> dict[str, tuple[str, str, str]]:
        out = {}
        for driver in ("librdkafka", "kafka-python"):
            templated = {**settings_for(name, driver=driver), "topic": None}
            templated["topic_template"] = name + "-{topic}"
            with broker(settings_for(name, driver=driver), tmp_path) as b:
                main = b.destination_identity()
                dead = b.destination_identity(dead_letter=True)
            with broker(templated, tmp_path) as b:
                out[driver] = (main, dead, b.destination_identity())
        return out

    before = identities()
    assert before["librdkafka"] == before["kafka-python"], before
    main, dead, templated = before["librdkafka"]
    assert main.count(":") == 3 and main.split(":")[2] == name, main  # kafka:cluster:topic:id
    assert dead.split(":")[2] == f"{name}.dlq" and dead != main
    assert templated.count(":") == 2, templated  # no single topic id to name

    _delete_topic(name)
    after = identities()
    assert after["librdkafka"] == after["kafka-python"], after
    assert after["librdkafka"][0] != main  # same name, new topic id: another destination
    assert after["librdkafka"][1:] == (dead, templated)

    for driver in ("librdkafka", "kafka-python"):
        with broker(settings_for(f"{name}-missing", driver=driver), tmp_path) as b:
            with pytest.raises(BrokerUnavailable) as caught:
                b.destination_identity()
        assert "does not exist" in caught.value.message, (driver, caught.value.message)


def test_an_emit_through_librdkafka_makes_no_kafka_python_client(tmp_path):
    """The publishing client also names the destination: kafka-python (its import and a second
    bootstrap) is left for the commands that read."""
    from test_startup import _heavy, _modules

    name = topics()
    write_config(tmp_path / "wfbus.yaml", {"k": settings_for(name, driver="librdkafka")})
    write_jsonl(tmp_path / "one.jsonl", [{"topic": "order.submit", "urn": "u1"}])
    code, modules = _modules(tmp_path, "emit", "-b", "k", "one.jsonl")
    assert code == 0
    assert not _heavy(modules, ("kafka",)), _heavy(modules, ("kafka",))
    assert [r.value for r in consume_all(name)] == [
        b'{"topic":"order.submit","urn":"u1","attempt":0}'
    ]

"""RabbitMQ behaviour that the server decides, on a real RabbitMQ node."""

from __future__ import annotations

import json
import time

import pytest
from conftest import write_config, write_jsonl
from contract.kits import RABBITMQ_URL, rabbit_channel

pytestmark = pytest.mark.broker("rabbitmq")


def _reject_all(queue: str, expected: int) -> None:
    """A consumer that fails: basic.nack(requeue=False) sends each message to the DLX."""
    connection, channel = rabbit_channel()
    try:
        rejected = 0
        deadline = time.monotonic() + 10
        while rejected < expected and time.monotonic() < deadline:
            method, _, _ = channel.basic_get(queue)
            if method is None:
                continue
            channel.basic_nack(method.delivery_tag, requeue=False)
            rejected += 1
    finally:
        connection.close()


def test_unroutable_event_fails_with_exit_1_naming_it_and_the_rest_are_confirmed(
    wfbus, rabbit, tmp_path
):
    events = [
        {"topic": "order.submit", "urn": "a"},
        {"topic": "nobody.listens", "urn": "b"},
        {"topic": "billing.charge", "urn": "c"},
    ]
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1
    doc = result.json()
    assert doc["published"] == 2
    assert [(f["place"], f["topic"]) for f in doc["failed"]] == [("e.jsonl:2", "nobody.listens")]
    assert "unroutable" in doc["failed"][0]["error"]
    assert json.loads((tmp_path / "failed.jsonl").read_text())["urn"] == "b"


def test_messages_are_persistent_json_with_the_event_id_as_message_id(wfbus, rabbit):
    assert wfbus("emit", "--topic", "order.submit", "--urn", "o-1").code == 0
    connection, channel = rabbit_channel()
    try:
        method, properties, body = channel.basic_get(rabbit["queue"], auto_ack=True)
    finally:
        connection.close()
    assert properties.delivery_mode == 2 and properties.content_type == "application/json"
    assert properties.message_id == properties.headers["event-id"]
    assert method.routing_key == "order.submit"
    assert json.loads(body) == {"topic": "order.submit", "urn": "o-1", "attempt": 0}


def test_really_dead_lettered_messages_are_replayed_as_they_were_published(wfbus, rabbit, tmp_path):
    """Same properties and headers as the emit gave them, minus the death bookkeeping, plus replayed-from."""
    events = [{"topic": "order.submit", "urn": f"o-{i}"} for i in range(3)] + [
        {"topic": "billing.x", "urn": "b"}
    ]
    assert wfbus("emit", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    _reject_all(rabbit["queue"], 4)
    assert {q["role"]: q["ready"] for q in wfbus("depth", "-o", "json").json()["queues"]} == {
        "main": 0,
        "dead-letter": 4,
    }

    plan = wfbus("replay", "--dry-run", "-o", "json").json()
    assert plan["by_reason"] == {"rejected": 4} and plan["selected"] == 4

    assert wfbus("replay", "--topic", "order.*").code == 0
    connection, channel = rabbit_channel()
    try:
        got = [channel.basic_get(rabbit["queue"], auto_ack=True) for _ in range(3)]
    finally:
        connection.close()
    for (method, properties, body), event in zip(got, events, strict=False):
        headers = dict(properties.headers)
        assert method.routing_key == "order.submit"
        assert json.loads(body) == {**event, "attempt": 0}
        assert headers.pop("wfbus-publish-id")
        assert headers == {
            "topic": "order.submit",
            "urn": event["urn"],
            "attempt": "0",
            "event-id": properties.message_id,
            "replayed-from": f"r:{rabbit['dead_letter_queue']}",
        }
        assert properties.delivery_mode == 2 and properties.content_type == "application/json"
    # the unselected one is still in the DLQ
    assert json.loads(wfbus("peek", "--dead-letter", "-o", "json").out) == [
        {"topic": "billing.x", "urn": "b", "attempt": 0}
    ]


def test_peek_leaves_messages_in_their_order(wfbus, rabbit, tmp_path):
    events = [{"topic": "order.submit", "urn": f"o-{i}"} for i in range(25)]
    assert wfbus("emit", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    assert json.loads(wfbus("peek", "--limit", "5", "-o", "json").out) == [
        {**e, "attempt": 0} for e in events[:5]
    ]
    assert json.loads(wfbus("peek", "--all", "-o", "json").out) == [
        {**e, "attempt": 0} for e in events
    ]
    # the text names the queue it read, not the exchange emit publishes to
    title = wfbus("peek", "--limit", "2").out.splitlines()[0]
    assert title.startswith(f"queue {rabbit['queue']}: 2 message(s) shown"), title


def test_missing_exchange_bad_password_and_refused_connection_exit_5(wfbus, tmp_path):
    bad_password = RABBITMQ_URL.replace("guest:guest", "guest:wrong-secret")
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "noexchange": {"type": "rabbitmq", "url": RABBITMQ_URL, "exchange": "no-such-exchange"},
            "badauth": {"type": "rabbitmq", "url": bad_password, "exchange": "amq.topic"},
            "down": {
                "type": "rabbitmq",
                "url": "amqp://guest:guest@127.0.0.1:9/%2F",
                "timeout_seconds": 3,
            },
        },
    )
    started = time.monotonic()
    result = wfbus("emit", "-b", "noexchange", "--topic", "t", "--urn", "u")
    assert result.code == 5 and "404" in result.err and "no-such-exchange" in result.err
    result = wfbus("emit", "-b", "badauth", "--topic", "t", "--urn", "u")
    assert (
        result.code == 5
        and "authentication failed" in result.err
        and "wrong-secret" not in result.err
    )
    result = wfbus("emit", "-b", "down", "--topic", "t", "--urn", "u")
    assert result.code == 5 and "cannot reach RabbitMQ" in result.err
    assert time.monotonic() - started < 30


def test_declare_true_creates_the_exchange_and_declare_false_never_does(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "strict": {"type": "rabbitmq", "url": RABBITMQ_URL, "exchange": "wfbus-declared-x"},
            "lenient": {
                "type": "rabbitmq",
                "url": RABBITMQ_URL,
                "exchange": "wfbus-declared-x",
                "declare": True,
            },
        },
    )
    connection, channel = rabbit_channel()
    channel.exchange_delete("wfbus-declared-x")
    connection.close()
    assert wfbus("emit", "-b", "strict", "--topic", "t", "--urn", "u").code == 5
    assert (
        wfbus("emit", "-b", "lenient", "--topic", "t", "--urn", "u").code == 1
    )  # created; nothing bound: unroutable
    assert wfbus("emit", "-b", "strict", "--topic", "t", "--urn", "u").code == 1


def test_messages_the_broker_nacks_fail_one_by_one_with_exit_1(wfbus, rabbit, tmp_path):
    """A queue capped at 3 messages that rejects publishes when full (x-overflow reject-publish):
    RabbitMQ confirms the first 3 and nacks the others."""
    connection, channel = rabbit_channel()
    capped = f"{rabbit['exchange']}.capped"
    channel.queue_declare(
        capped, durable=True, arguments={"x-max-length": 3, "x-overflow": "reject-publish"}
    )
    channel.queue_bind(capped, rabbit["exchange"], "capped.#")
    connection.close()
    write_jsonl(tmp_path / "e.jsonl", [{"topic": "capped.event", "urn": f"u{i}"} for i in range(5)])
    try:
        result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
        assert result.code == 1, result.err
        doc = result.json()
        assert doc["published"] == 3
        assert [f["place"] for f in doc["failed"]] == ["e.jsonl:4", "e.jsonl:5"]
        assert all("nacked" in f["error"] for f in doc["failed"])
        assert [
            json.loads(line)["urn"] for line in (tmp_path / "failed.jsonl").read_text().splitlines()
        ] == ["u3", "u4"]
    finally:
        connection, channel = rabbit_channel()
        channel.queue_delete(capped)
        connection.close()


@pytest.mark.parametrize(
    "template, named",
    [
        ("{tenant}", "tenant"),
        ("{topic}.{region}", "region"),
        ("{}", "{}"),
        ("{topic.upper}", "topic.upper"),
        ("{topic", "template"),
    ],
)
def test_a_routing_key_template_naming_an_unknown_field_is_a_config_error(
    wfbus, rabbit, tmp_path, template, named
):
    """Refused when the config loads (exit 4, naming the setting), not at the first publish (exit 70)."""
    write_config(tmp_path / "wfbus.yaml", {"r": {**rabbit, "routing_key": template}}, "r")
    for args in (
        ("emit", "--topic", "order.submit", "--urn", "u"),
        ("brokers",),
        ("emit", "--dry-run", "--topic", "t", "--urn", "u"),
    ):
        result = wfbus(*args)
        assert result.code == 4, (args, result.err)
        assert "routing_key" in result.err and named in result.err and "Traceback" not in result.err


def test_a_routing_key_template_with_topic_and_urn_routes_by_them(wfbus, rabbit, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml", {"r": {**rabbit, "routing_key": "order.{urn}.{topic}"}}, "r"
    )
    assert wfbus("emit", "--topic", "submit", "--urn", "7").code == 0
    connection, channel = rabbit_channel()
    try:
        method, _, _ = channel.basic_get(rabbit["queue"], auto_ack=True)
    finally:
        connection.close()
    assert method.routing_key == "order.7.submit"


def test_a_node_that_takes_the_connection_and_never_answers_is_unreachable_exit_5(wfbus, tmp_path):
    """pika's handshake timeout (AMQPConnectorStackTimeout) was an internal error (exit 70)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: [held.append(listener.accept()[0]) for _ in range(8)], daemon=True
    ).start()
    port = listener.getsockname()[1]
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "silent": {
                "type": "rabbitmq",
                "url": f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                "exchange": "x",
                "queue": "q",
                "timeout_seconds": 2,
            },
        },
    )
    try:
        started = time.monotonic()
        emitted = wfbus("emit", "--topic", "t", "--urn", "u")
        depth = wfbus("depth")
        assert emitted.code == 5 and "cannot reach RabbitMQ" in emitted.err, emitted.err
        assert depth.code == 5 or "cannot reach RabbitMQ" in depth.out + depth.err, depth.err
        assert "internal error" not in emitted.err + depth.err
        assert time.monotonic() - started < 30
    finally:
        listener.close()
        for connection in held:
            connection.close()

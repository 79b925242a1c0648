"""RabbitMQ replay fidelity on a real node: returns matched to the publish that was unroutable, a journal
that trusts no application id, and messages republished as they were dead-lettered (every property,
every header type for type)."""

from __future__ import annotations

import datetime
import decimal
import json
import random
from typing import Any

import pytest
from contract.kits import rabbit_channel

from brokers.conftest import reject_all

pytestmark = pytest.mark.broker("rabbitmq")

DEATH_KEYS = {
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
}
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


def publish_raw(items: list[tuple[str, str, bytes, Any]]) -> None:
    """(exchange, routing key, body, pika.BasicProperties) published as a foreign application would."""
    connection, channel = rabbit_channel()
    try:
        channel.confirm_delivery()
        for exchange, routing_key, body, properties in items:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
    finally:
        connection.close()


def read_queue(queue: str, *, remove: bool) -> list[tuple[Any, Any, bytes]]:
    """Every message in the queue as pika gives it; left in place unless `remove`."""
    connection, channel = rabbit_channel()
    out = []
    try:
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=remove)
            if method is None:
                return out
            out.append((method, properties, body))
    finally:
        connection.close()  # unacked messages go back in place


def typed(value: Any) -> Any:
    """A value with its type at every level, so 3 != '3' and b'x' != 'x' when compared."""
    if isinstance(value, dict):
        return ("dict", {k: typed(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


def all_properties(properties) -> dict:
    return {name: typed(getattr(properties, name)) for name in PROPERTY_NAMES}


# -- returns (issue 12.4) --------------------------------------------------------------------------


@pytest.mark.parametrize("message_id", ["same-business-id", None])
def test_an_unroutable_message_fails_itself_not_an_earlier_one_with_the_same_message_id(
    wfbus, rabbit, tmp_path, message_id
):
    """Two dead-lettered messages with one message_id (or none); only the LATER one has a route no queue is
    bound to. A return matched by message_id blamed the first: the unroutable one was acked (lost)
    and the routable one kept (replayed twice)."""
    import pika

    queue, dlq = rabbit["queue"], rabbit["dead_letter_queue"]
    props = pika.BasicProperties(message_id=message_id, delivery_mode=2)
    publish_raw(
        [
            (rabbit["exchange"], "order.routable", b"first: routable", props),
            (
                "",
                queue,
                b"second: its routing key is the queue's name, bound nowhere on the exchange",
                props,
            ),
        ]
    )
    assert reject_all(queue) == 2
    result = wfbus("-o", "json", "replay", "--batch", "10")
    assert result.code == 1, result.err
    doc = result.json()
    assert (
        doc["replayed"] == 1
        and len(doc["failed"]) == 1
        and "unroutable" in doc["failed"][0]["error"]
    )
    assert [body for _, _, body in read_queue(dlq, remove=False)] == [
        b"second: its routing key is the queue's name, bound nowhere on the exchange"
    ]
    assert [body for _, _, body in read_queue(queue, remove=True)] == [b"first: routable"]


# -- the journal (issue 12.5) ----------------------------------------------------------------------


def test_a_leftover_journal_entry_equal_to_an_application_message_id_does_not_swallow_the_message(
    wfbus, rabbit, tmp_path
):
    """A message without wfbus' publish id has no journal key: its AMQP message_id (an application's business
    id) names nothing wfbus owns, so an entry with that text, under any source key, must not make
    the replay ack it unpublished."""
    import pika

    from wfbus.journal import Journal

    queue, dlq = rabbit["queue"], rabbit["dead_letter_queue"]
    publish_raw(
        [
            (
                rabbit["exchange"],
                "order.paid",
                f"invoice {i}".encode(),
                pika.BasicProperties(message_id=f"invoice-{i}", delivery_mode=2),
            )
            for i in range(3)
        ]
    )
    assert reject_all(queue) == 3
    journal = Journal(path=tmp_path / "state" / "wfbus" / "journal.db")
    for source in (f"r:r:{dlq}", f"r:{dlq}", f"amqp://127.0.0.1:5673/%2F#{dlq}", ""):
        journal.bind(source)
        journal.mark_published(["invoice-0", "invoice-1", "invoice-2", ""])
    journal.close()

    result = wfbus("-o", "json", "replay")
    assert result.code == 0, result.err
    assert result.json()["replayed"] == 3 and result.json()["resumed"] == 0
    assert [body for _, _, body in read_queue(queue, remove=True)] == [
        b"invoice 0",
        b"invoice 1",
        b"invoice 2",
    ]
    assert read_queue(dlq, remove=False) == []


def test_the_reader_names_its_real_source_without_credentials(rabbit, tmp_path):
    from wfbus.brokers.rabbitmq import RabbitMqBroker, RabbitMqSettings

    settings = RabbitMqSettings(
        **{**rabbit, "url": rabbit["url"].replace("guest:guest", "guest:guest")}
    )
    with RabbitMqBroker("r", settings, tmp_path) as broker:
        reader = broker.dead_letter_reader()
        try:
            assert reader.identity == f"amqp://127.0.0.1:5673/%2F#{rabbit['dead_letter_queue']}"
            assert "guest" not in reader.identity
        finally:
            reader.close()


def test_messages_without_a_publish_id_have_no_journal_key(rabbit, tmp_path):
    """Only wfbus' own publish id (with the death count) names one arrival; an AMQP message_id never does."""
    import pika

    from wfbus.brokers.rabbitmq import RabbitMqBroker, RabbitMqSettings

    queue = rabbit["queue"]
    publish_raw(
        [
            (rabbit["exchange"], "order.x", b"foreign", pika.BasicProperties(message_id="biz-1")),
            (
                rabbit["exchange"],
                "order.x",
                b"foreign",
                pika.BasicProperties(headers={"event-id": "e"}),
            ),
        ]
    )
    reject_all(queue)
    with RabbitMqBroker("r", RabbitMqSettings(**rabbit), tmp_path) as broker:
        messages = broker.peek(dead_letter=True, limit=None)
    assert [(m.arrival_id, m.position_id, m.journal_key) for m in messages] == [
        (None, None, None)
    ] * 2
    assert messages[0].message_id == "biz-1"


# -- the message as it was (issue 13.6) ------------------------------------------------------------


def every_header_type(rng: random.Random, index: int) -> dict:
    """One value of each AMQP field type pika reads and writes, nested tables and arrays included."""
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5) + datetime.timedelta(seconds=index)
    return {
        "small-int": 3,
        "negative": -7,
        "big-int": 2**40 + index,
        "double": 0.25 + index,
        "true": True,
        "false": False,
        "text": f"héllo {index}",
        "empty-text": "",
        "bytes": bytes(rng.randrange(256) for _ in range(9)),
        "decimal": decimal.Decimal("12.5"),
        "stamp": stamp,
        "void": None,
        "table": {"depth": 1, "inner": {"depth": 2, "list": [1, "two", b"\x003", {"k": False}]}},
        "array": [
            1,
            2**35,
            "s",
            b"\xff\xfe",
            -1.5e300,
            None,
            [True, {"x": decimal.Decimal("0.001")}],
        ],
        "topic": "order.typed",  # what a replay routes by when the message never died in a queue
    }


def typed_properties(rng: random.Random, index: int, headers: dict):
    import pika

    return pika.BasicProperties(
        content_type="application/x-foreign",
        content_encoding="identity",
        delivery_mode=1 + index % 2,
        priority=index % 10,
        correlation_id=f"corr-{index}",
        reply_to="reply.queue",
        message_id=f"app-id-{index % 2}",
        timestamp=1_700_000_000 + index,
        type=f"kind.{index}",
        user_id="guest",
        app_id="billing-service",
        headers=headers,
        expiration="600000" if index % 3 == 0 else None,
    )


def dead_letter_typed_messages(rabbit: dict, count: int, seed: int) -> None:
    """Foreign (non-event) bodies with every property and header type: most die in the work queue (real
    x-death), a few are published straight into the DLQ."""
    from wfbus.brokers.rabbitmq import _install_codec

    # pika alone cannot write a float; with it, the standard 'd' (the Node holdout reads it)
    _install_codec()
    rng = random.Random(seed)
    died, direct = [], []
    for index in range(count):
        body = (
            bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
            if index % 2
            else json.dumps({"not": "an event", "i": index}).encode()
        )
        properties = typed_properties(rng, index, every_header_type(rng, index))
        if index % 4 == 3:
            direct.append(("", rabbit["dead_letter_queue"], body, properties))
        else:
            died.append((rabbit["exchange"], f"order.typed.{index}", body, properties))
    publish_raw(died)
    assert reject_all(rabbit["queue"]) == len(died)
    publish_raw(direct)


def expected_after_replay(dead: list, dlq: str) -> list[tuple]:
    """What was dead-lettered, minus the broker's death bookkeeping, plus replayed-from."""
    out = []
    for _method, properties, body in dead:
        headers = {k: v for k, v in properties.headers.items() if k not in DEATH_KEYS}
        headers["replayed-from"] = f"r:{dlq}"
        route = (
            properties.headers["x-death"][0]["routing-keys"][0]
            if "x-death" in properties.headers
            else None
        )
        out.append((body, all_properties(properties), typed(headers), route))
    return out


def test_a_replay_into_rabbitmq_keeps_every_property_and_header_type_for_type(
    wfbus, rabbit, tmp_path
):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    count = 24
    dead_letter_typed_messages(rabbit, count, seed)
    dlq, queue = rabbit["dead_letter_queue"], rabbit["queue"]
    dead = read_queue(dlq, remove=False)
    assert len(dead) == count
    expected = expected_after_replay(dead, dlq)

    result = wfbus("-o", "json", "replay", "--batch", "5")
    assert result.code == 0, result.err
    assert result.json()["replayed"] == count
    arrived = read_queue(queue, remove=True)
    assert read_queue(dlq, remove=False) == []
    got = []
    for method, properties, body in arrived:
        headers = dict(properties.headers)
        publish_id = headers.pop("wfbus-publish-id")
        assert isinstance(publish_id, str) and publish_id
        got.append((body, all_properties(properties), typed(headers), method.routing_key))
    # the exchange routed each by the key it was first published with (x-death), or by
    # its topic header
    expected = [(b, p, h, route or "order.typed") for b, p, h, route in expected]
    # messages keep their order in the queue, except that those published straight into
    # the DLQ came last
    assert got == expected

"""RabbitMQ at speed, on a real node: pipelined publishing (several batches in flight on one
channel) and replays that consume with a prefetch, with every guarantee of the slow paths kept.

Two tests run through `LaggyLink`, a TCP relay in front of the node that holds back what the node
sends by a fixed delay (and can cut the connection): a link with latency shows what waits on a round
trip. Publishing that waits for each batch's confirms before writing the next, or a reader that asks
for each message with its own basic.get, takes one delay per batch or per message there."""

from __future__ import annotations

import collections
import json
import random
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import write_config, write_jsonl
from contract.kits import RABBITMQ_URL, rabbit_channel

from brokers.conftest import reject_all

pytestmark = pytest.mark.broker("rabbitmq")


# -- helpers ---------------------------------------------------------------------------------------


class LaggyLink:
    """A TCP relay to the test node: client -> node at once, node -> client `delay` seconds later.
    `cut()` closes every relayed connection at once (the network, not the broker, goes away)."""

    def __init__(self, delay: float) -> None:
        target = urlsplit(RABBITMQ_URL)
        self.target = (target.hostname or "127.0.0.1", target.port or 5672)
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        parts = urlsplit(RABBITMQ_URL)
        return parts._replace(
            netloc=f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        ).geturl()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets += [client, upstream]
            held: collections.deque = collections.deque()
            ready = threading.Condition()
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._hold, args=(upstream, held, ready), daemon=True).start()
            threading.Thread(target=self._release, args=(client, held, ready), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def _hold(
        self, source: socket.socket, held: collections.deque, ready: threading.Condition
    ) -> None:
        try:
            while data := source.recv(65536):
                with ready:
                    held.append((time.monotonic() + self.delay, data))
                    ready.notify()
        except OSError:
            pass

    def _release(
        self, sink: socket.socket, held: collections.deque, ready: threading.Condition
    ) -> None:
        while not self.closed.is_set():
            with ready:
                while not held and not self.closed.is_set():
                    ready.wait(0.05)
                if not held:
                    return
                due, data = held.popleft()
            time.sleep(max(0.0, due - time.monotonic()))
            if self.closed.is_set():
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        self.closed.set()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.listener.close()


def broker_for(settings: dict, tmp_path: Path, **overrides):
    from wfbus.brokers.rabbitmq import RabbitMqBroker, RabbitMqSettings

    return RabbitMqBroker("r", RabbitMqSettings(**{**settings, **overrides}), tmp_path)


def message(n: int, topic: str = "order.submit", event_id: str | None = None, text: str = ""):
    from wfbus.brokers.base import OutgoingMessage

    body = json.dumps(
        {"topic": topic, "urn": f"u-{n % 7}", "payload": {"n": n, "text": text}, "attempt": 0},
        ensure_ascii=False,
    ).encode()
    event_id = event_id or f"e-{n}"
    return OutgoingMessage(
        body=body,
        topic=topic,
        key=f"u-{n % 7}",
        event_id=event_id,
        headers={"topic": topic, "urn": f"u-{n % 7}", "attempt": "0", "event-id": event_id},
    )


def pipelined(broker, batches: list[list]) -> list[list]:
    """Publish like emit does: up to pipeline_window batches in flight, answers
    read oldest first."""
    window: collections.deque = collections.deque()
    answers = []
    for batch in batches:
        window.append(broker.submit(batch))
        if len(window) >= broker.pipeline_window:
            answers.append(window.popleft().result())
    answers.extend(pending.result() for pending in window)
    return answers


def bodies(queue: str, *, remove: bool = True) -> list[bytes]:
    """The queue's bodies in the order a plain pika consumer gets them (left in
    place unless `remove`)."""
    connection, channel = rabbit_channel()
    out = []
    try:
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=remove)
            if method is None:
                return out
            out.append(body)
    finally:
        connection.close()


def seeded() -> random.Random:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    return random.Random(seed)


# -- publishing ------------------------------------------------------------------------------------


def test_batches_in_flight_do_not_wait_for_each_others_confirms(rabbit, tmp_path):
    """Over a link that delays every answer by 0.8 s, handing over three batches takes far less than
    one delay (publishing that waited for each batch's confirms took at least three), and every
    message is confirmed and in the queue once, in order."""
    link = LaggyLink(0.8)
    broker = broker_for(rabbit, tmp_path, url=link.url(), timeout_seconds=20)
    try:
        assert broker.pipeline_window >= 3
        assert broker.publish([message(-1)])[0].ok  # connection, channel and exchange check done
        batches = [[message(b * 50 + i) for i in range(50)] for b in range(3)]
        started = time.monotonic()
        pending = [broker.submit(batch) for batch in batches]
        handed_over = time.monotonic() - started
        answers = [p.result() for p in pending]
        total = time.monotonic() - started
    finally:
        broker.close()
        link.cut()
    assert handed_over < 0.6, f"submit waited for confirms: {handed_over:.2f} s for three batches"
    assert total < 2 * 0.8 + 0.6, (
        f"the batches' confirms were waited for one after another: {total:.2f} s"
    )
    assert all(d.ok for answer in answers for d in answer)
    sent = [m.body for batch in [[message(-1)]] + batches for m in batch]
    assert bodies(rabbit["queue"]) == sent


def test_generated_emits_across_batch_and_window_boundaries_arrive_once_in_order(rabbit, tmp_path):
    """Counts at, around and far from batch x window boundaries; unicode and large bodies; every
    message counted exactly once, in input order, by a plain pika consumer."""
    rng = seeded()
    broker = broker_for(rabbit, tmp_path)
    window = broker.pipeline_window
    try:
        for trial in range(5):
            size = rng.randrange(1, 80)
            count = rng.choice(
                [
                    size * window - 1,
                    size * window,
                    size * window + 1,
                    size * (window + 2) + rng.randrange(size),
                    rng.randrange(1, size * window * 3),
                ]
            )
            count = max(1, count)
            messages = [
                message(
                    n,
                    rng.choice(["order.submit", "billing.charge", "order.ship"]),
                    text=rng.choice(
                        ["", "ü€😀" * rng.randrange(1, 30), "x" * rng.randrange(0, 20000)]
                    ),
                )
                for n in range(count)
            ]
            batches = [messages[i : i + size] for i in range(0, count, size)]
            answers = pipelined(broker, batches)
            assert [d.message for answer in answers for d in answer] == messages, trial
            assert all(d.ok for answer in answers for d in answer), trial
            assert bodies(rabbit["queue"]) == [m.body for m in messages], (trial, size, count)
    finally:
        broker.close()


def test_emit_of_several_full_batches_arrives_once_in_order(wfbus, rabbit, tmp_path):
    """Through the CLI: more events than pipeline_window full batches, one over."""
    from wfbus.brokers.rabbitmq import RabbitMqBroker

    count = RabbitMqBroker.publish_batch_size * (RabbitMqBroker.pipeline_window + 1) + 1
    events = [
        {"topic": "order.submit", "urn": f"u-{n % 11}", "payload": {"n": n}, "attempt": 0}
        for n in range(count)
    ]
    result = wfbus("-o", "json", "emit", str(write_jsonl(tmp_path / "e.jsonl", events)))
    assert result.code == 0, result.err
    assert result.json()["published"] == count
    assert [json.loads(b)["payload"]["n"] for b in bodies(rabbit["queue"])] == list(range(count))


def test_an_unroutable_message_in_the_second_batch_in_flight_fails_only_itself(rabbit, tmp_path):
    """The unroutable message shares its event id (the AMQP message_id) with a routable one of the
    first batch: the return must be matched to its own publish, in its own batch, while others
    are in flight."""
    rng = seeded()
    broker = broker_for(rabbit, tmp_path)
    size = rng.randrange(10, 60)
    count = size * (broker.pipeline_window + 1)
    bad = size + size // 2  # the middle of the second batch
    messages = [message(n) for n in range(count)]
    messages[bad] = message(bad, topic="nobody.listens", event_id=messages[size // 2].event_id)
    try:
        window = [
            broker.submit(messages[i : i + size])
            for i in range(0, size * broker.pipeline_window, size)
        ]
        answers = [p.result() for p in window] + [
            broker.submit(messages[size * broker.pipeline_window :]).result()
        ]
    finally:
        broker.close()
    deliveries = [d for answer in answers for d in answer]
    failed = [i for i, d in enumerate(deliveries) if not d.ok]
    assert failed == [bad], failed
    assert "unroutable" in (deliveries[bad].error or "")
    assert bodies(rabbit["queue"]) == [m.body for i, m in enumerate(messages) if i != bad]


def test_a_connection_cut_with_batches_in_flight_fails_them_and_what_was_confirmed_stays(
    rabbit, tmp_path
):
    """The first batch is confirmed; two more are in flight when the network goes away. Their
    answers say so (nothing of them confirmed: BrokerUnavailable, at once, not after a timeout), the
    next batch is refused at once, and the confirmed batch is in the queue."""
    from wfbus.errors import BrokerUnavailable

    link = LaggyLink(0.8)
    broker = broker_for(rabbit, tmp_path, url=link.url(), timeout_seconds=20, heartbeat=0)
    first = [message(n) for n in range(40)]
    later = [[message(100 + b * 40 + n) for n in range(40)] for b in range(2)]
    try:
        assert all(d.ok for d in broker.publish(first))
        pending = [broker.submit(batch) for batch in later]
        link.cut()
        started = time.monotonic()
        for p in pending:
            with pytest.raises(BrokerUnavailable):
                p.result()
        with pytest.raises(BrokerUnavailable):
            broker.submit([message(999)]).result()
        assert time.monotonic() - started < 5, "waited for a timeout instead of failing at once"
    finally:
        broker.close()
    got = bodies(rabbit["queue"])
    assert got[: len(first)] == [m.body for m in first]
    unconfirmed = [m.body for batch in later for m in batch]
    # some may have arrived: never confirmed
    assert got[len(first) :] == unconfirmed[: len(got) - len(first)]


def test_confirms_read_by_the_heartbeat_thread_are_kept_for_their_batch(rabbit, tmp_path):
    """While the caller does something else for longer than the heartbeat, the heartbeat thread
    reads the socket (and so the batch's confirms); result() then answers from what it read, and
    the connection lived."""
    broker = broker_for(rabbit, tmp_path, heartbeat=1)
    messages = [message(n) for n in range(300)]
    try:
        pending = broker.submit(messages)
        time.sleep(3.5)
        started = time.monotonic()
        answer = pending.result()
        assert time.monotonic() - started < 0.5
        assert broker.connection.is_open
        assert all(d.ok for d in broker.publish([message(300)]))
    finally:
        broker.close()
    assert all(d.ok for d in answer)
    assert bodies(rabbit["queue"]) == [m.body for m in messages] + [message(300).body]


# -- replay with prefetch --------------------------------------------------------------------------


def dead_letter(wfbus, settings: dict, tmp_path: Path, events: list[dict]) -> None:
    assert wfbus("emit", str(write_jsonl(tmp_path / "dead.jsonl", events))).code == 0
    assert reject_all(settings["queue"]) == len(events)


def ready(queue: str) -> int:
    connection, channel = rabbit_channel()
    try:
        return channel.queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


@pytest.mark.parametrize("hold_seconds", [300, 0.2])
def test_a_selective_replay_with_prefetch_moves_every_third_once_in_order_and_keeps_the_rest(
    wfbus, rabbit, tmp_path, hold_seconds
):
    """--match selects every third message. Selected: at the destination exactly once, in order;
    unselected: still in the DLQ, in their order; the report's counts equal the queue depths
    afterwards. With a short hold_seconds the passed-over messages are handed back mid-run and come
    round again in later batches."""
    rng = seeded()
    write_config(tmp_path / "wfbus.yaml", {"r": {**rabbit, "hold_seconds": hold_seconds}}, "r")
    count = rng.randrange(150, 700)
    events = [
        {
            "topic": rng.choice(["order.submit", "billing.charge"]),
            "urn": f"u-{rng.randrange(9)}",
            "payload": {"n": n, "pick": n % 3 == 0, "text": "é" * rng.randrange(3)},
            "attempt": 0,
        }
        for n in range(count)
    ]
    dead_letter(wfbus, rabbit, tmp_path, events)
    batch = rng.randrange(5, 160)
    result = wfbus(
        "-o", "json", "replay", "--yes", "--match", "payload.pick=true", "--batch", str(batch)
    )
    assert result.code == 0, result.err
    doc = result.json()
    selected = [e for e in events if e["payload"]["pick"]]
    rest = [e for e in events if not e["payload"]["pick"]]
    assert doc["replayed"] == len(selected) and doc["examined"] == count, doc
    assert doc["dead_letter_after"]["ready"] == len(rest) == ready(rabbit["dead_letter_queue"])
    assert [json.loads(b) for b in bodies(rabbit["queue"])] == selected
    assert [json.loads(b) for b in bodies(rabbit["dead_letter_queue"], remove=False)] == rest


def test_messages_the_destination_refuses_stay_at_the_source_in_order(wfbus, rabbit, tmp_path):
    """Dead-lettered messages whose original route is bound nowhere on the exchange are unroutable
    when replayed: each fails alone and stays in the DLQ, in order; the others move, in order."""
    import pika

    rng = seeded()
    count = rng.randrange(60, 200)
    refused = sorted(rng.sample(range(count), rng.randrange(3, 12)))
    connection, channel = rabbit_channel()
    try:
        channel.confirm_delivery()
        for n in range(count):
            # the default exchange routes by queue name: that route does not exist on
            # the wfbus exchange
            exchange, route = (
                ("", rabbit["queue"]) if n in refused else (rabbit["exchange"], "order.submit")
            )
            channel.basic_publish(
                exchange,
                route,
                json.dumps({"n": n}).encode(),
                pika.BasicProperties(delivery_mode=2, message_id=f"m-{n % 4}"),
                mandatory=True,
            )
    finally:
        connection.close()
    assert reject_all(rabbit["queue"]) == count
    result = wfbus("-o", "json", "replay", "--yes", "--batch", str(rng.randrange(7, 90)))
    assert result.code == 1, result.err
    doc = result.json()
    assert doc["replayed"] == count - len(refused)
    assert doc["dead_letter_after"]["ready"] == len(refused) == ready(rabbit["dead_letter_queue"])
    assert [
        json.loads(b)["n"] for b in bodies(rabbit["dead_letter_queue"], remove=False)
    ] == refused
    assert [json.loads(b)["n"] for b in bodies(rabbit["queue"])] == [
        n for n in range(count) if n not in refused
    ]


def test_a_replay_over_a_slow_link_reads_a_batch_per_round_trip_not_a_message(
    wfbus, rabbit, tmp_path
):
    """Over a link that delays each answer by 50 ms, one basic.get per message costs 50 ms a message
    (300 messages: 15 s); consuming with a prefetch costs a few round trips per batch."""
    count = 300
    events = [
        {"topic": "order.submit", "urn": f"u-{n % 5}", "payload": {"n": n}, "attempt": 0}
        for n in range(count)
    ]
    dead_letter(wfbus, rabbit, tmp_path, events)
    link = LaggyLink(0.05)
    try:
        write_config(tmp_path / "wfbus.yaml", {"r": {**rabbit, "url": link.url()}}, "r")
        started = time.monotonic()
        result = wfbus("-o", "json", "replay", "--yes", "--batch", "100")
        took = time.monotonic() - started
    finally:
        link.cut()
    assert result.code == 0, result.err
    assert result.json()["replayed"] == count
    assert took < 7, f"{took:.1f} s: a round trip per message"
    assert [json.loads(b)["payload"]["n"] for b in bodies(rabbit["queue"])] == list(range(count))
    assert ready(rabbit["dead_letter_queue"]) == 0


def test_the_fast_encoding_of_an_emitted_events_properties_is_byte_for_byte_pikas():
    """Emitted events' properties are encoded by wfbus in one pass (pika's generic encoder was a
    third of a bulk emit's Python time): generated headers (unicode, NUL, empty, long) give pika's
    bytes, and what pika refuses (a short string over 255 bytes) is refused the same way."""
    import pika
    import pika.exceptions

    from wfbus.brokers.rabbitmq import _emitted_properties

    rng = seeded()
    fast = _emitted_properties()
    alphabet = "ab€😀 \x00é"
    for _ in range(500):
        headers = {
            "k" + "é" * rng.randrange(5) + str(j): "".join(
                rng.choice(alphabet) for _ in range(rng.randrange(60))
            )
            for j in range(rng.randrange(8))
        }
        fields = dict(
            delivery_mode=2,
            content_type="application/json",
            headers=headers,
            message_id="".join(rng.choice(alphabet) for _ in range(rng.randrange(60))),
        )
        assert b"".join(fast(**fields).encode()) == b"".join(
            pika.BasicProperties(**fields).encode()
        ), fields
    for too_long in ({"headers": {"k" * 256: "v"}}, {"message_id": "m" * 256}):
        fields = {
            "delivery_mode": 2,
            "content_type": "application/json",
            "headers": {},
            "message_id": "m",
            **too_long,
        }
        with pytest.raises(pika.exceptions.ShortStringTooLong):
            pika.BasicProperties(**fields).encode()
        with pytest.raises(pika.exceptions.ShortStringTooLong):
            fast(**fields).encode()

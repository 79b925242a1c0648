"""RabbitMQ replays that take long, and order, on a real node.

A paced replay outlives the heartbeat timeout and the server's consumer_timeout while it passes over
unselected messages; many events over several batches keep their order in the queue."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, write_config, write_jsonl
from contract.kits import RABBITMQ_URL, RabbitMqKit, rabbit_channel

from brokers.conftest import reject_all

pytestmark = pytest.mark.broker("rabbitmq")


@pytest.fixture
def kit():
    kit = RabbitMqKit()
    yield kit
    kit.cleanup()


def rabbitmqctl(*args: str) -> str:
    """rabbitmqctl against the private test node (the environment scripts/services/ctl gives it)."""
    state = Path(os.environ.get("WFBUS_SERVICES_DIR") or REPO / ".services") / "rabbitmq"
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": "wfbus@localhost",
        "RABBITMQ_DIST_PORT": "25674",
        "ERL_EPMD_PORT": "14369",
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(state / "mnesia"),
        "RABBITMQ_LOG_BASE": str(state / "log"),
        "RABBITMQ_CONFIG_FILE": str(state / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(state / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(state / "pid"),
        "HOME": str(state),
    }
    done = subprocess.run(
        ["/usr/lib/rabbitmq/bin/rabbitmqctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def lower_consumer_timeout_briefly(timeout_ms: int, window_ms: int) -> None:
    """RabbitMQ 3.10 reads consumer_timeout (node-wide) when a channel opens, and has no per-queue setting:
    lower it for the channels opened in the next `window_ms` only; the node itself restores the old value."""
    rabbitmqctl(
        "eval",
        f"{{ok, Old}} = application:get_env(rabbit, consumer_timeout), "
        f"ok = application:set_env(rabbit, consumer_timeout, {timeout_ms}), "
        f"{{ok, _}} = timer:apply_after({window_ms}, application, set_env, "
        f"[rabbit, consumer_timeout, Old]), ok.",
    )


def drain(queue: str, *, remove: bool = True) -> list[dict]:
    """The events in the queue in the order a consumer gets them."""
    connection, channel = rabbit_channel()
    out = []
    try:
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=remove)
            if method is None:
                return out
            out.append(json.loads(body))
    finally:
        connection.close()


def dead_lettered(wfbus, tmp_path: Path, settings: dict, events: list[dict]) -> None:
    """Emitted through the exchange into the work queue, then rejected by a consumer into the DLQ."""
    assert wfbus("emit", str(write_jsonl(tmp_path / "dead.jsonl", events))).code == 0
    assert reject_all(settings["queue"]) == len(events)


def mixed_events(rng: random.Random, count: int, selected_share: float) -> list[dict]:
    return [
        {
            "topic": "order.submit" if rng.random() < selected_share else "billing.charge",
            "urn": f"u-{rng.randrange(8)}",
            "payload": {"n": n},
            "attempt": 0,
        }
        for n in range(count)
    ]


def test_a_paced_replay_outlives_a_short_heartbeat(wfbus, kit, tmp_path):
    """pika answers heartbeats only inside its own calls; --rate sleeps between publishes far longer than a
    1 s heartbeat. The connection (and every message it holds) must survive."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    settings = {**kit.settings(tmp_path), "heartbeat": 1}
    write_config(tmp_path / "wfbus.yaml", {"r": settings}, "r")
    events = mixed_events(rng, 7, 0.0)
    for index in sorted(rng.sample(range(1, 7), 3)):  # 3 selected: two silences of 5 s
        events[index]["topic"] = "order.submit"
    dead_lettered(wfbus, tmp_path, settings, events)
    selected = [e for e in events if e["topic"] == "order.submit"]

    started = time.monotonic()
    result = wfbus("-o", "json", "replay", "--topic", "order.*", "--rate", "0.2")
    assert result.code == 0, result.err
    assert (
        time.monotonic() - started > 5 * (len(selected) - 1) * 0.9
    )  # really paced: 5 s of silence each time
    assert result.json()["replayed"] == len(selected)
    assert drain(settings["queue"]) == selected
    assert drain(settings["dead_letter_queue"], remove=False) == [
        e for e in events if e["topic"] != "order.submit"
    ]


def test_a_replay_longer_than_the_consumer_timeout_passes_over_unselected_messages_without_losing_them(
    wfbus, kit, tmp_path
):
    """Unselected messages held unacknowledged for the whole replay made RabbitMQ close the channel once they
    were older than consumer_timeout (checked once a minute): the replay stopped half done. Hand
    them back in time and pass over them again; every message ends up exactly once at the
    destination or in place."""
    import pika

    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    settings = {**kit.settings(tmp_path), "heartbeat": 2, "hold_seconds": 3}
    write_config(tmp_path / "wfbus.yaml", {"r": settings}, "r")
    events = mixed_events(rng, 40, 0.35)
    events[0]["topic"] = "billing.charge"  # the oldest held message is an unselected one
    dead_lettered(wfbus, tmp_path, settings, events)
    selected = [e for e in events if e["topic"] == "order.submit"]
    rate = len(selected) / 72  # ~72 s: past the server's one-minute timeout check
    assert len(selected) >= 8

    control_connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL + "?heartbeat=0"))
    control = control_connection.channel()
    control_queue = control.queue_declare("", exclusive=True).method.queue
    control.basic_publish("", control_queue, b"held")
    lower_consumer_timeout_briefly(10_000, 2_500)
    try:
        held = (
            control_connection.channel()
        )  # opened in the window: the lowered timeout applies to it
        assert held.basic_get(control_queue)[0] is not None
        result = wfbus("-o", "json", "replay", "--topic", "order.*", "--rate", f"{rate:.4f}")
        # the control: a channel holding one message as long, opened just before the
        # replay's, was closed
        for _ in range(50):
            if held.is_closed:
                break
            control_connection.process_data_events(time_limit=0.1)
        assert held.is_closed, (
            "the lowered consumer_timeout did not apply: this test proves nothing"
        )
    finally:
        control_connection.close()
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["replayed"] == len(selected) and doc["examined"] == len(events), doc
    assert drain(settings["queue"]) == selected
    assert drain(settings["dead_letter_queue"], remove=False) == [
        e for e in events if e["topic"] != "order.submit"
    ]


def test_thousands_of_events_over_many_urns_keep_their_order_through_emit_and_replay(
    wfbus, kit, tmp_path
):
    """RabbitMQ keeps order per queue: the consumer sees the input order after emit and after replays in
    many batches, with unselected messages passed over (and handed back) in between."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    settings = {**kit.settings(tmp_path), "hold_seconds": 0.5}
    write_config(tmp_path / "wfbus.yaml", {"r": settings}, "r")
    urns = [f"urn-{i}" for i in range(rng.randrange(7, 12))]
    events = [
        {
            "topic": rng.choice(["order.submit", "order.ship", "billing.charge"]),
            "urn": rng.choice(urns),
            "payload": {"n": n, "text": "ü" * rng.randrange(0, 40)},
            "attempt": 0,
        }
        for n in range(rng.randrange(2000, 2600))
    ]
    path = write_jsonl(tmp_path / "e.jsonl", events)
    assert wfbus("emit", str(path)).code == 0
    assert drain(settings["queue"], remove=False) == events  # emit: input order

    assert reject_all(settings["queue"]) == len(events)
    batch = str(rng.randrange(60, 400))
    result = wfbus("-o", "json", "replay", "--topic", "order.*", "--batch", batch)
    assert result.code == 0, result.err
    orders = [e for e in events if e["topic"].startswith("order.")]
    assert result.json()["replayed"] == len(orders)
    assert drain(settings["queue"]) == orders
    rest = [e for e in events if not e["topic"].startswith("order.")]
    assert drain(settings["dead_letter_queue"], remove=False) == rest  # passed over, kept in place

    result = wfbus("-o", "json", "replay", "--batch", batch)
    assert result.code == 0 and result.json()["replayed"] == len(rest), result.err
    got = drain(settings["queue"])
    assert got == rest
    for urn in urns:
        assert [e["payload"]["n"] for e in got if e["urn"] == urn] == sorted(
            e["payload"]["n"] for e in rest if e["urn"] == urn
        )

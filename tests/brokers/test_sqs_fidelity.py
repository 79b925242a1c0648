"""SQS: every message accounted by its own answer, refusals that fail one message alone, per-group
order, complete reads of FIFO queues, and attributes kept type for type; on the
real server (ElasticMQ).

Inputs are generated from a printed seed; every check counts where each message ended up.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import write_config, write_jsonl
from contract.kits import SQS_ENDPOINT, sqs_client

from wfbus.brokers.sqs import NO_ANSWER, SqsBroker, SqsSettings, read_answer

pytestmark = pytest.mark.broker("sqs")


def _seed() -> int:
    seed = int(os.environ.get("WFBUS_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed={seed} (WFBUS_TEST_SEED={seed} repeats this run)")
    return seed


class Queues:
    """A main queue and its DLQ (RedrivePolicy), standard or FIFO, deleted at the end."""

    def __init__(self, fifo: bool = False, content_dedup: bool = False) -> None:
        client = sqs_client()
        suffix = ".fifo" if fifo else ""
        name = f"wfbus-{uuid.uuid4().hex[:10]}"
        attributes = {"FifoQueue": "true"} if fifo else {}
        if content_dedup:
            attributes["ContentBasedDeduplication"] = "true"
        self.dlq = client.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=attributes)[
            "QueueUrl"
        ]
        arn = client.get_queue_attributes(QueueUrl=self.dlq, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.dlq_arn = arn
        self.main = client.create_queue(
            QueueName=f"{name}{suffix}",
            Attributes={
                **attributes,
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 10}),
            },
        )["QueueUrl"]

    def settings(self, **extra) -> dict:
        return {
            "type": "sqs",
            "queue_url": self.main,
            "endpoint_url": SQS_ENDPOINT,
            "region": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "visibility_timeout": 4,
            **extra,
        }

    def count(self, url: str) -> int:
        a = sqs_client().get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain(self, url: str) -> list[dict]:
        """Consume everything as an application would (receive, delete), in the order SQS hands it out."""
        client = sqs_client()
        out: list[dict] = []
        empty = 0
        while empty < 2:
            messages = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                empty += 1
                continue
            empty = 0
            out.extend(messages)
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        return out

    def delete(self) -> None:
        for url in (self.main, self.dlq):
            try:
                sqs_client().delete_queue(QueueUrl=url)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


@pytest.fixture
def queues(tmp_path):
    made: list[Queues] = []

    def make(fifo: bool = False, content_dedup: bool = False, **extra) -> Queues:
        q = Queues(fifo, content_dedup)
        made.append(q)
        write_config(
            tmp_path / "wfbus.yaml",
            {"q": q.settings(**extra), "spare": {"type": "local", "path": "spare.db"}},
            "q",
        )
        return q

    yield make
    for q in made:
        q.delete()


def seed_local_dlq(tmp_path: Path, rows: list[tuple[bytes, dict]]) -> None:
    """Put messages in the local broker `spare`'s DLQ as another producer would have left them."""
    from wfbus.brokers.local import connect

    db = connect(tmp_path / "spare.db")
    db.executemany(
        "INSERT INTO messages (queue, body, headers, routing_key, message_id, enqueued_at) "
        "VALUES ('spare.dlq', ?, ?, 'order.submit', ?, ?)",
        [(body, json.dumps(headers), uuid.uuid4().hex, time.time()) for body, headers in rows],
    )
    db.close()


def local_dlq_bodies(tmp_path: Path) -> list[bytes]:
    db = sqlite3.connect(tmp_path / "spare.db")
    try:
        return [
            bytes(r[0])
            for r in db.execute("SELECT body FROM messages WHERE queue = 'spare.dlq' ORDER BY id")
        ]
    finally:
        db.close()


def event_body(i: int, **extra) -> bytes:
    return json.dumps(
        {"topic": "order.submit", "urn": f"o-{i}", "payload": {"n": i, **extra}, "attempt": 0},
        separators=(",", ":"),
    ).encode()


# -- 12.3 ------------------------------------------------------------------------------------------
def test_replay_into_a_content_dedup_fifo_queue_right_after_the_emit_is_not_dropped(wfbus, queues):
    q = queues(fifo=True, content_dedup=True, deduplication="content")
    event = ["--topic", "order.submit", "--urn", "u1", "--payload", '{"n": 1}']
    assert wfbus("emit", *event).code == 0
    assert wfbus("emit", "--dead-letter", *event).code == 0  # the same body, inside SQS's 5 minutes
    result = wfbus("-o", "json", "replay", "--attempt", "keep")
    assert result.code == 0, result.err
    assert result.json()["replayed"] == 1
    bodies = [m["Body"] for m in q.drain(q.main)]
    assert (
        len(bodies) == 2 and bodies[0] == bodies[1]
    )  # the replayed copy arrived, not dropped as a repeat
    assert q.count(q.dlq) == 0


# -- 12.6 ------------------------------------------------------------------------------------------
def test_a_request_refused_as_a_whole_fails_only_its_own_messages(
    wfbus, queues, tmp_path, monkeypatch
):
    """A queue allowing 1 MiB messages (as SQS now can) while the server refuses > 256 KiB: the request
    carrying the big message is refused as a whole; the others of the publish keep their answers."""
    rng = random.Random(_seed())
    q = queues()
    monkeypatch.setattr(SqsBroker, "message_size_limit", lambda self: 1_048_576)
    count = rng.randint(120, 480)
    big = sorted(rng.sample(range(count), 2))
    events = [
        {
            "topic": "order.submit",
            "urn": f"o-{i}",
            "payload": {"n": i, "blob": "x" * (300_000 if i in big else rng.randint(0, 20_000))},
        }
        for i in range(count)
    ]
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1, result.err
    failed = [
        json.loads(line)["urn"] for line in (tmp_path / "failed.jsonl").read_text().splitlines()
    ]
    assert failed == [f"o-{i}" for i in big]
    arrived = sorted(json.loads(m["Body"])["payload"]["n"] for m in q.drain(q.main))
    assert arrived == [i for i in range(count) if i not in big]  # every other one once, none lost


# -- 12.7 ------------------------------------------------------------------------------------------
def test_an_entry_missing_from_the_answer_is_a_failure():
    """Parsing of a recorded SendMessageBatch answer (ElasticMQ never leaves an entry out, so this
    cannot be produced on the server): an Id in neither Successful nor Failed is not confirmed."""
    response = {
        "Successful": [{"Id": "0", "MessageId": "m0"}, {"Id": "2", "MessageId": "m2"}],
        "Failed": [
            {"Id": "3", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "x"},
            {"Id": "4", "SenderFault": False, "Code": "InternalError", "Message": "y"},
            {"Id": "9", "SenderFault": True, "Code": "Stray", "Message": "not ours"},
        ],
    }
    answer = read_answer(["0", "1", "2", "3", "4"], response)
    assert answer.confirmed == ["0", "2"]
    assert answer.missing == ["1"]
    assert set(answer.refused) == {"3"} and set(answer.retry) == {"4"}
    assert read_answer(["0", "1"], {}).missing == ["0", "1"]
    assert "no answer" in NO_ANSWER


# -- 12.8 and 13.7 ---------------------------------------------------------------------------------
def test_messages_sqs_refuses_fail_alone_and_stay_in_the_dead_letter_queue(wfbus, queues, tmp_path):
    rng = random.Random(_seed())
    q = queues()
    good = [
        (event_body(i), {"topic": "order.submit", "urn": f"o-{i}"})
        for i in range(rng.randint(25, 60))
    ]
    bad = [
        (b'{"topic":"order.submit","urn":"bin","payload":"\xff\xfe"}', {}),  # not UTF-8
        (
            '{"topic":"order.submit","urn":"ffff","payload":"\uffff"}'.encode(),
            {},
        ),  # a character SQS refuses
        (event_body(10_000, blob="y" * 270_000), {}),
    ]  # over the size limit
    rows = list(good)
    for row in bad:
        rows.insert(rng.randrange(len(rows) + 1), row)
    seed_local_dlq(tmp_path, rows)
    result = wfbus("-o", "json", "replay", "-b", "spare", "--to", "q")
    assert result.code == 1, (result.code, result.err)
    doc = result.json()
    assert doc["replayed"] == len(good) and len(doc["failed"]) == len(bad)
    assert sorted(local_dlq_bodies(tmp_path)) == sorted(
        body for body, _ in bad
    )  # kept at the source
    assert sorted(m["Body"].encode() for m in q.drain(q.main)) == sorted(body for body, _ in good)


def test_foreign_headers_beyond_what_sqs_carries_are_folded_not_lost(wfbus, queues, tmp_path):
    q = queues()
    headers = {
        "attempt": "abc",
        "bad name": "1",
        "AWS.reserved": "2",
        "empty": "",
        "ok-1": "v1",
        **{f"h{i}": f"value-{i}" for i in range(9)},
        "nul": "a\u0000b",
    }
    seed_local_dlq(tmp_path, [(event_body(1), headers)])
    result = wfbus("-o", "json", "replay", "-b", "spare", "--to", "q")
    assert result.code == 0, result.err
    [message] = q.drain(q.main)
    attributes = message["MessageAttributes"]
    assert len(attributes) <= 10
    assert attributes["attempt"] == {
        "DataType": "String",
        "StringValue": "abc",
    }  # not a Number: it is none
    assert attributes["topic"]["StringValue"] == "order.submit" and attributes["replayed-from"]
    folded = json.loads(attributes.pop("wfbus-headers")["StringValue"])
    seen = {**{k: v["StringValue"] for k, v in attributes.items()}, **folded}
    for name, value in headers.items():
        assert seen[name] == value  # every header arrived, one by one or folded
    assert {"bad name", "AWS.reserved", "empty", "nul"} <= set(folded)


# -- 13.1 ------------------------------------------------------------------------------------------
def _order_events(rng: random.Random, groups: int, count: int) -> list[dict]:
    names = [f"g{g}-{uuid.uuid4().hex[:4]}" for g in range(groups)]
    weights = [rng.randint(1, 5) for _ in names]
    return [
        {"topic": "order.step", "urn": rng.choices(names, weights)[0], "payload": {"seq": i}}
        for i in range(count)
    ]


def _per_group(bodies: list[str]) -> dict[str, list[int]]:
    order: dict[str, list[int]] = defaultdict(list)
    for body in bodies:
        event = json.loads(body)
        order[event["urn"]].append(event["payload"]["seq"])
    return order


def test_fifo_keeps_each_groups_order_on_emit_and_on_replay(wfbus, queues, tmp_path):
    rng = random.Random(_seed())
    q = queues(fifo=True)
    events = _order_events(rng, rng.randint(7, 10), rng.randint(2000, 2400))
    expected = _per_group([json.dumps(e) for e in events])
    assert min(len(v) for v in expected.values()) > 30  # every group many batches long
    write_jsonl(tmp_path / "e.jsonl", events)
    assert wfbus("emit", "e.jsonl").code == 0
    assert _per_group([m["Body"] for m in q.drain(q.main)]) == expected

    assert wfbus("emit", "--dead-letter", "e.jsonl").code == 0
    result = wfbus("-o", "json", "replay")
    assert result.code == 0, result.err
    assert result.json()["replayed"] == len(events)
    replayed = q.drain(q.main)
    assert _per_group([m["Body"] for m in replayed]) == expected
    assert {m["Attributes"]["MessageGroupId"] for m in replayed} == set(expected)


# -- 13.3 ------------------------------------------------------------------------------------------
def _fill_fifo_dlq(q: Queues, rng: random.Random) -> list[dict]:
    """Several groups, each longer than one receive (10), the first messages of each of topic `a.*`."""
    events = []
    for g in range(rng.randint(4, 7)):
        length = rng.randint(12, 25)
        for i in range(length):
            events.append(
                {"topic": "a.head" if i < 3 else "b.tail", "urn": f"g{g}", "payload": {"seq": i}}
            )
    client = sqs_client()
    for start in range(0, len(events), 10):
        client.send_message_batch(
            QueueUrl=q.dlq,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": json.dumps(e),
                    "MessageGroupId": e["urn"],
                    "MessageDeduplicationId": uuid.uuid4().hex,
                }
                for n, e in enumerate(events[start : start + 10])
            ],
        )
    return events


def test_peek_and_plan_of_a_fifo_queue_say_when_groups_hide_messages(wfbus, queues):
    rng = random.Random(_seed())
    q = queues(fifo=True)
    events = _fill_fifo_dlq(q, rng)
    result = wfbus("-o", "jsonl", "peek", "--dead-letter", "--all")
    assert result.code == 1 and "were not examined" in result.err, (result.code, result.err)
    assert q.count(q.dlq) == len(events)
    result = wfbus("-o", "json", "replay", "--dry-run")
    assert result.code == 1 and "were not examined" in result.err + result.out
    # a peek that asks no more than the groups' first messages is complete and exits 0
    result = wfbus("-o", "jsonl", "peek", "--dead-letter", "-n", "10")
    assert result.code == 0 and len(result.out.splitlines()) == 10
    time.sleep(0.5)
    assert q.count(q.dlq) == len(events)


def test_selective_fifo_replay_says_what_it_could_not_examine(wfbus, queues):
    rng = random.Random(_seed())
    q = queues(fifo=True)
    events = _fill_fifo_dlq(q, rng)
    result = wfbus("-o", "json", "replay", "--topic", "b.*")
    assert result.code == 1 and "were not examined" in result.err + result.out, (
        result.code,
        result.err,
    )
    doc = result.json()
    # one receive hands out up to 10 of a group: its `b.tail` ones among them are replayed; behind
    # the unselected `a.head` messages that stay, SQS hands out nothing more of the group
    lengths = defaultdict(int)
    for event in events:
        lengths[event["urn"]] += 1
    reachable = sum(min(length, 10) - 3 for length in lengths.values())
    assert doc["replayed"] == reachable
    assert q.count(q.dlq) == len(events) - reachable
    q.drain(q.main)
    result = wfbus(
        "-o", "json", "replay"
    )  # without filters each group moves on: complete, in order
    assert result.code == 0 and result.json()["replayed"] == len(events) - reachable
    expected = _per_group([json.dumps(e) for e in events])
    replayed_first = {
        json.dumps(e) for e in events if e["topic"] == "b.tail" and e["payload"]["seq"] < 10
    }
    rest = _per_group([json.dumps(e) for e in events if json.dumps(e) not in replayed_first])
    assert _per_group([m["Body"] for m in q.drain(q.main)]) == rest
    assert sum(map(len, expected.values())) == len(events)


def test_peek_longer_than_the_visibility_timeout_reads_each_message_once(
    wfbus, queues, tmp_path, monkeypatch
):
    q = queues(visibility_timeout=2)
    client = sqs_client()
    total = 400
    for start in range(0, total, 10):
        client.send_message_batch(
            QueueUrl=q.dlq,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"topic": "t", "urn": f"u{start + n}"})}
                for n in range(10)
            ],
        )
    receive = SqsBroker._receive

    def slow_receive(
        self, *args, **kwargs
    ):  # a slow network: the read outlasts the visibility timeout
        time.sleep(0.12)
        return receive(self, *args, **kwargs)

    monkeypatch.setattr(SqsBroker, "_receive", slow_receive)
    started = time.monotonic()
    result = wfbus("-o", "jsonl", "peek", "--dead-letter", "--all")
    assert time.monotonic() - started > 4  # well past the 2 s visibility timeout
    assert result.code == 0, result.err
    urns = [json.loads(line)["urn"] for line in result.out.splitlines()]
    assert sorted(urns) == sorted(f"u{i}" for i in range(total))  # each once
    time.sleep(0.5)
    assert q.count(q.dlq) == total


# -- typed origin ----------------------------------------------------------------------------------
def test_an_sqs_to_sqs_replay_keeps_every_attribute_type_for_type(wfbus, queues):
    q = queues(fifo=True)
    attributes = {
        "topic": {"DataType": "String", "StringValue": "order.submit"},
        "attempt": {"DataType": "Number", "StringValue": "3"},
        "ratio": {"DataType": "Number.float", "StringValue": "0.25"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10binary"},
        "image": {"DataType": "Binary.gif", "BinaryValue": b"GIF89a\x01"},
        "tenant": {"DataType": "String.tenant-id", "StringValue": "acme"},
    }
    body = json.dumps({"topic": "order.submit", "urn": "o-1", "attempt": 3})
    foreign = "not json at all \u00e9"
    client = sqs_client()
    client.send_message(
        QueueUrl=q.dlq,
        MessageBody=body,
        MessageAttributes=attributes,
        MessageGroupId="grp-1",
        MessageDeduplicationId="d1",
    )
    client.send_message(
        QueueUrl=q.dlq,
        MessageBody=foreign,
        MessageAttributes={"blob": attributes["blob"]},
        MessageGroupId="grp-2",
        MessageDeduplicationId="d2",
    )
    result = wfbus("-o", "json", "replay")
    assert result.code == 0, result.err
    replayed = {m["Body"]: m for m in q.drain(q.main)}
    assert set(replayed) == {body, foreign}
    got = replayed[body]["MessageAttributes"]
    assert got.pop("replayed-from")["StringValue"].endswith("-dlq.fifo")
    got.pop("event-id", None)
    got.pop("urn", None)  # wfbus's own additions, where there was room
    assert got == attributes
    assert replayed[body]["Attributes"]["MessageGroupId"] == "grp-1"
    assert replayed[foreign]["Attributes"]["MessageGroupId"] == "grp-2"
    assert replayed[foreign]["MessageAttributes"]["blob"] == attributes["blob"]


# -- 12.18 and identity ----------------------------------------------------------------------------
def test_the_reader_names_the_queue_and_what_others_hold(queues, tmp_path):
    q = queues()
    client = sqs_client()
    for start in range(0, 30, 10):
        client.send_message_batch(
            QueueUrl=q.dlq,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"topic": "t", "urn": f"u{start + n}"})}
                for n in range(10)
            ],
        )
    held = client.receive_message(QueueUrl=q.dlq, MaxNumberOfMessages=10, VisibilityTimeout=120)[
        "Messages"
    ]
    held += client.receive_message(QueueUrl=q.dlq, MaxNumberOfMessages=2, VisibilityTimeout=120)[
        "Messages"
    ]
    assert len(held) == 12  # a killed run still holds these
    broker = SqsBroker("q", SqsSettings(**q.settings()), tmp_path)
    try:
        with broker.dead_letter_reader() as reader:
            assert reader.identity == q.dlq_arn
            mine = reader.receive(5)
            assert len(mine) == 5
            count, seconds = reader.held_elsewhere()
            assert count == 12  # not the 5 this reader holds
            assert (
                seconds is not None and seconds >= 30
            )  # the queue's VisibilityTimeout (30) at least
        with broker.dead_letter_reader() as reader:
            assert reader.held_elsewhere()[0] == 12
    finally:
        broker.close()
    client.change_message_visibility_batch(
        QueueUrl=q.dlq,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(held[:10])
        ],
    )
    broker = SqsBroker("q", SqsSettings(**q.settings()), tmp_path)
    try:
        with broker.dead_letter_reader() as reader:
            assert reader.held_elsewhere()[0] == 2
    finally:
        broker.close()


# -- 12.9 ------------------------------------------------------------------------------------------
def test_a_group_template_naming_an_unknown_field_is_a_config_error(wfbus, queues, tmp_path):
    q = queues(fifo=True, message_group_id="{tenant}")
    result = wfbus("emit", "--topic", "t", "--urn", "u")
    assert result.code == 4, (result.code, result.err)
    assert (
        "message_group_id" in result.err
        and "{tenant}" in result.err
        and "Traceback" not in result.err
    )
    assert q.count(q.main) == 0


def test_a_message_with_ten_attributes_is_replayed_as_it_was(wfbus, queues):
    """SQS -> SQS: the message's own ten attributes come first; wfbus's additions give way."""
    q = queues()
    attributes = {f"a{i}": {"DataType": "String", "StringValue": f"v{i}"} for i in range(9)}
    attributes["attempt"] = {"DataType": "Number", "StringValue": "2"}
    sqs_client().send_message(
        QueueUrl=q.dlq,
        MessageBody=json.dumps({"topic": "t", "urn": "u", "attempt": 2}),
        MessageAttributes=attributes,
    )
    result = wfbus("-o", "json", "replay")
    assert result.code == 0, result.err
    [message] = q.drain(q.main)
    assert message["MessageAttributes"] == attributes


def test_the_size_limit_counts_the_attributes(wfbus, queues, tmp_path):
    """A body just under 256 KiB: wfbus's own attributes give way so the message fits as SQS counts it."""
    q = queues()
    event = {"topic": "t", "urn": "u", "payload": "x"}
    base = len(json.dumps(event, separators=(",", ":")).encode()) + len(',"attempt":0')
    event["payload"] = "x" * (262_144 - base - 30)
    write_jsonl(tmp_path / "e.jsonl", [event])
    result = wfbus("emit", "e.jsonl")
    assert result.code == 0, result.err
    [message] = q.drain(q.main)
    size = len(message["Body"].encode()) + sum(
        len(n) + len(a["DataType"]) + len(a["StringValue"].encode())
        for n, a in message.get("MessageAttributes", {}).items()
    )
    assert len(message["Body"].encode()) > 262_144 - 40 and size <= 262_144

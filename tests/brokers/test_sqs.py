"""SQS behaviour that the server decides, on a real SQS-compatible server (ElasticMQ)."""

from __future__ import annotations

import json
import time

import pytest
from conftest import write_config, write_jsonl
from contract.kits import SQS_ENDPOINT, SqsFifoKit, SqsKit, sqs_client

pytestmark = pytest.mark.broker("sqs")


@pytest.fixture
def sqs(tmp_path, wfbus):
    kits = []

    def make(kit_class=SqsKit, max_receive_count=10, **extra):
        kit = kit_class()
        kit.max_receive_count = max_receive_count
        settings = {**kit.settings(tmp_path), **extra}
        kits.append(kit)
        write_config(
            tmp_path / "wfbus.yaml",
            {"q": settings, "spare": {"type": "local", "path": "spare.db"}},
            "q",
        )
        return kit

    yield make
    for kit in kits:
        kit.cleanup()


def test_messages_dead_lettered_by_real_receives_are_replayed_with_their_attributes(
    wfbus, sqs, tmp_path
):
    kit = sqs(max_receive_count=1)
    write_jsonl(
        tmp_path / "e.jsonl",
        [{"topic": "order.submit", "urn": f"o-{i}", "attempt": 3} for i in range(5)],
    )
    assert wfbus("emit", "e.jsonl").code == 0
    client = sqs_client()
    main, dlq = kit.queue_urls
    # a consumer fails: it receives each message and never deletes it
    for _ in range(10):
        client.receive_message(
            QueueUrl=main, MaxNumberOfMessages=10, VisibilityTimeout=1, WaitTimeSeconds=1
        )
        if (
            int(
                client.get_queue_attributes(
                    QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]["ApproximateNumberOfMessages"]
            )
            == 5
        ):
            break
        time.sleep(1.1)
    depth = {
        q["role"]: q["ready"] for q in wfbus("depth", "-b", "q", "-o", "json").json()["queues"]
    }
    assert depth == {"main": 0, "dead-letter": 5}

    assert wfbus("replay").code == 0
    messages = client.receive_message(
        QueueUrl=main, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 5
    for message in messages:
        attributes = message["MessageAttributes"]
        body = json.loads(message["Body"])
        assert attributes["attempt"] == {"DataType": "Number", "StringValue": "3"}
        assert attributes["urn"]["StringValue"] == body["urn"]
        assert attributes["replayed-from"]["StringValue"].endswith("-dlq")
        assert attributes["event-id"]["StringValue"]


def test_fifo_group_is_the_urn_and_dedup_is_the_event_id(wfbus, sqs, tmp_path):
    kit = sqs(SqsFifoKit)
    event = ["--topic", "order.submit", "--urn", "order-9"]
    assert wfbus("emit", *event).code == 0
    assert wfbus("emit", *event).code == 0  # a retried CI job: SQS drops the duplicate
    messages = sqs_client().receive_message(
        QueueUrl=kit.queue_urls[0],
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
    )["Messages"]
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageGroupId"] == "order-9"


def test_fifo_replay_uses_a_fresh_dedup_id_so_it_is_not_dropped(wfbus, sqs):
    kit = sqs(SqsFifoKit)
    assert wfbus("emit", "--topic", "t", "--urn", "u1").code == 0
    assert (
        wfbus("emit", "--dead-letter", "--topic", "t", "--urn", "u1").code == 0
    )  # same event id, same 5 minutes
    assert wfbus("replay", "-o", "json").json()["replayed"] == 1
    assert {
        q["role"]: q["ready"] for q in wfbus("depth", "-b", "q", "-o", "json").json()["queues"]
    } == {"main": 2, "dead-letter": 0}
    messages = sqs_client().receive_message(
        QueueUrl=kit.queue_urls[0],
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
    )["Messages"]
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"u1"}


def test_a_rejected_entry_in_a_batch_fails_only_that_event_with_exit_1(wfbus, sqs, tmp_path):
    sqs()
    events = [{"topic": "t", "urn": f"u{i}"} for i in range(12)]
    events[4]["payload"] = {"text": "bad \uffff"}  # SQS refuses U+FFFF in a message body
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1
    doc = result.json()
    assert doc["published"] == 11
    assert [f["place"] for f in doc["failed"]] == ["e.jsonl:5"]
    assert "U+FFFF" in doc["failed"][0]["error"]  # refused before sending: SQS would refuse it
    assert [
        json.loads(line)["urn"] for line in (tmp_path / "failed.jsonl").read_text().splitlines()
    ] == ["u4"]


def test_an_event_over_the_queue_size_limit_is_an_input_error_before_sending(wfbus, sqs, tmp_path):
    sqs()  # ElasticMQ does not report MaximumMessageSize: SQS's own 256 KiB applies
    write_jsonl(
        tmp_path / "e.jsonl",
        [{"topic": "t", "urn": "small"}, {"topic": "t", "urn": "big", "payload": "x" * 270_000}],
    )
    result = wfbus("emit", "e.jsonl")
    assert (
        result.code == 3
        and "e.jsonl:2: event is" in result.err
        and "262,144-byte limit" in result.err
    )
    assert wfbus("depth", "-b", "q", "-o", "json").json()["queues"][0]["ready"] == 0


def test_peeking_a_queue_with_a_redrive_policy_needs_force(wfbus, sqs):
    sqs()
    result = wfbus("peek")
    assert result.code == 2 and "--force" in result.err


def test_unknown_queue_and_unreachable_endpoint_exit_5_promptly(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "gone": {
                "type": "sqs",
                "queue_url": f"{SQS_ENDPOINT}/000000000000/no-such-queue",
                "endpoint_url": SQS_ENDPOINT,
                "region": "us-east-1",
                "aws_access_key_id": "t",
                "aws_secret_access_key": "t",
            },
            "down": {
                "type": "sqs",
                "queue_name": "q",
                "endpoint_url": "http://127.0.0.1:9",
                "region": "us-east-1",
                "aws_access_key_id": "t",
                "aws_secret_access_key": "t",
                "timeout_seconds": 2,
            },
        },
    )
    result = wfbus("emit", "-b", "gone", "--topic", "t", "--urn", "u")
    assert (
        result.code == 5 and "queue does not exist" in result.err and "Traceback" not in result.err
    )
    started = time.monotonic()
    result = wfbus("emit", "-b", "down", "--topic", "t", "--urn", "u")
    assert result.code == 5 and "cannot reach SQS" in result.err
    assert time.monotonic() - started < 30


def test_native_replay_uses_the_servers_move_task(wfbus, sqs, tmp_path):
    sqs()
    write_jsonl(tmp_path / "e.jsonl", [{"topic": "t", "urn": f"n{i}"} for i in range(25)])
    assert wfbus("emit", "--dead-letter", "e.jsonl").code == 0
    result = wfbus("-o", "json", "replay", "--native")
    assert result.code == 0, result.err
    assert result.json()["status"] == "COMPLETED"
    assert {
        q["role"]: q["ready"] for q in wfbus("depth", "-b", "q", "-o", "json").json()["queues"]
    } == {"main": 25, "dead-letter": 0}


def test_native_replay_refuses_filters(wfbus, sqs):
    sqs()
    result = wfbus("replay", "--native", "--topic", "x")
    assert result.code == 2 and "--native moves the whole dead-letter queue" in result.err

"""Holdout check: the AWS SDK for JavaScript reads what a wfbus replay produced on SQS, and it equals what
was dead-lettered — body, every message attribute type for type, and the order within each group.

The dead-letter queue is filled with boto3, not with wfbus (events and foreign bodies, String, Number,
Binary and custom-typed attributes, 7 groups each longer than a replay batch); the destination is read
by Node (tests/holdout/sqs/consume.mjs), so neither end of the check is wfbus's own code.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import write_config
from contract.kits import SQS_ENDPOINT, SqsFifoKit, SqsKit, sqs_client

HERE = Path(__file__).parent / "sqs"
WFBUS_ATTRIBUTES = {"replayed-from", "topic", "urn", "attempt", "event-id"}  # what a replay may add


def _dlq_url(client, main_url: str) -> str:
    policy = json.loads(client.get_queue_attributes(QueueUrl=main_url, AttributeNames=["RedrivePolicy"])
                        ["Attributes"]["RedrivePolicy"])
    return client.get_queue_url(QueueName=policy["deadLetterTargetArn"].rsplit(":", 1)[-1])["QueueUrl"]


def _messages(rng: random.Random) -> list[dict]:
    out = []
    for n in range(7 * 45):
        group = f"g-{rng.randrange(7)}"
        if n % 4:
            body = json.dumps({"topic": "order.submit", "urn": group, "payload": {"n": n, "pw": "guest ✓"},
                               "attempt": n % 3}, separators=(",", ":"), ensure_ascii=False)
        else:
            body = f"foreign body #{n} — ünïcode"
        attributes = {
            "source-app": {"DataType": "String", "StringValue": f"billing-{n % 5}"},
            "retries": {"DataType": "Number", "StringValue": str(n % 7)},
            "price": {"DataType": "Number.float", "StringValue": "19.99"},
            "trace": {"DataType": "Binary", "BinaryValue": bytes([n % 256, 0, 255, 1])},
            "kind": {"DataType": "String.custom", "StringValue": "legacy"},
        }
        out.append({"body": body, "group": group, "attributes": attributes})
    return out


@pytest.mark.parametrize("kit_class", [SqsFifoKit, SqsKit], ids=["fifo", "standard"])
def test_what_a_replay_produced_reads_back_in_node_as_it_was_dead_lettered(wfbus, tmp_path, kit_class):
    if not (HERE / "node_modules").is_dir():  # .ci/run installs it; a developer's first run does it here
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True, timeout=300)
    kit = kit_class()
    settings = kit.settings(tmp_path)
    write_config(tmp_path / "wfbus.yaml", {"target": settings}, default="target")
    try:
        client = sqs_client()
        dlq = _dlq_url(client, settings["queue_url"])
        rng = random.Random(7)
        sent = _messages(rng)
        for index, message in enumerate(sent):
            extra = {"MessageGroupId": message["group"], "MessageDeduplicationId": f"d{index}"} if kit.fifo else {}
            client.send_message(QueueUrl=dlq, MessageBody=message["body"], MessageAttributes=message["attributes"],
                                **extra)

        result = wfbus("-o", "json", "replay", "-b", "target", "--batch", "20")
        assert result.code == 0, result.err
        assert result.json()["replayed"] == len(sent)

        read = subprocess.run(["node", "consume.mjs", SQS_ENDPOINT, settings["queue_url"], str(len(sent))],
                              cwd=HERE, capture_output=True, timeout=300, check=True)
        received = [json.loads(line) for line in read.stdout.decode().splitlines()]
        assert len(received) == len(sent)
        originals = {m["body"]: m for m in sent}
        assert sorted(r["body"] for r in received) == sorted(originals)  # each once, byte for byte
        for got in received:
            original = originals[got["body"]]
            for name, value in original["attributes"].items():
                expected = dict(value)
                if "BinaryValue" in expected:
                    expected["BinaryValue"] = base64.b64encode(expected["BinaryValue"]).decode()
                assert got["attributes"].get(name) == expected, (name, got["attributes"].get(name))
            assert set(got["attributes"]) - set(original["attributes"]) <= WFBUS_ATTRIBUTES
            assert got["attributes"]["replayed-from"]["StringValue"]
            if kit.fifo:
                assert got["group"] == original["group"]
        if kit.fifo:
            by_group_sent, by_group_read = defaultdict(list), defaultdict(list)
            for m in sent:
                by_group_sent[m["group"]].append(m["body"])
            for r in received:
                by_group_read[r["group"]].append(r["body"])
            assert by_group_read == by_group_sent  # per-group order as dead-lettered
    finally:
        kit.cleanup()

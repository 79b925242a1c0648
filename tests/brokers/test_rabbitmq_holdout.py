"""Holdout check: another language's AMQP client (Node amqplib, tests/holdout/rabbitmq) reads the dead-letter
queue before a replay and the destination after it: what it sees must be what was dead-lettered.

Needs `npm ci --prefix tests/holdout/rabbitmq` (the lock file pins amqplib)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest
from conftest import REPO
from contract.kits import RABBITMQ_URL

from brokers.test_rabbitmq_fidelity import DEATH_KEYS, dead_letter_typed_messages

pytestmark = pytest.mark.broker("rabbitmq")

HOLDOUT = REPO / "tests" / "holdout" / "rabbitmq"


def node_read(queue: str, mode: str) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is not installed (the holdout consumer is a Node script)"
    assert (HOLDOUT / "node_modules" / "amqplib").is_dir(), (
        f"amqplib is not installed: run `npm ci --prefix {HOLDOUT.relative_to(REPO)}`"
    )
    done = subprocess.run(
        [node, str(HOLDOUT / "read.js"), RABBITMQ_URL, queue, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_independent_node_consumer_reads_after_replay_exactly_what_was_dead_lettered(
    wfbus, rabbit, tmp_path
):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    count = 16
    dead_letter_typed_messages(rabbit, count, seed)
    dlq, queue = rabbit["dead_letter_queue"], rabbit["queue"]
    before = node_read(dlq, "peek")
    assert len(before) == count
    # amqplib sees the types the publisher gave (not text): the comparison below is type for type
    assert before[0]["headers"]["small-int"] == {"number": 3} and before[1]["headers"][
        "double"
    ] == {"number": 1.25}
    assert set(before[0]["headers"]["bytes"]) == {"bytes"} and set(
        before[0]["headers"]["stamp"]
    ) == {"timestamp"}

    result = wfbus("-o", "json", "replay", "--batch", "3")
    assert result.code == 0, result.err
    after = node_read(queue, "take")
    assert node_read(dlq, "peek") == []
    assert len(after) == count
    for was, now in zip(before, after, strict=False):
        assert now["body"] == was["body"]
        assert now["properties"] == was["properties"]
        publish_id = now["headers"].pop("wfbus-publish-id")
        assert set(publish_id) == {"string"}
        expected = {k: v for k, v in was["headers"].items() if k not in DEATH_KEYS}
        expected["replayed-from"] = {"string": f"r:{dlq}"}
        assert now["headers"] == expected
        deaths = was["headers"].get("x-death")
        first_key = (
            deaths["array"][0]["table"]["routing-keys"]["array"][0]["string"]
            if deaths
            else "order.typed"
        )
        assert now["routingKey"] == first_key

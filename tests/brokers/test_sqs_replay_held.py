"""A rerun after killed SQS replays does not say "done" while messages are still held at the source."""

from __future__ import annotations

import json

from conftest import write_config, write_jsonl
from contract.kits import SqsKit, sqs_client


def test_a_replay_that_cannot_see_held_messages_says_how_many_and_exits_1(wfbus, tmp_path):
    kit = SqsKit()
    settings = kit.settings(tmp_path)
    write_config(tmp_path / "wfbus.yaml", {"target": settings}, default="target")
    try:
        write_jsonl(
            tmp_path / "dlq.jsonl", [{"topic": "order.submit", "urn": f"h{i}"} for i in range(30)]
        )
        assert wfbus("emit", "--dead-letter", "dlq.jsonl").code == 0
        client = sqs_client()
        dlq = kit.queue_urls[1]
        held = 0
        while held < 8:  # what a killed replay leaves: messages received, invisible for a while
            held += len(
                client.receive_message(
                    QueueUrl=dlq, MaxNumberOfMessages=min(10, 8 - held), VisibilityTimeout=120
                ).get("Messages", [])
            )
        result = wfbus("-o", "json", "replay")
        assert result.code == 1, result.err  # was 0: "replayed 22 of 22" as if the DLQ were drained
        report = json.loads(result.out)
        assert report["replayed"] == 22 and report["held_elsewhere"] == 8
        assert report[
            "held_return_seconds"
        ]  # a killed wfbus run's hold; another consumer's may be longer
        text = wfbus("replay")
        assert (
            text.code == 1
            and "8 message(s) in the dead-letter queue are held elsewhere" in text.err
        )
    finally:
        kit.cleanup()


def test_native_dry_run_previews_the_server_side_move_and_starts_nothing(wfbus, tmp_path):
    kit = SqsKit()
    settings = kit.settings(tmp_path)
    write_config(tmp_path / "wfbus.yaml", {"target": settings}, default="target")
    try:
        write_jsonl(
            tmp_path / "dlq.jsonl", [{"topic": "order.submit", "urn": f"n{i}"} for i in range(12)]
        )
        assert wfbus("emit", "--dead-letter", "dlq.jsonl").code == 0
        plan = wfbus("-o", "json", "replay", "--native", "--dry-run")
        assert plan.code == 0, plan.err
        assert plan.json()["dry_run"] is True and plan.json()["messages"] == 12
        text = wfbus("replay", "--native", "--dry-run")
        assert "would be moved" in text.out and "StartMessageMoveTask" in text.out
        depth = {q["role"]: q["ready"] for q in wfbus("-o", "json", "depth").json()["queues"]}
        assert depth == {"main": 0, "dead-letter": 12}  # nothing was moved
    finally:
        kit.cleanup()

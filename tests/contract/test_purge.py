"""`wfbus purge` empties exactly the queue it names, on every broker type, and says how many it removed."""

from __future__ import annotations

import time

from conftest import write_jsonl


def _depth(wfbus) -> dict[str, int]:
    rows = wfbus("depth", "-b", "target", "-o", "json").json()["queues"]
    return {r["role"]: (r["ready"] or 0) + (r["in_flight"] or 0) for r in rows}


def test_purge_empties_the_dead_letter_queue_and_leaves_the_main_one(wfbus, target, tmp_path):
    write_jsonl(
        tmp_path / "dead.jsonl", [{"topic": "order.submit", "urn": f"d{i}"} for i in range(5)]
    )
    write_jsonl(
        tmp_path / "main.jsonl", [{"topic": "order.submit", "urn": f"m{i}"} for i in range(3)]
    )
    assert wfbus("emit", "-b", "target", "--dead-letter", "dead.jsonl").code == 0
    assert wfbus("emit", "-b", "target", "main.jsonl").code == 0

    plan = wfbus("-o", "json", "purge", "-b", "target", "--dead-letter", "--dry-run")
    assert plan.code == 0 and plan.json()["would_remove"] == 5
    assert _depth(wfbus)["dead-letter"] == 5  # a dry run removes nothing

    result = wfbus("-o", "json", "purge", "-b", "target", "--dead-letter")
    assert result.code == 0, result.err
    assert result.json()["removed"] == 5
    deadline = time.monotonic() + 70  # SQS removes purged messages "within a minute"
    while _depth(wfbus)["dead-letter"] and time.monotonic() < deadline:
        time.sleep(1)
    assert _depth(wfbus) == {
        "main": 3,
        "dead-letter": 0,
    }  # Kafka: the replay group moved past the records
    assert wfbus("-o", "json", "replay", "-b", "target").json()["replayed"] == 0

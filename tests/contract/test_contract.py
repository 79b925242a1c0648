"""The behaviour every broker must show, run against each real server (faststream's idea).

Each test gets a fresh broker `target` in ./wfbus.yaml and speaks to it only through wfbus.
"""

from __future__ import annotations

import json
import time

from conftest import write_jsonl
from wfbus.config import load

EVENTS = [
    {"topic": "order.submit", "urn": "order-1", "payload": {"total": 150.0, "note": "größe"}, "attempt": 0},
    {"topic": "order.approve", "urn": 42, "attempt": 1},
    {"topic": "billing.charge", "urn": "inv-7", "payload": None, "attempt": 2},
    {"topic": "order.ship", "urn": "order-1", "payload": [1, 2, 3], "attempt": 0},
]


def _depth(wfbus) -> dict[str, int]:
    """ready count by role."""
    return {q["role"]: q["ready"] for q in wfbus("depth", "-b", "target", "-o", "json").json()["queues"]}


def _peek(wfbus, *flags: str) -> list[dict]:
    result = wfbus("peek", "-b", "target", "--all", "--force", "-o", "json", *flags)
    assert result.code == 0, result.err
    return json.loads(result.out)


def same_events(kit, actual: list[dict], expected: list[dict]) -> bool:
    """Equal, in order where the broker promises an order (total, or per urn)."""
    if kit.order == "total":
        return actual == expected
    if kit.order == "none":
        return sorted(map(json.dumps, actual)) == sorted(map(json.dumps, expected))
    by_key = lambda events: {str(k): [e for e in events if str(e["urn"]) == str(k)] for k in {str(e["urn"]) for e in events}}  # noqa: E731
    return len(actual) == len(expected) and by_key(actual) == by_key(expected)


def _emit(wfbus, tmp_path, events, *flags: str):
    path = write_jsonl(tmp_path / f"events-{time.monotonic_ns()}.jsonl", events)
    result = wfbus("emit", "-b", "target", str(path), *flags)
    assert result.code == 0, result.err
    return result


def test_published_events_read_back_identical_and_in_order(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS)
    assert same_events(target, _peek(wfbus), EVENTS)


def test_headers_carry_topic_urn_attempt_and_event_id(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS[:2])
    with load(None).open("target") as broker:
        messages = broker.peek(dead_letter=False, limit=None, force=True)
    from wfbus.event import parse_event

    assert [m.headers for m in messages] == [
        {"topic": e["topic"], "urn": str(e["urn"]), "attempt": str(e["attempt"]),
         "event-id": parse_event(e).event_id} for e in EVENTS[:2]
    ]


def test_depth_counts_what_was_published(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS)
    assert _depth(wfbus) == {"main": 4, "dead-letter": 0}


def test_peek_leaves_messages_in_place(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS)
    first = _peek(wfbus)
    assert same_events(target, _peek(wfbus), first)
    assert _depth(wfbus) == {"main": 4, "dead-letter": 0}


def test_dead_letter_publish_goes_to_the_dead_letter_destination(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    assert _depth(wfbus) == {"main": 0, "dead-letter": 4}
    assert same_events(target, _peek(wfbus, "--dead-letter"), EVENTS)


def test_replay_moves_everything_in_order(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    result = wfbus("replay", "-b", "target", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["replayed"] == 4
    assert same_events(target, _peek(wfbus), EVENTS)
    assert _depth(wfbus) == {"main": 4, "dead-letter": 0}


def test_replay_moves_exactly_the_selected_and_leaves_the_rest(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    result = wfbus("replay", "-b", "target", "--topic", "order.*", "--urn", "order-1", "-o", "json")
    assert result.code == 0, result.err
    report = result.json()
    assert (report["selected"], report["replayed"], report["left"]) == (2, 2, 2)
    assert same_events(target, _peek(wfbus), [EVENTS[0], EVENTS[3]])
    rest = _peek(wfbus, "--dead-letter")
    if target.passes_over_unselected:
        assert report["unselected_passed_over"] is True
    else:
        assert same_events(target, rest, [EVENTS[1], EVENTS[2]])


def test_replay_limit_moves_n_and_leaves_the_rest(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    result = wfbus("replay", "-b", "target", "--limit", "3", "-o", "json")
    assert result.json()["replayed"] == 3
    moved = _peek(wfbus)
    assert len(moved) == 3
    if target.order == "total":
        assert moved == EVENTS[:3]
    if not target.passes_over_unselected:
        assert same_events(target, moved + _peek(wfbus, "--dead-letter"), EVENTS)


def test_replay_dry_run_changes_nothing(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    result = wfbus("replay", "-b", "target", "--dry-run", "-o", "json")
    assert result.code == 0
    report = result.json()
    assert (report["dry_run"], report["selected"], report["replayed"]) == (True, 4, 0)
    assert report["by_topic"] == {"order.submit": 1, "order.approve": 1, "billing.charge": 1, "order.ship": 1}
    assert _depth(wfbus) == {"main": 0, "dead-letter": 4}
    assert same_events(target, _peek(wfbus, "--dead-letter"), EVENTS)


def test_replayed_messages_say_where_they_came_from(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS[:1], "--dead-letter")
    assert wfbus("replay", "-b", "target").code == 0
    with load(None).open("target") as broker:
        [message] = broker.peek(dead_letter=False, limit=None, force=True)
    assert message.headers["replayed-from"].startswith("target:")
    assert message.headers["event-id"]


def test_replay_to_another_broker(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    result = wfbus("replay", "-b", "target", "--to", "spare", "-o", "json")
    assert result.code == 0, result.err
    assert same_events(target, json.loads(wfbus("peek", "-b", "spare", "--all", "-o", "json").out), EVENTS)
    assert _depth(wfbus)["dead-letter"] == 0


def test_peek_output_is_accepted_back_by_emit(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    dump = wfbus("peek", "-b", "target", "--dead-letter", "--all", "--force", "-o", "jsonl")
    (tmp_path / "backup.jsonl").write_text(dump.out)
    assert wfbus("emit", "-b", "spare", "backup.jsonl").code == 0
    assert same_events(target, json.loads(wfbus("peek", "-b", "spare", "--all", "-o", "json").out), EVENTS)

"""What an operator relies on during an incident, on every broker: selection, attempt policy, plan,
resume after a crash."""

from __future__ import annotations

import json

from conftest import write_jsonl

from contract.test_contract import _depth, _peek, same_events
from wfbus.config import load
from wfbus.journal import Journal

EVENTS = [
    {"topic": "order.submit", "urn": "o-1", "payload": {"region": "eu", "total": 10}, "attempt": 0},
    {"topic": "order.submit", "urn": "o-2", "payload": {"region": "us", "total": 20}, "attempt": 3},
    {"topic": "order.ship", "urn": "o-3", "payload": {"region": "eu", "total": 30}, "attempt": 5},
    {"topic": "billing.charge", "urn": "b-1", "payload": {"region": "eu"}, "attempt": 1},
]


def _seed(wfbus, tmp_path):
    write_jsonl(tmp_path / "dlq.jsonl", EVENTS)
    assert wfbus("emit", "-b", "target", "--dead-letter", "dlq.jsonl").code == 0


def test_match_and_attempt_range_select_exactly(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    result = wfbus(
        "replay",
        "-b",
        "target",
        "--match",
        "payload.region=eu",
        "--min-attempt",
        "1",
        "--max-attempt",
        "5",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    assert (result.json()["selected"], result.json()["replayed"]) == (2, 2)
    assert same_events(target, _peek(wfbus), [EVENTS[2], EVENTS[3]])
    if not target.passes_over_unselected:
        assert same_events(target, _peek(wfbus, "--dead-letter"), [EVENTS[0], EVENTS[1]])


def test_match_compares_numbers_as_json(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    result = wfbus("replay", "-b", "target", "--match", "payload.total=20", "-o", "json")
    assert result.json()["replayed"] == 1
    assert _peek(wfbus) == [EVENTS[1]]


def test_attempt_increment_adds_one(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    assert wfbus("replay", "-b", "target", "--topic", "order.*", "--attempt", "increment").code == 0
    assert sorted(e["attempt"] for e in _peek(wfbus)) == [1, 4, 6]


def test_attempt_reset_sets_zero_and_headers_follow_the_body(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    assert wfbus("replay", "-b", "target", "--attempt", "reset").code == 0
    assert [e["attempt"] for e in _peek(wfbus)] == [0, 0, 0, 0]
    with load(None).open("target") as broker:
        messages = broker.peek(dead_letter=False, limit=None, force=True)
    from wfbus.event import parse_event

    for message in messages:  # the attempt header and the event id are those of the new event
        body = json.loads(message.body)
        assert message.headers["attempt"] == "0"
        assert message.headers["event-id"] == parse_event(body).event_id


def test_plan_groups_by_topic_and_attempt(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    plan = wfbus("replay", "-b", "target", "--dry-run", "--topic", "order.*", "-o", "json").json()
    assert plan["by_topic"] == {"order.submit": 2, "order.ship": 1, "billing.charge": 1}
    assert plan["by_attempt"] == {"0": 1, "3": 1, "5": 1, "1": 1}
    assert plan["selected"] == 3 and plan["replayed"] == 0
    assert _depth(wfbus)["dead-letter"] == 4
    text = wfbus("replay", "-b", "target", "--dry-run").out
    assert "by topic" in text and "by attempt" in text and "sample of the selected events" in text


def test_a_publish_confirmed_before_a_crash_is_not_published_again(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    with load(None).open("target") as broker:
        dead = broker.peek(dead_letter=True, limit=None, force=True)
        with broker.dead_letter_reader() as reader:  # the journal is keyed by the source's identity
            source = reader.identity or f"{broker.name}:{reader.source_label}"
    first = next(m for m in dead if json.loads(m.body)["urn"] == "o-1")
    journal = Journal(source)
    journal.mark_published(
        [first.journal_key]
    )  # what a run killed between confirm and removal leaves
    journal.close()

    result = wfbus("replay", "-b", "target", "-o", "json")
    assert result.code == 0, result.err
    assert (result.json()["replayed"], result.json()["resumed"]) == (4, 1)
    assert same_events(target, _peek(wfbus), EVENTS[1:])
    assert _depth(wfbus)["dead-letter"] == 0


def test_the_plan_shows_what_is_selected_beside_what_was_examined(wfbus, target, tmp_path):
    _seed(wfbus, tmp_path)
    plan = wfbus("replay", "-b", "target", "--dry-run", "--topic", "order.*", "-o", "json").json()
    assert plan["selected_by_topic"] == {"order.submit": 2, "order.ship": 1}
    text = wfbus("replay", "-b", "target", "--dry-run", "--topic", "order.*").out
    assert "topic           examined  selected" in text and "billing.charge  1         0" in text


def test_contradictory_attempt_bounds_are_a_usage_error(wfbus, target):
    result = wfbus("replay", "-b", "target", "--min-attempt", "3", "--max-attempt", "1")
    assert result.code == 2 and "--min-attempt 3 is above --max-attempt 1" in result.err

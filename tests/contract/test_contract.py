"""The behaviour every broker must show, run against each real server (faststream's idea).

Each test gets a fresh broker `target` in ./wfbus.yaml and speaks to it only through wfbus.
"""

from __future__ import annotations

import json
import time

from conftest import write_jsonl

from wfbus.config import load

EVENTS = [
    {
        "topic": "order.submit",
        "urn": "order-1",
        "payload": {"total": 150.0, "note": "größe"},
        "attempt": 0,
    },
    {"topic": "order.approve", "urn": 42, "attempt": 1},
    {"topic": "billing.charge", "urn": "inv-7", "payload": None, "attempt": 2},
    {"topic": "order.ship", "urn": "order-1", "payload": [1, 2, 3], "attempt": 0},
]


def _depth(wfbus) -> dict[str, int]:
    """ready count by role."""
    return {
        q["role"]: q["ready"] for q in wfbus("depth", "-b", "target", "-o", "json").json()["queues"]
    }


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

    def by_key(events):
        return {
            str(k): [e for e in events if str(e["urn"]) == str(k)]
            for k in {str(e["urn"]) for e in events}
        }  # noqa: E731

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
        {
            "topic": e["topic"],
            "urn": str(e["urn"]),
            "attempt": str(e["attempt"]),
            "event-id": parse_event(e).event_id,
        }
        for e in EVENTS[:2]
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
    assert (
        report["unselected_passed_over"] is target.passes_over_unselected
    )  # as declared, and said
    if not target.passes_over_unselected:
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
    assert report["by_topic"] == {
        "order.submit": 1,
        "order.approve": 1,
        "billing.charge": 1,
        "order.ship": 1,
    }
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
    assert same_events(
        target, json.loads(wfbus("peek", "-b", "spare", "--all", "-o", "json").out), EVENTS
    )
    assert _depth(wfbus)["dead-letter"] == 0


def test_peek_output_is_accepted_back_by_emit(wfbus, target, tmp_path):
    _emit(wfbus, tmp_path, EVENTS, "--dead-letter")
    dump = wfbus("peek", "-b", "target", "--dead-letter", "--all", "--force", "-o", "jsonl")
    (tmp_path / "backup.jsonl").write_text(dump.out)
    assert wfbus("emit", "-b", "spare", "backup.jsonl").code == 0
    assert same_events(
        target, json.loads(wfbus("peek", "-b", "spare", "--all", "-o", "json").out), EVENTS
    )


def test_a_kit_expects_exactly_what_its_broker_declares(tmp_path, monkeypatch):
    """The suite's expectations come from the broker's declared Capabilities, not from the kit: change
    the declaration and the expectations follow (order, unselected kept, duplicates after a kill)."""
    from contract.kits import KILL_BATCH, LocalKit
    from wfbus.brokers.base import Capabilities
    from wfbus.brokers.local import LocalBroker

    kit = LocalKit()
    kit.settings(tmp_path)
    cases = [
        (Capabilities(ordering="per-queue", atomic_transfer=True), ("total", False, 0)),
        (Capabilities(ordering="total", keeps_unselected=False), ("total", True, KILL_BATCH)),
        (Capabilities(ordering="per-key", dedup_on_resend=True), ("per-key", False, 0)),
        (Capabilities(ordering="per-group"), ("per-key", False, KILL_BATCH)),
        (Capabilities(ordering="none", keeps_unselected=False), ("none", True, KILL_BATCH)),
    ]
    for declared, expected in cases:
        monkeypatch.setattr(LocalBroker, "implements", declared)
        assert kit.capabilities == declared
        assert (kit.order, kit.passes_over_unselected, kit.kill_duplicates_bound) == expected, (
            declared
        )


def test_the_suite_holds_a_plugin_to_what_it_declares(
    wfbus, tmp_path, tmp_path_factory, monkeypatch
):
    """The plugin broker read back in reverse: caught while it declares per-queue order, and accepted
    once it declares no order (then reverse is within its promise). Expectations follow declarations."""
    from dataclasses import replace

    from conftest import write_config

    from contract.kits import PluginKit

    kit = PluginKit()
    kit.install(tmp_path_factory.mktemp("site"), monkeypatch)
    write_config(tmp_path / "wfbus.yaml", {"target": kit.settings(tmp_path)}, default="target")
    from plugin_broker import spool

    _emit(wfbus, tmp_path, EVENTS)
    assert same_events(kit, _peek(wfbus), EVENTS)
    files = spool.message_files
    monkeypatch.setattr(spool, "message_files", lambda directory: files(directory)[::-1])
    reversed_read = _peek(wfbus)
    assert reversed_read == EVENTS[::-1]
    assert kit.order == "total" and not same_events(kit, reversed_read, EVENTS)
    monkeypatch.setattr(
        spool.SpoolBroker, "implements", replace(spool.SpoolBroker.implements, ordering="none")
    )
    assert kit.order == "none" and same_events(kit, reversed_read, EVENTS)


def test_wfbus_brokers_shows_what_the_kit_expects(wfbus, target):
    """`wfbus brokers` shows the very declaration the suite holds the broker to."""
    rows = {r["name"]: r for r in wfbus("brokers", "-o", "json").json()["brokers"]}
    assert rows["target"]["capabilities"] == target.capabilities.to_dict()

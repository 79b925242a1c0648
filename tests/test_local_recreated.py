"""A local database deleted and created again under the same path is another database.

Its row ids start again at 1, and the replay journal keeps the row ids of moved messages (an
arrival id "never reused") for days: a second replay read its new messages as "published by an
interrupted replay" and removed them without publishing them, reporting success (found by review).
`emit --resume` is keyed by the destination the same way.
"""

from __future__ import annotations

import json

from conftest import write_config, write_jsonl


def _urns(result) -> list[str]:
    return sorted(m["urn"] for m in json.loads(result.out))


def test_a_replay_into_a_recreated_database_moves_every_new_message(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "src": {"type": "local", "path": "./src.db"},
            "dst": {"type": "local", "path": "./dst.db"},
        },
    )
    for generation in ("a", "b"):
        events = [{"topic": "order.submit", "urn": f"{generation}{i}"} for i in range(3)]
        write_jsonl(tmp_path / "dlq.jsonl", events)
        assert wfbus("emit", "-b", "src", "-d", "dlq.jsonl").code == 0
        result = wfbus("-o", "json", "replay", "-b", "src", "--to", "dst", "--yes")
        assert result.code == 0, result.err
        assert result.json()["replayed"] == 3
        moved = wfbus("-o", "json", "peek", "-b", "dst", "--all")
        assert _urns(moved) == [e["urn"] for e in events], generation  # at the destination
        for name in ("src.db", "dst.db"):  # both databases deleted, the user's state kept
            for suffix in ("", "-wal", "-shm"):
                (tmp_path / f"{name}{suffix}").unlink(missing_ok=True)


def test_emit_resume_into_a_recreated_database_is_not_taken_for_the_old_one(wfbus, tmp_path):
    """As with a recreated Kafka topic: nothing to resume there (exit 2, saying why and what to do),
    where it used to report the events as already sent while the new file held none of them."""
    write_config(tmp_path / "wfbus.yaml", {"dst": {"type": "local", "path": "./dst.db"}})
    events = [{"topic": "order.submit", "urn": f"u{i}"} for i in range(5)]
    write_jsonl(tmp_path / "events.jsonl", events)
    assert wfbus("emit", "-b", "dst", "events.jsonl").code == 0
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"dst.db{suffix}").unlink(missing_ok=True)
    resumed = wfbus("emit", "--resume", "-b", "dst", "events.jsonl")
    assert resumed.code == 2 and "nothing to resume" in resumed.err, resumed.err
    assert "run without --resume" in resumed.err
    assert wfbus("emit", "-b", "dst", "events.jsonl").code == 0
    assert _urns(wfbus("-o", "json", "peek", "-b", "dst", "--all")) == [e["urn"] for e in events]

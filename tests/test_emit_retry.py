"""Retrying an emit: --failed-out as a retry loop, hints that send to the same place, --resume.

Uses the flaky plugin broker of test_plugins (it rejects one topic): what is tested is wfbus's own
accounting of failed events, not a server's behaviour.
"""

from __future__ import annotations

import json
import sys

from conftest import write_config, write_jsonl
from test_plugins import flaky_plugin  # noqa: F401 - the fixture

EVENTS = [{"topic": "ok", "urn": "a"}, {"topic": "reject.me", "urn": "b"}, {"topic": "ok", "urn": "c"},
          {"topic": "reject.me", "urn": 4, "payload": {"x": "guest"}}]


def _sent() -> list:
    return sys.modules["wfbus_flaky"].SENT


def test_failed_out_naming_the_input_is_a_retry_loop_that_loses_nothing(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    write_jsonl(tmp_path / "failed.jsonl", EVENTS)
    first = wfbus("emit", "failed.jsonl", "--failed-out", "failed.jsonl")
    assert first.code == 1, first.err
    kept = [json.loads(line) for line in (tmp_path / "failed.jsonl").read_text().splitlines()]
    assert [e["urn"] for e in kept] == ["b", 4]  # the input was read whole before it was replaced
    assert [m.key for m in _sent()] == ["a", "c"]

    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "reject_topic": "nothing"}})
    second = wfbus("emit", "failed.jsonl", "--failed-out", "failed.jsonl")
    assert second.code == 0, second.err
    assert not (tmp_path / "failed.jsonl").exists()  # nothing failed: no file, so `emit failed.jsonl` ends the loop
    assert sorted(m.key for m in _sent()) == ["4", "a", "b", "c"]


def test_failed_out_is_not_created_when_everything_was_confirmed(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "reject_topic": "nothing"}})
    write_jsonl(tmp_path / "e.jsonl", EVENTS)
    (tmp_path / "stale.jsonl").write_text('{"topic":"ok","urn":"old"}\n')
    assert wfbus("emit", "e.jsonl", "--failed-out", "stale.jsonl").code == 0
    assert not (tmp_path / "stale.jsonl").exists()


def test_the_rerun_hint_repeats_every_option_that_chose_the_destination(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"local": {"type": "local"}, "billing": {"type": "flaky"}}, default="local")
    write_jsonl(tmp_path / "e.jsonl", EVENTS)
    result = wfbus("-c", "wfbus.yaml", "emit", "-b", "billing", "--dead-letter", "e.jsonl", "--failed-out", "f.jsonl")
    assert result.code == 1
    assert "run `wfbus --config wfbus.yaml emit --broker billing --dead-letter f.jsonl`" in result.err
    without_file = wfbus("emit", "-b", "billing", "--dead-letter", "e.jsonl")
    assert "run `wfbus emit --broker billing --dead-letter --resume e.jsonl`" in without_file.err


def test_resume_sends_exactly_what_was_not_confirmed_and_then_nothing(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    write_jsonl(tmp_path / "e.jsonl", EVENTS * 3)
    assert wfbus("emit", "e.jsonl").code == 1
    assert len(_sent()) == 6
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "reject_topic": "nothing"}})
    resumed = wfbus("-o", "json", "emit", "--resume", "e.jsonl")
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    assert doc["published"] == 6 and doc["resume"]["skipped_confirmed"] == 6
    assert sorted(str(m.key) for m in _sent()) == sorted(str(e["urn"]) for e in EVENTS * 3)
    again = wfbus("-o", "json", "emit", "--resume", "e.jsonl").json()
    assert again["published"] == 0 and again["resume"]["already_complete"] is True
    assert len(_sent()) == 12


def test_resume_of_changed_sources_is_refused_and_sends_nothing(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    write_jsonl(tmp_path / "e.jsonl", EVENTS)
    assert wfbus("emit", "e.jsonl").code == 1
    write_jsonl(tmp_path / "e.jsonl", EVENTS + EVENTS[:1])  # another file now: resuming it would duplicate
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "reject_topic": "nothing"}})
    result = wfbus("emit", "--resume", "e.jsonl")
    assert result.code == 2 and "nothing to resume" in result.err and "run without --resume" in result.err
    assert [m.key for m in _sent()] == ["a", "c"]


def test_resume_after_the_rest_went_to_failed_out_points_at_that_file(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    write_jsonl(tmp_path / "e.jsonl", EVENTS)
    assert wfbus("emit", "e.jsonl", "--failed-out", "failed.jsonl").code == 1
    result = wfbus("emit", "--resume", "e.jsonl")
    assert result.code == 2 and "failed.jsonl" in result.err and "twice" in result.err
    assert [m.key for m in _sent()] == ["a", "c"]  # nothing sent twice


def test_resume_beside_a_running_emit_is_refused(tmp_path):
    import os
    import subprocess
    import time

    with (tmp_path / "big.jsonl").open("w") as handle:
        for i in range(300_000):
            handle.write(json.dumps({"topic": "t", "urn": f"u{i % 9}", "payload": {"i": i}}) + "\n")
    env = {**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")}
    env.pop("WFBUS_CONFIG", None)
    (tmp_path / ".wfbus").mkdir()  # a project data folder: the local broker keeps its data there
    first = subprocess.Popen([sys.executable, "-m", "wfbus", "emit", "big.jsonl"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not (tmp_path / ".wfbus" / "local.db").exists():
            time.sleep(0.05)
        time.sleep(0.5)
        second = subprocess.run([sys.executable, "-m", "wfbus", "emit", "--resume", "big.jsonl"], cwd=tmp_path,
                                env=env, capture_output=True, timeout=120)
        assert first.poll() is None, "the first emit ended before the check: make the file larger"
        assert second.returncode == 2 and b"still running" in second.stderr, second.stderr
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0


def test_many_failures_are_counted_and_sampled_not_all_kept_and_all_written(wfbus, tmp_path, flaky_plugin):
    """1M unroutable events must not mean 1M objects in the report: counts and a sample, the file has all."""
    from wfbus.emit import FAILED_SAMPLE_SIZE

    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    count = FAILED_SAMPLE_SIZE * 3 + 7
    write_jsonl(tmp_path / "e.jsonl", [{"topic": "reject.me", "urn": f"u{i}"} for i in range(count)])
    doc = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl").json()
    assert doc["failed_count"] == count and len(doc["failed"]) == FAILED_SAMPLE_SIZE
    lines = (tmp_path / "failed.jsonl").read_text().splitlines()
    assert [json.loads(line)["urn"] for line in lines] == [f"u{i}" for i in range(count)]

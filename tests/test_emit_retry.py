"""Retrying an emit: --failed-out as a retry loop, hints that send to the same place, --resume.

Uses the flaky plugin broker of test_plugins (it rejects one topic): what is tested is wfbus's own
accounting of failed events, not a server's behaviour.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from conftest import write_config, write_jsonl
from test_plugins import flaky_plugin  # noqa: F401 - the fixture

from wfbus import brokers

EVENTS = [
    {"topic": "ok", "urn": "a"},
    {"topic": "reject.me", "urn": "b"},
    {"topic": "ok", "urn": "c"},
    {"topic": "reject.me", "urn": 4, "payload": {"x": "guest"}},
]


def _sent() -> list:
    return sys.modules["wfbus_flaky"].SENT


def test_failed_out_naming_the_input_is_a_retry_loop_that_loses_nothing(
    wfbus, tmp_path, flaky_plugin
):
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
    assert not (
        tmp_path / "failed.jsonl"
    ).exists()  # nothing failed: no file, so `emit failed.jsonl` ends the loop
    assert sorted(m.key for m in _sent()) == ["4", "a", "b", "c"]


def test_failed_out_is_not_created_when_everything_was_confirmed(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "reject_topic": "nothing"}})
    write_jsonl(tmp_path / "e.jsonl", EVENTS)
    (tmp_path / "stale.jsonl").write_text('{"topic":"ok","urn":"old"}\n')
    assert wfbus("emit", "e.jsonl", "--failed-out", "stale.jsonl").code == 0
    assert not (tmp_path / "stale.jsonl").exists()


def test_the_rerun_hint_repeats_every_option_that_chose_the_destination(
    wfbus, tmp_path, flaky_plugin
):
    write_config(
        tmp_path / "wfbus.yaml",
        {"local": {"type": "local"}, "billing": {"type": "flaky"}},
        default="local",
    )
    write_jsonl(tmp_path / "e.jsonl", EVENTS)
    result = wfbus(
        "-c",
        "wfbus.yaml",
        "emit",
        "-b",
        "billing",
        "--dead-letter",
        "e.jsonl",
        "--failed-out",
        "f.jsonl",
    )
    assert result.code == 1
    assert (
        "run `wfbus --config wfbus.yaml emit --broker billing --dead-letter f.jsonl`" in result.err
    )
    without_file = wfbus("emit", "-b", "billing", "--dead-letter", "e.jsonl")
    assert "run `wfbus emit --broker billing --dead-letter --resume e.jsonl`" in without_file.err


def test_resume_sends_exactly_what_was_not_confirmed_and_then_nothing(
    wfbus, tmp_path, flaky_plugin
):
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
    write_jsonl(
        tmp_path / "e.jsonl", EVENTS + EVENTS[:1]
    )  # another file now: resuming it would duplicate
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "reject_topic": "nothing"}})
    result = wfbus("emit", "--resume", "e.jsonl")
    assert (
        result.code == 2
        and "nothing to resume" in result.err
        and "run without --resume" in result.err
    )
    assert [m.key for m in _sent()] == ["a", "c"]


def test_resume_after_the_rest_went_to_failed_out_points_at_that_file(
    wfbus, tmp_path, flaky_plugin
):
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
    first = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "emit", "big.jsonl"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while not (tmp_path / ".wfbus" / "local.db").exists():
            time.sleep(0.05)
        time.sleep(0.5)
        second = subprocess.run(
            [sys.executable, "-m", "wfbus", "emit", "--resume", "big.jsonl"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert first.poll() is None, "the first emit ended before the check: make the file larger"
        assert second.returncode == 2 and b"still running" in second.stderr, second.stderr
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0


def test_many_failures_are_counted_and_sampled_not_all_kept_and_all_written(
    wfbus, tmp_path, flaky_plugin
):
    """1M unroutable events must not mean 1M objects in the report: counts and a sample, the file has all."""
    from wfbus.emit import FAILED_SAMPLE_SIZE

    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    count = FAILED_SAMPLE_SIZE * 3 + 7
    write_jsonl(
        tmp_path / "e.jsonl", [{"topic": "reject.me", "urn": f"u{i}"} for i in range(count)]
    )
    doc = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl").json()
    assert doc["failed_count"] == count and len(doc["failed"]) == FAILED_SAMPLE_SIZE
    lines = (tmp_path / "failed.jsonl").read_text().splitlines()
    assert [json.loads(line)["urn"] for line in lines] == [f"u{i}" for i in range(count)]


# -- pipelining: several batches in flight, each accounted as its answer is read -------------------
PIPED = '''
import os
import signal

from wfbus.brokers.base import Broker, BrokerSettings, Delivery, PendingPublish, QueueDepth
from wfbus.errors import BrokerUnavailable

SENT = []  # what reached the "server": messages of every submitted batch the server accepted
LOG = []  # ("submit", n) / ("result", n), in the order emit called them


class PipedSettings(BrokerSettings):
    type: str = "piped"
    reject_topic: str = "reject.me"
    fail_batch: int = -1  # this batch's answer is "connection lost" (nothing of it arrived)
    stop_in_batch: int = -1  # a SIGTERM arrives while this batch's answer is read


class Pending(PendingPublish):
    def __init__(self, broker, number, messages, deliveries):
        super().__init__(messages)
        self.broker, self.number, self.deliveries = broker, number, deliveries

    def result(self):
        LOG.append(("result", self.number))
        if self.number == self.broker.settings.stop_in_batch:
            os.kill(os.getpid(), signal.SIGTERM)
        if self.deliveries is None:
            raise BrokerUnavailable("piped: connection lost")
        return self.deliveries


class PipedBroker(Broker):
    """Keeps 3 batches of 4 in flight; a batch reaches the server when it is submitted."""

    settings_model = PipedSettings
    publish_batch_size = 4
    pipeline_window = 3

    def __init__(self, *args):
        super().__init__(*args)
        self.submitted = 0

    def submit(self, messages, *, dead_letter=False):
        self.submitted += 1
        LOG.append(("submit", self.submitted))
        if self.submitted == self.settings.fail_batch:
            return Pending(self, self.submitted, messages, None)
        out = []
        for m in messages:
            if m.topic == self.settings.reject_topic:
                out.append(Delivery(m, "rejected by piped"))
            else:
                SENT.append(m)
                out.append(Delivery(m))
        return Pending(self, self.submitted, messages, out)

    def publish(self, messages, *, dead_letter=False):
        return self.submit(messages, dead_letter=dead_letter).result()

    def depth(self):
        return [QueueDepth(self.name, "piped", "main", ready=len(SENT))]
'''


@pytest.fixture
def piped_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site-piped"
    (site / "wfbus_piped-1.0.dist-info").mkdir(parents=True)
    (site / "wfbus_piped-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wfbus-piped\nVersion: 1.0\n"
    )
    (site / "wfbus_piped-1.0.dist-info" / "entry_points.txt").write_text(
        "[wfbus.brokers]\npiped = wfbus_piped:PipedBroker\n"
    )
    (site / "wfbus_piped.py").write_text(textwrap.dedent(PIPED))
    monkeypatch.syspath_prepend(str(site))
    brokers._entry_points.cache_clear()
    yield sys.modules.get
    brokers._entry_points.cache_clear()
    sys.modules.pop("wfbus_piped", None)


def _piped():
    return sys.modules["wfbus_piped"]


def _numbered(count: int) -> list[dict]:
    return [{"topic": "reject.me" if i % 11 == 5 else "ok", "urn": f"u{i}"} for i in range(count)]


def _check_exact(tmp_path, doc: dict, events: list[dict], failed_out: str | None) -> list[str]:
    """Every event either confirmed (at the server) or in --failed-out, never both, and the counts agree."""
    sent = [m.key for m in _piped().SENT]
    assert len(sent) == len(set(sent)), "an event reached the server twice"
    assert doc["published"] == len(sent), (doc, sent)
    rest = (
        [json.loads(line)["urn"] for line in (tmp_path / failed_out).read_text().splitlines()]
        if failed_out and (tmp_path / failed_out).exists()
        else []
    )
    assert not set(rest) & set(sent), "an event confirmed and also in --failed-out"
    assert (
        sorted(sent + rest, key=lambda u: int(u[1:])) == [e["urn"] for e in events]
        if failed_out
        else True
    )
    assert doc["failed_count"] + doc["not_attempted"] == len(events) - len(sent)
    return rest


def test_emit_keeps_the_window_in_flight_and_reads_answers_oldest_first(
    wfbus, tmp_path, piped_plugin
):
    write_config(tmp_path / "wfbus.yaml", {"p": {"type": "piped"}})
    events = _numbered(4 * 7 + 1)  # 8 batches, the last one short
    write_jsonl(tmp_path / "e.jsonl", events)
    doc = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl").json()
    log = _piped().LOG
    assert log[:4] == [("submit", 1), ("submit", 2), ("submit", 3), ("result", 1)], log
    assert [n for kind, n in log if kind == "result"] == list(range(1, 9)), (
        "answers read oldest first"
    )
    in_flight = 0
    for kind, _n in log:
        in_flight += 1 if kind == "submit" else -1
        assert in_flight <= 3
    rest = _check_exact(tmp_path, doc, events, "failed.jsonl")
    assert rest == [e["urn"] for e in events if e["topic"] == "reject.me"]


def test_a_lost_connection_fails_its_batch_and_the_later_answers_are_still_read(
    wfbus, tmp_path, piped_plugin
):
    """Batch 3's answer is 'connection lost'; batches 4 and 5 were already on the wire and accepted: they are
    confirmed (never reported failed), nothing more is sent, and --resume sends exactly the rest."""
    write_config(tmp_path / "wfbus.yaml", {"p": {"type": "piped", "fail_batch": 3}})
    events = _numbered(4 * 9)
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl")
    assert result.code == 1, result.err
    doc = result.json()
    assert doc["aborted"] == "piped: connection lost"
    log = _piped().LOG
    assert max(n for kind, n in log if kind == "submit") == 5, (
        "nothing is submitted after the failed answer"
    )
    assert [n for kind, n in log if kind == "result"] == [1, 2, 3, 4, 5]
    sent = {m.key for m in _piped().SENT}
    accepted = {e["urn"] for e in events[16:20] if e["topic"] == "ok"}
    assert accepted and accepted <= sent, "batch 5, accepted before the error was read, counts"
    assert not {f"u{i}" for i in range(8, 12)} & sent
    _check_exact(tmp_path, doc, events, None)

    write_config(tmp_path / "wfbus.yaml", {"p": {"type": "piped", "reject_topic": "nothing"}})
    resumed = wfbus("-o", "json", "emit", "--resume", "e.jsonl")
    assert resumed.code == 0, resumed.err
    keys = [m.key for m in _piped().SENT]
    assert sorted(keys, key=lambda u: int(u[1:])) == [e["urn"] for e in events], (
        "each exactly once after --resume"
    )


def test_a_stop_with_batches_in_flight_reads_every_answer_and_failed_out_is_exact(
    wfbus, tmp_path, piped_plugin
):
    write_config(tmp_path / "wfbus.yaml", {"p": {"type": "piped", "stop_in_batch": 2}})
    events = _numbered(4 * 12 + 3)
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 143, result.err
    doc = result.json()
    log = _piped().LOG
    submitted = [n for kind, n in log if kind == "submit"]
    assert [n for kind, n in log if kind == "result"] == submitted, (
        "every batch on the wire had its answer read"
    )
    assert len(submitted) >= 3
    _check_exact(tmp_path, doc, events, "failed.jsonl")

    write_config(tmp_path / "wfbus.yaml", {"p": {"type": "piped", "reject_topic": "nothing"}})
    assert wfbus("emit", "failed.jsonl").code == 0
    keys = [m.key for m in _piped().SENT]
    assert sorted(keys, key=lambda u: int(u[1:])) == [e["urn"] for e in events], "each exactly once"

"""A third-party broker type, installed as a package with an entry point, used from the CLI.

The fake broker here stands in for a plugin author's code: it tests wfbus's own accounting
(registry, per-event failure reporting, --failed-out, exit codes), not any server's behaviour.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from conftest import write_config, write_jsonl

from wfbus import brokers

PLUGIN = '''
from wfbus.brokers.base import Broker, BrokerSettings, Delivery, QueueDepth
from wfbus.errors import BrokerUnavailable

SENT = []


class FlakySettings(BrokerSettings):
    type: str = "flaky"
    reject_topic: str = "reject.me"
    die_after: int = -1


class FlakyBroker(Broker):
    """Confirms every event except those of `reject_topic`; loses its connection after `die_after`."""

    settings_model = FlakySettings
    publish_batch_size = 2

    def publish(self, messages, *, dead_letter=False):
        if self.settings.die_after >= 0 and len(SENT) >= self.settings.die_after:
            raise BrokerUnavailable("flaky: connection lost")
        out = []
        for m in messages:
            if m.topic == self.settings.reject_topic:
                out.append(Delivery(m, "rejected by flaky"))
            else:
                SENT.append(m)
                out.append(Delivery(m))
        return out

    def depth(self):
        return [QueueDepth(self.name, "flaky", "main", ready=len(SENT))]
'''


@pytest.fixture
def flaky_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "wfbus_flaky-1.0.dist-info").mkdir(parents=True)
    (site / "wfbus_flaky-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wfbus-flaky\nVersion: 1.0\n"
    )
    (site / "wfbus_flaky-1.0.dist-info" / "entry_points.txt").write_text(
        "[wfbus.brokers]\nflaky = wfbus_flaky:FlakyBroker\n"
    )
    (site / "wfbus_flaky.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(site))
    brokers._entry_points.cache_clear()
    yield
    brokers._entry_points.cache_clear()
    sys.modules.pop("wfbus_flaky", None)


def test_a_plugin_broker_type_is_found_through_its_entry_point(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    assert wfbus("brokers", "-o", "json").json()["brokers"][0]["type"] == "flaky"
    assert wfbus("emit", "--topic", "t", "--urn", "u").code == 0
    assert wfbus("depth", "-o", "json").json()["queues"][0]["ready"] == 1


def test_a_plugin_settings_model_rejects_unknown_keys(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "rejct_topic": "x"}})
    result = wfbus("depth")
    assert (
        result.code == 4
        and "brokers.f.rejct_topic: unknown key (did you mean reject_topic?)" in result.err
    )


def test_failed_events_are_reported_one_by_one_with_exit_1_and_written_for_a_rerun(
    wfbus, tmp_path, flaky_plugin
):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky"}})
    events = [
        {"topic": "ok", "urn": "a"},
        {"topic": "reject.me", "urn": "b"},
        {"topic": "ok", "urn": "c"},
        {"topic": "reject.me", "urn": 4, "payload": {"x": 1}},
    ]
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1
    doc = result.json()
    assert doc["published"] == 2
    assert [(f["place"], f["error"]) for f in doc["failed"]] == [
        ("e.jsonl:2", "rejected by flaky"),
        ("e.jsonl:4", "rejected by flaky"),
    ]
    failed = [json.loads(line) for line in (tmp_path / "failed.jsonl").read_text().splitlines()]
    assert failed == [
        {"topic": "reject.me", "urn": "b", "attempt": 0},
        {"topic": "reject.me", "urn": 4, "payload": {"x": 1}, "attempt": 0},
    ]


def test_a_connection_lost_mid_emit_keeps_every_unconfirmed_event(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "die_after": 2}})
    write_jsonl(tmp_path / "e.jsonl", [{"topic": "ok", "urn": f"u{i}"} for i in range(7)])
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1
    doc = result.json()
    assert doc["published"] == 2 and doc["aborted"] == "flaky: connection lost"
    rest = [
        json.loads(line)["urn"] for line in (tmp_path / "failed.jsonl").read_text().splitlines()
    ]
    assert rest == [f"u{i}" for i in range(2, 7)]


def test_nothing_confirmed_because_the_broker_is_down_is_exit_5(wfbus, tmp_path, flaky_plugin):
    write_config(tmp_path / "wfbus.yaml", {"f": {"type": "flaky", "die_after": 0}})
    result = wfbus("emit", "--topic", "t", "--urn", "u")
    assert result.code == 5 and "connection lost" in result.err

"""Kafka: every wait is bounded, and "nothing to replay" is said only when it is true; settings the
driver cannot honour are config errors (exit 4) before anything is sent. Real broker, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from conftest import run_process, write_config, write_jsonl
from contract.kits import KAFKA_BOOTSTRAP
from kafka import KafkaConsumer

from brokers.test_kafka_fidelity import consume_all, dead_count, kafka_config

pytestmark = pytest.mark.broker("kafka")


def _bodies(events) -> Counter:
    return Counter(json.dumps(e, separators=(",", ":")).encode() for e in events)


def test_a_rerun_right_after_a_killed_replay_waits_for_the_group_and_finishes(wfbus, tmp_path):
    """The killed member holds its partitions until its session expires: the rerun must wait for the
    rebalance, not report "replayed 0" and exit 0 while the group is still joining."""
    settings = kafka_config(tmp_path)
    events = [
        {"topic": "t", "urn": f"u{i % 17}", "payload": {"n": i}, "attempt": 0} for i in range(400)
    ]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    env = {**os.environ, "NO_COLOR": "1", "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "replay", "--yes", "--batch", "10", "--rate", "40"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(consume_all(settings["topic"])) < 40:
        assert proc.poll() is None and time.monotonic() < deadline, (
            "the first replay did not get going"
        )
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    started = time.monotonic()
    result = wfbus(
        "-o", "json", "replay", "--yes"
    )  # at once: the killed member is still in the group
    report = result.json()
    print(
        f"rerun: {time.monotonic() - started:.1f} s, replayed {report['replayed']}, resumed {report['resumed']}"
    )
    assert result.code == 0, result.err + result.out
    assert dead_count(wfbus) == 0
    arrived = Counter(r.value for r in consume_all(settings["topic"]))
    assert set(arrived) == set(_bodies(events))  # none lost
    assert (
        sum(arrived.values()) - len(events) <= 3 * 10
    )  # at most the batch on the wire per partition


@pytest.fixture
def member_that_never_rejoins(tmp_path):
    """A replay-group member that joined, holds every partition and then stops polling (a stuck replay):
    the group cannot rebalance until it rejoins or its max.poll.interval runs out."""
    holders: list = []

    def start(settings: dict) -> None:
        consumer = KafkaConsumer(
            settings["dead_letter_topic"],
            bootstrap_servers=KAFKA_BOOTSTRAP,
            group_id=settings["replay_group"],
            enable_auto_commit=False,
            max_poll_interval_ms=120_000,
            session_timeout_ms=30_000,
        )
        deadline = time.monotonic() + 60
        while not consumer.assignment():
            assert time.monotonic() < deadline, "the holding member did not join"
            consumer.poll(timeout_ms=200, max_records=1)
        consumer.pause(*consumer.assignment())
        holders.append(consumer)

    yield start
    for consumer in holders:
        consumer.close(autocommit=False)


def test_no_partition_within_the_join_timeout_is_an_error_not_an_empty_replay(
    wfbus, tmp_path, member_that_never_rejoins
):
    settings = kafka_config(tmp_path, join_timeout_seconds=5)
    events = [{"topic": "t", "urn": f"u{i}"} for i in range(12)]
    assert wfbus("emit", "--dead-letter", str(write_jsonl(tmp_path / "e.jsonl", events))).code == 0
    member_that_never_rejoins(settings)
    started = time.monotonic()
    result = wfbus("-o", "json", "replay", "--yes")
    assert time.monotonic() - started < 40
    assert result.code == 5, result.out + result.err
    report = result.json()
    assert report["replayed"] == 0 and "no partition" in report["aborted"]
    assert "join_timeout_seconds" in report["hint"]
    assert dead_count(wfbus) == 12


def test_assigned_partitions_that_return_nothing_end_the_read_with_an_error(tmp_path, monkeypatch):
    """Records remain below the end offsets taken at the start, but the assigned partitions give none
    (here: the driver is told to fetch nothing): the read fails after timeout_seconds, it does not
    spin for ever, and it does not say "done"."""
    from kafka import KafkaConsumer as Driver

    from wfbus.config import load
    from wfbus.errors import BrokerUnavailable

    settings = kafka_config(tmp_path, timeout_seconds=3)
    write_config(tmp_path / "wfbus.yaml", {"k": settings}, "k")
    result = run_process("emit", "--dead-letter", "--topic", "t", "--urn", "u", cwd=tmp_path)
    assert result.code == 0, result.err
    original = Driver.poll

    def fetching_nothing(self, *args, **kwargs):
        """The group is kept, the records stay unread: put back whatever came, and fetch no more."""
        polled = original(self, *args, **kwargs)
        for tp, records in polled.items():
            self.seek(tp, records[0].offset)
        if self.assignment():
            self.pause(*self.assignment())
        return {}

    monkeypatch.setattr(Driver, "poll", fetching_nothing)
    outcome: dict = {}

    def read() -> None:
        with (
            load(str(tmp_path / "wfbus.yaml")).open("k") as broker,
            broker.dead_letter_reader() as reader,
        ):
            try:
                outcome["received"] = reader.receive(10)
            except BrokerUnavailable as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the read did not end"
    assert "error" in outcome, outcome
    assert "remain below the end offsets" in outcome["error"].message


def _missing_codec() -> tuple[str, str]:
    from wfbus.brokers.kafka import _CODECS, _importable

    for codec, (modules, package) in _CODECS.items():
        if not any(_importable(m) for m in modules):
            return codec, package
    pytest.fail("every compression codec library is installed: this test needs one that is not")


def test_a_compression_codec_whose_library_is_missing_is_a_config_error(tmp_path):
    codec, package = _missing_codec()
    settings = kafka_config(tmp_path, compression_type=codec)
    result = run_process("emit", "--topic", "t", "--urn", "u", cwd=tmp_path)
    assert result.code == 4, result.err
    assert (
        "compression_type" in result.err and package in result.err and "Traceback" not in result.err
    )
    assert consume_all(settings["topic"]) == []  # nothing was sent
    result = run_process(
        "emit", "--topic", "t", "--urn", "u", "--dry-run", cwd=tmp_path
    )  # at load time
    assert result.code == 4, result.err


def test_a_topic_template_naming_an_unknown_field_is_a_config_error(tmp_path):
    settings = kafka_config(tmp_path)
    write_config(
        tmp_path / "wfbus.yaml",
        {"k": {**settings, "topic": None, "topic_template": "wf.{tenant}"}},
        "k",
    )
    result = run_process("emit", "--topic", "t", "--urn", "u", cwd=tmp_path)
    assert result.code == 4, result.err
    assert "topic_template" in result.err and "{topic}" in result.err

"""The broker crashes and comes back while a replay is running: the replay stops with a report that
says what was done and why it stopped, and a rerun finishes the job with no event lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import write_config, write_jsonl
from contract.kits import KafkaKit, KafkaPythonKit, RabbitMqKit

from faults.test_broker_down import ctl

N = 2000


def _moved(wfbus) -> Counter:
    result = wfbus("peek", "-b", "target", "--all", "--force", "-o", "json")
    assert result.code == 0, result.err
    return Counter(e["urn"] for e in json.loads(result.out))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kit_class", [RabbitMqKit, KafkaKit, KafkaPythonKit], ids=["rabbitmq", "kafka", "kafka-python"]
)
def test_broker_restart_during_replay_loses_nothing_and_says_why_it_stopped(
    tmp_path, wfbus, kit_class
):
    kit = kit_class()
    service = (
        "kafka" if kit.kind.startswith("kafka") else kit.kind
    )  # both Kafka drivers: one server
    write_config(
        tmp_path / "wfbus.yaml",
        {"target": {**kit.settings(tmp_path), "timeout_seconds": 5}},
        "target",
    )
    events = [{"topic": "order.submit", "urn": f"r{i:05d}"} for i in range(N)]
    write_jsonl(tmp_path / "dlq.jsonl", events)
    assert wfbus("emit", "--dead-letter", "dlq.jsonl").code == 0

    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "-o", "json", "replay", "--batch", "20", "--rate", "400"],
        cwd=tmp_path,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(2.5)  # start-up, then about a third of the replay
        ctl("kill", service)
        crashed_at = time.monotonic()
        ctl("start", service, keep=True)
        out, err = proc.communicate(timeout=180)
        took = time.monotonic() - crashed_at
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads(out)
    if (
        proc.returncode == 0
    ):  # its clients rode out the restart (Kafka's reconnect within the timeouts)
        assert not report["aborted"] and report["replayed"] == N - len(report["failed"]), report
    else:  # it stopped: the report says why, what to do, and how far it got
        assert proc.returncode in (1, 5), err.decode()[-2000:]
        assert report["aborted"] and report["hint"], report
        assert report["replayed"] < N
    assert took < 120

    deadline = time.monotonic() + 120
    reruns = 0
    while True:  # rerun until the dead-letter queue is drained
        result = wfbus("-o", "json", "replay")
        reruns += 1
        assert result.code in (0, 5), (
            result.err
        )  # 5: the restarted broker is not serving yet: run it again
        dead = [
            q for q in wfbus("depth", "-o", "json").json()["queues"] if q["role"] == "dead-letter"
        ][0]
        if not (dead.get("ready") or dead.get("lag") or 0):
            break
        assert time.monotonic() < deadline, f"dead-letter queue not drained: {dead}"
        time.sleep(1)

    moved = _moved(wfbus)
    assert set(moved) == {e["urn"] for e in events}, "events lost"
    duplicates = sum(count - 1 for count in moved.values())
    print(
        f"{service} restarted during replay: first run exit {proc.returncode}, replayed {report['replayed']}, "
        f"ended {took:.1f} s after the crash ({(report['aborted'] or 'rode it out')[:80]}); {reruns} rerun(s); "
        f"lost 0, duplicates {duplicates}"
    )
    kit.cleanup()

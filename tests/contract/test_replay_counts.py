"""A replay report's counts equal what the broker holds afterwards, on every way a replay can end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml
from conftest import write_jsonl

from contract.drain import count_main


def _seed_dead_letters(wfbus, tmp_path, count: int) -> None:
    events = [
        {"topic": "order.submit", "urn": f"r-{i % 5}", "payload": {"i": i}} for i in range(count)
    ]
    write_jsonl(tmp_path / "dlq.jsonl", events)
    assert wfbus("emit", "-b", "target", "--dead-letter", "dlq.jsonl").code == 0


def _dead_letter_total(wfbus) -> int:
    rows = wfbus("depth", "-b", "target", "-o", "json").json()["queues"]
    dead = next(r for r in rows if r["role"] == "dead-letter")
    return (dead["ready"] or 0) + (dead["in_flight"] or 0)


def _add_unreachable_broker(tmp_path) -> None:
    config = yaml.safe_load((tmp_path / "wfbus.yaml").read_text())
    config["brokers"]["down"] = {
        "type": "rabbitmq",
        "url": "amqp://u:p@127.0.0.1:9/%2F",
        "exchange": "x",
        "queue": "q",
        "timeout_seconds": 2,
    }
    (tmp_path / "wfbus.yaml").write_text(yaml.safe_dump(config))


def test_a_replay_to_an_unreachable_destination_reports_every_message_as_left(
    wfbus, target, tmp_path
):
    _seed_dead_letters(wfbus, tmp_path, 30)
    _add_unreachable_broker(tmp_path)
    result = wfbus("-o", "json", "replay", "-b", "target", "--to", "down")
    assert result.code == 5, result.err
    report = result.json()
    assert report["replayed"] == 0
    assert report["left"] == report["examined"]  # was 0 while every message was still there
    assert _dead_letter_total(wfbus) == 30
    if report["dead_letter_after"] is not None and not report["dead_letter_after"]["approximate"]:
        assert report["dead_letter_after"]["ready"] == 30


def test_a_replay_stopped_by_sigterm_reports_what_moved_and_exits_143(wfbus, target, tmp_path):
    _seed_dead_letters(wfbus, tmp_path, 400)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-o",
            "json",
            "replay",
            "-b",
            "target",
            "--batch",
            "10",
            "--rate",
            "150",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()
    report = json.loads(out)
    assert report["interrupted"] is True and report["signal"] == signal.SIGTERM
    assert 0 < report["replayed"] < 400
    assert (
        count_main(tmp_path) == report["replayed"]
    )  # the broker's own count (a FIFO peek cannot pass group heads)
    deadline = time.monotonic() + 30  # SQS: messages the stopped run held become visible again
    while _dead_letter_total(wfbus) != 400 - report["replayed"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _dead_letter_total(wfbus) == 400 - report["replayed"]

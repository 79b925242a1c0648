"""A second stop signal while --failed-out is being written: it stops sooner, and the resume point stays exact."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter


def test_a_second_sigterm_skips_writing_failed_out_and_resume_still_finishes_exactly(tmp_path):
    count = 150_000
    with (tmp_path / "big.jsonl").open("w") as handle:
        for i in range(count):
            handle.write(
                json.dumps({"topic": "order.submit", "urn": f"o-{i % 13}", "payload": {"i": i}})
                + "\n"
            )
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "WFBUS_STATE_DIR": str(tmp_path / "state"),
        "WFBUS_CONFIG": "",
    }
    env.pop("WFBUS_CONFIG")
    (tmp_path / ".wfbus").mkdir()  # a project data folder: the local broker keeps its data there
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "emit", "big.jsonl", "--failed-out", "rest.jsonl"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    db = tmp_path / ".wfbus" / "local.db"
    while proc.poll() is None and (not db.exists() or _count(db) < 20_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    line = proc.stderr.readline().decode()
    assert line.startswith("stopping: writing the"), line  # says what it is doing while it writes
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    err = line + err.decode()
    assert proc.returncode == 143, err
    assert not (tmp_path / "rest.jsonl").exists()  # no partial file to be taken for the whole list
    assert "emit --broker local --resume big.jsonl" in err

    sent_before = _count(db)
    assert 0 < sent_before < count
    resumed = subprocess.run(
        [sys.executable, "-m", "wfbus", "emit", "--resume", "big.jsonl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    sent = Counter(
        json.loads(b)["payload"]["i"]
        for (b,) in sqlite3.connect(db).execute("SELECT body FROM messages")
    )
    assert set(sent) == set(range(count)), "lost events"
    assert sum(sent.values()) - count <= 1000  # at most the batch that was on the wire


def _count(db) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            return connection.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


import pytest  # noqa: E402


@pytest.mark.parametrize(
    "stop, output", [(signal.SIGTERM, "text"), (signal.SIGHUP, "json"), (signal.SIGINT, "text")]
)
def test_a_stop_while_the_events_are_still_being_read_exits_128_plus_the_signal_and_says_nothing_was_sent(
    tmp_path, stop, output
):
    """A CI timeout (SIGTERM) during the validation pass was a silent exit 130 (Typer's Ctrl-C code)."""
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    env = {**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")}
    env.pop("WFBUS_CONFIG", None)
    (tmp_path / ".wfbus").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "-o", output, "emit", str(fifo)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with fifo.open(
        "w"
    ) as writer:  # opens once wfbus opened it for reading: its handlers are in place
        writer.write(json.dumps({"topic": "order.submit", "urn": "o-1"}) + "\n")
        writer.flush()
        time.sleep(0.3)
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + stop, (proc.returncode, err.decode())
    assert b"before anything was sent" in err, err.decode()
    if output == "json":
        document = json.loads(out)
        assert document["error"]["exit_code"] == 128 + stop
    assert (
        not (tmp_path / ".wfbus" / "local.db").exists()
        or _count(tmp_path / ".wfbus" / "local.db") == 0
    )


def test_one_stop_mid_emit_reports_sent_and_not_sent_that_add_up_and_nothing_failed(tmp_path):
    """The batch being built when the signal came was never handed over: it is "not sent", not
    "failed" (an operator read 449 failed + 249,551 not sent + 250,000 written as three numbers)."""
    count = 150_000
    with (tmp_path / "big.jsonl").open("w") as handle:
        for i in range(count):
            handle.write(
                json.dumps({"topic": "order.submit", "urn": f"o-{i % 13}", "payload": {"i": i}})
                + "\n"
            )
    env = {**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")}
    env.pop("WFBUS_CONFIG", None)
    (tmp_path / ".wfbus").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-o",
            "json",
            "emit",
            "big.jsonl",
            "--failed-out",
            "rest.jsonl",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    db = tmp_path / ".wfbus" / "local.db"
    while proc.poll() is None and (not db.exists() or _count(db) < 20_000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()
    report = json.loads(out)
    assert report["failed_count"] == 0, report["failed"][:3]
    assert 0 < report["published"] < count
    assert report["published"] + report["not_attempted"] == count
    rest = (tmp_path / "rest.jsonl").read_text().splitlines()
    assert len(rest) == report["not_attempted"]
    sent = {
        json.loads(b)["payload"]["i"]
        for (b,) in sqlite3.connect(db).execute("SELECT body FROM messages")
    }
    assert sent | {json.loads(line)["payload"]["i"] for line in rest} == set(
        range(count)
    )  # none lost

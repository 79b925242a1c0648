"""Ctrl-C (SIGINT) during emit and replay: exit 130, a summary of what was confirmed, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import write_config, write_jsonl

N = 60_000


def _rows(db) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        with sqlite3.connect(db) as conn:
            for queue, body in conn.execute("SELECT queue, body FROM messages"):
                out.setdefault(queue, []).append(json.loads(body)["urn"])
    except sqlite3.OperationalError:  # not created yet
        pass
    return out


def _interrupt(proc: subprocess.Popen, db, queue: str, at_least: int) -> tuple[int, dict]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if db.exists() and len(_rows(db).get(queue, [])) >= at_least:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, json.loads(out)


@pytest.mark.slow
def test_ctrl_c_during_emit_reports_what_was_confirmed_and_keeps_the_rest(tmp_path, wfbus):
    write_config(tmp_path / "wfbus.yaml", {"l": {"type": "local", "path": "l.db"}})
    events = [{"topic": "t", "urn": f"c{i:06d}"} for i in range(N)]
    write_jsonl(tmp_path / "e.jsonl", events)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-o",
            "json",
            "emit",
            "e.jsonl",
            "--failed-out",
            "rest.jsonl",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    code, report = _interrupt(proc, tmp_path / "l.db", "l", 2000)
    assert code == 130 and report["interrupted"] is True
    sent = _rows(tmp_path / "l.db").get("l", [])
    rest = [json.loads(line)["urn"] for line in (tmp_path / "rest.jsonl").read_text().splitlines()]
    assert len(sent) == report["published"] and 0 < len(sent) < N
    assert sorted(sent + rest) == [
        e["urn"] for e in events
    ]  # every event: confirmed, or in the file


@pytest.mark.slow
def test_ctrl_c_during_replay_exits_130_and_loses_nothing(tmp_path, wfbus):
    write_config(tmp_path / "wfbus.yaml", {"l": {"type": "local", "path": "l.db"}})
    write_jsonl(tmp_path / "e.jsonl", [{"topic": "t", "urn": f"r{i:06d}"} for i in range(N)])
    assert wfbus("emit", "--dead-letter", "e.jsonl").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "-o", "json", "replay", "--yes", "--batch", "50"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    code, report = _interrupt(proc, tmp_path / "l.db", "l", 2000)
    assert code == 130 and report["interrupted"] is True
    rows = _rows(tmp_path / "l.db")
    assert len(rows.get("l", [])) == report["replayed"]
    assert len(rows.get("l", [])) + len(rows.get("l.dlq", [])) == N

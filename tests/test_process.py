"""wfbus as a real process: lean start-up, exit codes as a shell sees them, and kill -9 safety."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_process, write_config, write_jsonl

DRIVERS = ("boto3", "botocore", "kafka", "pika")


def _imported_modules(args: list[str], cwd) -> set[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['wfbus', *{args!r}]\n"
        "try:\n    runpy.run_module('wfbus', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('MODULES=' + ','.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES=")][-1]
    return set(line.removeprefix("MODULES=").split(","))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["emit", "--topic", "t", "--urn", "u"],
        ["depth"],
        ["replay"],
    ],
)
def test_help_and_local_commands_import_no_broker_driver(tmp_path, args):
    modules = _imported_modules(args, tmp_path)
    assert "wfbus.cli" in modules
    assert not [m for m in modules if m.split(".")[0] in DRIVERS]


def test_exit_codes_seen_by_a_shell(tmp_path):
    assert run_process("emit", "--topic", "t", "--urn", "u", cwd=tmp_path).code == 0
    assert (
        run_process(
            "emit", str(REPO / "sample_events_invalid" / "invalid-events.jsonl"), cwd=tmp_path
        ).code
        == 3
    )
    assert (
        run_process("emit", "--broker", "nope", "--topic", "t", "--urn", "u", cwd=tmp_path).code
        == 2
    )
    (tmp_path / "wfbus.yaml").write_text("brokers: [")
    assert run_process("depth", cwd=tmp_path).code == 4


def test_no_colour_and_no_box_drawing_in_a_pipe(tmp_path):
    run_process("emit", "--topic", "t", "--urn", "u", cwd=tmp_path)
    result = run_process("depth", cwd=tmp_path, env={"NO_COLOR": ""})
    assert "\x1b[" not in result.out and "─" not in result.out and "│" not in result.out
    assert result.out.split()[:3] == ["broker", "queue", "role"]


def _counts(db) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT queue, body FROM messages").fetchall()
    out: dict[str, list[str]] = {}
    for queue, body in rows:
        out.setdefault(queue, []).append(json.loads(body)["urn"])
    return out


@pytest.mark.parametrize("kill_after", [0.35, 0.6, 0.9, 1.3])
def test_a_local_replay_killed_with_sigkill_moves_each_message_exactly_once(tmp_path, kill_after):
    write_config(tmp_path / "wfbus.yaml", {"l": {"type": "local", "path": "l.db"}})
    events = [{"topic": "t", "urn": f"u{i:05d}", "payload": {"i": i}} for i in range(20000)]
    write_jsonl(tmp_path / "e.jsonl", events)
    assert run_process("emit", "--dead-letter", "e.jsonl", cwd=tmp_path).code == 0

    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "replay", "--batch", "50"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _counts(tmp_path / "l.db")
    moved, left = partial.get("l", []), partial.get("l.dlq", [])
    assert len(moved) + len(left) == 20000 and not set(moved) & set(left)

    assert run_process("replay", cwd=tmp_path).code == 0
    final = _counts(tmp_path / "l.db")
    assert sorted(final["l"]) == [e["urn"] for e in events] and "l.dlq" not in final

"""`depth` for scripts: one shape per output mode, watch in JSON lines, unreachable brokers in the table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import write_config


def test_jsonl_is_a_usage_error_for_commands_without_a_line_form(wfbus):
    for args in (["emit", "--topic", "t", "--urn", "u"], ["brokers"], ["schema"], ["depth"]):
        result = wfbus("-o", "jsonl", *args)
        assert result.code == 2 and "use --output json" in result.err, (args, result.err)
    assert (
        wfbus("emit", "--topic", "t", "--urn", "u").code == 0
    )  # nothing was sent by the refused one
    assert wfbus("-o", "jsonl", "peek").code == 0


def test_watch_in_json_prints_one_document_per_refresh_and_ends_with_the_last_status(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")}
    env.pop("WFBUS_CONFIG", None)
    subprocess.run(
        [sys.executable, "-m", "wfbus", "emit", "--topic", "t", "--urn", "u"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-o",
            "json",
            "depth",
            "--watch",
            "0.5",
            "--max-ready",
            "0",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    documents = [json.loads(line) for line in out.decode().splitlines()]
    assert len(documents) >= 2, err
    assert all(d["breaches"] == ["local/local: ready 1 > 0"] for d in documents)
    assert documents[0]["queues"][0]["ready"] == 1
    assert proc.returncode == 6  # the threshold was breached when the watch ended


def test_an_unreachable_broker_is_a_row_of_the_table_in_a_pipe(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "local": {"type": "local"},
            "down": {
                "type": "rabbitmq",
                "url": "amqp://u:p@127.0.0.1:9/%2F",
                "queue": "q",
                "timeout_seconds": 1,
            },
        },
        default="local",
    )
    result = wfbus("depth")
    assert result.code == 5
    lines = result.out.splitlines()
    assert lines[0].split()[-1] == "error"
    assert any(line.startswith("down ") and "127.0.0.1:9" in line for line in lines), result.out


def test_a_broker_error_names_the_broker_once(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "down": {
                "type": "rabbitmq",
                "url": "amqp://u:p@127.0.0.1:9/%2F",
                "queue": "q",
                "timeout_seconds": 1,
            }
        },
    )
    result = wfbus("depth")
    assert result.code == 5 and "down: down:" not in result.err + result.out, result.err
    assert "error: down: " in result.err


def test_an_unreachable_broker_fails_an_emit_the_same_way_on_every_broker_type(wfbus, tmp_path):
    """Before anything is sent: one error document, exit 5, no --failed-out (the input is the resume point)."""
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "k": {"type": "kafka", "bootstrap_servers": ["127.0.0.1:9"], "topic": "t"},
            "r": {
                "type": "rabbitmq",
                "url": "amqp://u:p@127.0.0.1:9/%2F",
                "exchange": "x",
                "timeout_seconds": 1,
            },
            "s": {
                "type": "sqs",
                "queue_url": "http://127.0.0.1:9/000000000000/q",
                "region": "us-east-1",
                "aws_access_key_id": "x",
                "aws_secret_access_key": "y",
                "endpoint_url": "http://127.0.0.1:9",
                "timeout_seconds": 1,
            },
        },
    )
    (tmp_path / "e.jsonl").write_text(
        "".join(json.dumps({"topic": "t", "urn": f"u{i}"}) + "\n" for i in range(60))
    )
    for name in ("k", "r", "s"):
        result = wfbus(
            "-o", "json", "emit", "-b", name, "e.jsonl", "--failed-out", f"f-{name}.jsonl"
        )
        assert result.code == 5, (name, result.err)
        assert set(result.json()) == {"error"} and result.json()["error"]["exit_code"] == 5, name
        assert not (tmp_path / f"f-{name}.jsonl").exists(), name

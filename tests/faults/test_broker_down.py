"""A broker that goes away during a large emit: wfbus stops promptly, --failed-out holds exactly the
unconfirmed events, and emitting that file once the broker is back completes the set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pika
import pytest

from conftest import REPO, write_config, write_jsonl
from contract.kits import RABBITMQ_URL

CTL = str(REPO / "scripts" / "services" / "ctl")


def _ctl(*args: str, keep: bool = False) -> None:
    env = {**os.environ, **({"WFBUS_SERVICES_KEEP": "1"} if keep else {})}
    subprocess.run([CTL, *args], check=True, env=env, capture_output=True, timeout=180)


def _ready(queue: str) -> int:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPConnectionError:
        return -1
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


@pytest.mark.slow
def test_rabbitmq_stopped_mid_emit(tmp_path, wfbus):
    name = f"wfbus-down-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    channel.exchange_declare(name, "topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, "#")
    connection.close()
    write_config(tmp_path / "wfbus.yaml", {"r": {"type": "rabbitmq", "url": RABBITMQ_URL, "exchange": name,
                                                 "queue": name, "timeout_seconds": 5}}, "r")
    total = 60_000
    write_jsonl(tmp_path / "e.jsonl", [{"topic": "order.submit", "urn": f"u{i:06d}"} for i in range(total)])

    proc = subprocess.Popen([sys.executable, "-m", "wfbus", "-o", "json", "emit", "e.jsonl", "--failed-out",
                             "failed.jsonl"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ})
    deadline = time.monotonic() + 60
    while _ready(name) < 3000 and time.monotonic() < deadline:
        time.sleep(0.1)
    stopped_at = time.monotonic()
    _ctl("stop", "rabbitmq")
    out, err = proc.communicate(timeout=120)
    try:
        assert proc.returncode in (1, 5), err.decode()[-2000:]
        assert time.monotonic() - stopped_at < 60  # prompt: bounded timeouts, no hang
        report = json.loads(out)
        failed = [json.loads(line)["urn"] for line in (tmp_path / "failed.jsonl").read_text().splitlines()]
        assert 0 < report["published"] < total
        assert len(failed) == total - report["published"]  # exactly the unconfirmed ones
    finally:
        _ctl("start", "rabbitmq", keep=True)

    assert wfbus("emit", "failed.jsonl").code == 0
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    seen: set[str] = set()
    duplicates = 0
    while True:
        method, _, body = channel.basic_get(name, auto_ack=True)
        if method is None:
            break
        urn = json.loads(body)["urn"]
        duplicates += urn in seen
        seen.add(urn)
    channel.queue_delete(name)
    channel.exchange_delete(name)
    connection.close()
    assert seen == {f"u{i:06d}" for i in range(total)}  # none lost
    print(f"rabbitmq stopped mid-emit: published {report['published']}, failed-out {len(failed)}, "
          f"lost 0, duplicates {duplicates}")

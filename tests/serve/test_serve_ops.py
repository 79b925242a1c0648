"""Limits, unreachable brokers, metrics, shutdown and start-up refusals of
`wfbus serve` (real processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from contract.drain import drain_main
from contract.kits import KITS, selected_kinds
from prometheus_client.parser import text_string_to_metric_families

from serve.conftest import free_port

LOCAL = {"type": "local"}


def _local(tmp_path) -> dict:
    return {"type": "local", "path": str(tmp_path / "local.db"), "queue": "main"}


def _hold(url: str, declared: int = 100) -> socket.socket:
    """A request whose body never completes: it stays in flight until the server gives up on it."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: %d\r\n\r\n{"topic":' % declared
    )
    return sock


def test_requests_over_the_concurrency_limit_are_429(serve, tmp_path):
    server = serve(_local(tmp_path), serve={"max_concurrent": 2})
    held = [_hold(server.url), _hold(server.url)]
    try:
        time.sleep(0.5)
        refused = httpx.post(
            f"{server.url}/events", json={"topic": "order.x", "urn": 1}, timeout=10
        )
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    accepted = httpx.post(f"{server.url}/events", json={"topic": "order.x", "urn": 2}, timeout=10)
    assert accepted.status_code == 200
    assert [json.loads(b)["urn"] for b in drain_main(tmp_path, 1)] == [2]


def test_a_request_that_takes_too_long_is_408(serve, tmp_path):
    server = serve(_local(tmp_path), serve={"request_timeout_seconds": 1})
    sock = _hold(server.url)
    try:
        sock.settimeout(10)
        answer = sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


UNREACHABLE = {
    "kafka": lambda: {
        "type": "kafka",
        "bootstrap_servers": [f"127.0.0.1:{free_port()}"],
        "topic": "t",
        "dead_letter_topic": "t.dlq",
    },
    "rabbitmq": lambda: {
        "type": "rabbitmq",
        "url": f"amqp://guest:s3cret-pw@127.0.0.1:{free_port()}/%2F",
        "exchange": "x",
        "queue": "q",
    },
    "sqs": lambda: {
        "type": "sqs",
        "queue_url": f"http://127.0.0.1:{free_port()}/000000000000/q",
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    },
}


@pytest.mark.parametrize("kind", [k for k in ("kafka", "rabbitmq", "sqs") if k in selected_kinds()])
def test_an_unreachable_broker_is_503_with_retry_after_and_readyz_says_so(serve, kind):
    server = serve(UNREACHABLE[kind](), serve={"readiness_cache_seconds": 0})
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/events", json=[{"topic": "order.x", "urn": i} for i in range(3)])
        ready = client.get("/readyz")
        health = client.get("/healthz")
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) > 0
    assert "s3cret-pw" not in answer.text and "Traceback" not in answer.text
    assert ready.status_code == 503 and health.status_code == 200


def test_metrics_parse_and_depth_gauges_equal_wfbus_depth(kit, serve, tmp_path):
    server = serve(kit.target, serve={"depth_interval_seconds": 0.5, "metrics_public": True})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert (
            client.post(
                "/events", json=[{"topic": "order.a", "urn": i} for i in range(7)]
            ).status_code
            == 200
        )
        assert (
            client.post("/events", json=[{"topic": "billing.b", "urn": "x"}] * 3).status_code == 200
        )
        assert (
            client.post("/events", json=[{"topic": "order.a", "urn": "y", "atempt": 1}]).status_code
            == 400
        )
        depth = subprocess.run(
            [
                sys.executable,
                "-m",
                "wfbus",
                "-c",
                str(tmp_path / "wfbus.yaml"),
                "depth",
                "-b",
                "target",
                "-o",
                "json",
            ],
            capture_output=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert depth.returncode == 0, depth.stderr.decode()
        rows = (
            json.loads(depth.stdout)["queues"]
            if "queues" in json.loads(depth.stdout)
            else json.loads(depth.stdout)["rows"]
        )
        deadline = time.monotonic() + 30
        while True:
            samples = _samples(client.get("/metrics").text)
            gauges = {
                (s.labels["queue"], s.labels["role"], s.name.removeprefix("wfbus_queue_")): s.value
                for s in samples
                if s.name.startswith("wfbus_queue_") and "queue" in s.labels
            }
            expected = {
                (r["queue"], r["role"], f): r[f]
                for r in rows
                for f in ("ready", "in_flight", "delayed", "lag")
                if r.get(f) is not None
            }
            if gauges == expected or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert gauges == expected
    assert any(
        v for (_, role, f), v in expected.items() if role == "main"
    )  # the 10 events are counted
    counts = {
        (s.name, s.labels.get("topic")): s.value
        for s in samples
        if s.name.startswith("wfbus_serve_events")
    }
    assert counts[("wfbus_serve_events_received_total", "order.a")] == 7
    assert counts[("wfbus_serve_events_published_total", "order.a")] == 7
    assert counts[("wfbus_serve_events_published_total", "billing.b")] == 3
    assert not any(
        v for (name, _), v in counts.items() if name == "wfbus_serve_events_failed_total"
    )
    names = {s.name for s in samples}
    assert {
        "wfbus_serve_request_seconds_bucket",
        "wfbus_serve_publish_seconds_bucket",
        "wfbus_serve_requests_in_flight",
    } <= names


def _samples(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


@pytest.mark.parametrize(
    "kind", [k for k in ("kafka", "rabbitmq", "local") if k in selected_kinds()]
)
def test_sigterm_under_load_every_event_answered_2xx_is_at_the_destination(serve, tmp_path, kind):
    kit = KITS[kind]()
    target = kit.settings(tmp_path)
    try:
        server = serve(target, args=["-o", "json"])
        confirmed: list[dict] = []
        answered_other: list[int] = []
        stop = threading.Event()
        lock = threading.Lock()

        def client(worker: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                n = 0
                while not stop.is_set():
                    batch = [
                        {"topic": "order.load", "urn": f"w{worker}", "payload": {"n": n + i}}
                        for i in range(1 + n % 7)
                    ]
                    n += len(batch)
                    try:
                        answer = http.post("/events", json=batch)
                    except httpx.HTTPError:
                        if server.proc.poll() is not None:
                            return
                        continue
                    with lock:
                        if answer.status_code == 200:
                            confirmed.extend(batch)
                        else:
                            answered_other.append(answer.status_code)

        threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        code = server.stop()
        stop.set()
        for thread in threads:
            thread.join(60)
        assert code == 143, server.stderr()
        assert len(confirmed) > 50, "the load did not run"
        bodies = drain_main(tmp_path, len(confirmed), timeout=60)
        at_destination = {(e["urn"], json.dumps(e.get("payload"))) for e in map(json.loads, bodies)}
        missing = [
            e for e in confirmed if (e["urn"], json.dumps(e["payload"])) not in at_destination
        ]
        print(
            f"{kind}: {len(confirmed)} events answered 200, {len(bodies)} at the destination, "
            f"other answers {sorted(set(answered_other))}"
        )
        assert not missing, (
            f"{len(missing)} events answered 200 are not at the destination: {missing[:3]}"
        )
        access = [
            json.loads(line)
            for line in server.stderr_path.read_text().splitlines()
            if line.startswith("{")
        ]
        assert sum(1 for a in access if a["status"] == 200) >= 1
    finally:
        kit.cleanup()


def test_a_non_loopback_address_without_a_token_is_refused(tmp_path):
    (tmp_path / "wfbus.yaml").write_text("brokers:\n  local: {type: local}\n")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WFBUS_SERVE_TOKEN", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-c",
            str(tmp_path / "wfbus.yaml"),
            "serve",
            "--listen",
            f"0.0.0.0:{free_port()}",
        ],
        capture_output=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert b"without a token" in proc.stderr and b"--insecure" in proc.stderr


def test_without_the_server_packages_serve_says_how_to_get_them(tmp_path):
    (tmp_path / "wfbus.yaml").write_text("brokers:\n  local: {type: local}\n")
    code = (
        "import sys; sys.modules['uvicorn'] = None; from wfbus.cli import run; "
        f"sys.exit(run(['-c', {str(tmp_path / 'wfbus.yaml')!r}, 'serve']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert b"pip install 'wfbus[serve]'" in proc.stderr


def test_an_unknown_serve_key_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "wfbus.yaml").write_text(
        "brokers:\n  local: {type: local}\nserve:\n  max_bodyy_bytes: 3\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "wfbus", "-c", str(tmp_path / "wfbus.yaml"), "serve"],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 4
    assert b"serve.max_bodyy_bytes: unknown key" in proc.stderr


@pytest.mark.skipif(
    "rabbitmq" not in selected_kinds(), reason="needs the rabbitmq kit (WFBUS_TEST_BROKERS)"
)
def test_a_partial_failure_is_502_naming_exactly_the_events_that_failed(serve, tmp_path):
    """RabbitMQ refuses an unroutable event (mandatory, basic.return) and confirms the rest."""
    kit = KITS["rabbitmq"]()
    try:
        server = serve(kit.settings(tmp_path))
        events = [
            {"topic": "order.ok", "urn": 1},
            {"topic": "nowhere.lost", "urn": 2},
            {"topic": "billing.ok", "urn": 3},
            {"topic": "nowhere.lost", "urn": 4},
        ]
        answer = httpx.post(f"{server.url}/events", json=events, timeout=60)
        assert answer.status_code == 502, answer.text
        error = answer.json()["error"]
        assert [f["index"] for f in error["failed"]] == [1, 3]
        assert all("unroutable" in f["reason"] for f in error["failed"])
        assert [p["index"] for p in error["published"]] == [0, 2]
        got = sorted(json.loads(b)["urn"] for b in drain_main(tmp_path, 2))
        assert got == [1, 3]
    finally:
        kit.cleanup()


def test_another_broker_only_when_the_config_allows_it(serve, tmp_path):
    other = {"type": "local", "path": str(tmp_path / "other.db"), "queue": "other"}
    server = serve(_local(tmp_path), serve={"brokers": ["other"]}, extra={"other": other})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        allowed = client.post("/events?broker=other", json={"topic": "order.x", "urn": "o"})
        refused = client.post("/events?broker=spare", json={"topic": "order.x", "urn": "s"})
    assert allowed.status_code == 200 and allowed.json()["broker"] == "other"
    assert refused.status_code == 403
    import sqlite3

    rows = sqlite3.connect(tmp_path / "other.db").execute("SELECT body FROM messages").fetchall()
    assert [json.loads(b)["urn"] for (b,) in rows] == ["o"]
    assert not (tmp_path / "local.db").exists()  # nothing reached the default broker

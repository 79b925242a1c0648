"""Adversarial review of `wfbus serve` (issue 16): each test reproduces one defect found on the real
servers and fails on the code it was written against.

A "silent" broker is a TCP listener of the test's own that accepts and never answers (a firewall
dropping packets, a hung node): unlike a closed port it makes the driver wait out its timeout.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from contract.kits import KITS
from prometheus_client.parser import text_string_to_metric_families

from serve.conftest import TOKEN, write_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENT = {"topic": "order.submit", "urn": "review-1"}


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never says a word (nothing is killed)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture
def rabbit(tmp_path):
    kit = KITS["rabbitmq"]()
    settings = kit.settings(tmp_path)
    yield settings
    kit.cleanup()


def _silent_rabbit(port: int) -> dict:
    return {
        "type": "rabbitmq",
        "url": f"amqp://guest:guest@127.0.0.1:{port}/%2F",
        "exchange": "x",
        "queue": "q",
        "timeout_seconds": 2,
    }


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# DEFECT 1: the depth refresher thread dies for good on the first error that is not a WfbusError
# (pika's AMQPConnectorStackTimeout from a silent RabbitMQ node): from then on no broker's depth is
# ever measured, the healthy one included, and wfbus_queue_depth_up never says 0 for the bad one.
def test_depth_of_a_healthy_broker_is_measured_when_another_broker_is_silent(
    serve, rabbit, silent_port
):
    server = serve(
        rabbit,
        serve={
            "tokens": [TOKEN],
            "depth_brokers": ["silent", "target"],
            "depth_interval_seconds": 1,
        },
        extra={"silent": _silent_rabbit(silent_port)},
    )
    deadline = time.monotonic() + 20
    samples: dict = {}
    while time.monotonic() < deadline:
        samples = _samples(httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=10).text)
        if (
            samples.get(("wfbus_queue_depth_up", (("broker", "target"),))) == 1
            and samples.get(("wfbus_queue_depth_up", (("broker", "silent"),))) == 0
        ):
            break
        time.sleep(0.5)
    up = {k: v for k, v in samples.items() if k[0] == "wfbus_queue_depth_up"}
    assert up.get(("wfbus_queue_depth_up", (("broker", "target"),))) == 1, (up, server.stderr())
    assert up.get(("wfbus_queue_depth_up", (("broker", "silent"),))) == 0, (up, server.stderr())


# DEFECT 2: /readyz answers a bare 500 "Internal Server Error" (and logs a traceback) when the
# default broker is a silent RabbitMQ node: _probe only catches WfbusError (want 503, Retry-After).
def test_readyz_of_a_silent_rabbitmq_is_503(serve, tmp_path, silent_port):
    server = serve(_silent_rabbit(silent_port), serve={"tokens": [TOKEN]})
    answer = httpx.get(f"{server.url}/readyz", timeout=30)
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("retry-after"), answer.headers


# DEFECT 3: a publish-only RabbitMQ broker (exchange, no `queue` - the `audit` broker of
# docs/serve.md) is never ready: /readyz probes with depth(), which needs a queue, so it says 503
# "depth needs `queue`" for ever while POST /events publishes fine (an orchestrator would never
# route traffic to it).
def test_readyz_of_a_publish_only_rabbitmq_is_ready(serve, rabbit):
    target = {k: v for k, v in rabbit.items() if k not in ("queue", "dead_letter_queue")}
    server = serve(target, serve={"tokens": [TOKEN], "depth_brokers": []})
    posted = httpx.post(f"{server.url}/events", json=EVENT, headers=AUTH, timeout=30)
    assert posted.status_code == 200, posted.text
    ready = httpx.get(f"{server.url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text


# DEFECT 4: publishing to a silent RabbitMQ node (handshake timeout) answers 502 "internal error:
# AMQPConnectorStackTimeout" instead of 503 + Retry-After: the broker is unreachable and nothing was
# published, which the issue and docs/serve.md answer with 503. (Root cause in
# wfbus/brokers/rabbitmq.py: the handshake timeout is not mapped to BrokerUnavailable; `wfbus emit`
# exits 70 "internal error" on the same broker.)
def test_publishing_to_a_silent_rabbitmq_is_503(serve, tmp_path, silent_port):
    server = serve(_silent_rabbit(silent_port), serve={"tokens": [TOKEN], "depth_brokers": []})
    answer = httpx.post(f"{server.url}/events", json=EVENT, headers=AUTH, timeout=60)
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("retry-after") == "5", answer.headers
    assert "internal error" not in answer.text


# DEFECT 5: a bearer token with a non-ASCII character is accepted in the config but can never
# authenticate: Starlette decodes the header as latin-1 and BearerAuth re-encodes it as UTF-8, so
# the bytes never match. Either refuse such a token at start-up or compare the raw bytes.
def test_a_non_ascii_token_authenticates_or_is_refused_at_start(serve, tmp_path):
    token = "tök-ünïcode-7"
    server = serve(
        {"type": "local", "path": str(tmp_path / "l.db"), "queue": "main"},
        serve={"tokens": [token], "depth_brokers": []},
        wait=False,
    )
    try:
        server.wait_up(20)
    except AssertionError:
        assert server.proc.returncode in (2, 4), server.stderr()  # refused: fine
        return
    answer = httpx.post(
        f"{server.url}/events",
        json=EVENT,
        headers={"Authorization": f"Bearer {token}".encode()},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


# DEFECT 6: a missing serve.tls_certfile is an "internal error" (exit 70, "report it") after the
# server already said it was serving, instead of a config error naming the file.
def test_a_missing_tls_certificate_is_a_config_error(tmp_path):
    write_config(
        tmp_path,
        {"type": "local", "path": str(tmp_path / "l.db"), "queue": "main"},
        {"tls_certfile": "nope/cert.pem", "tls_keyfile": "nope/key.pem", "depth_brokers": []},
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfbus",
            "-c",
            str(tmp_path / "wfbus.yaml"),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode in (2, 4), (proc.returncode, err)
    assert "internal error" not in err
    assert "cert.pem" in err

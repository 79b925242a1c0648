"""`wfbus serve` while its broker crashes under load and comes back: a 2xx only ever answers events
the broker confirmed (every one is at the destination afterwards), the others get an error a client
can retry on (502/503/408 or a closed connection), and the server serves again once the
broker is back.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from serve.conftest import serve  # noqa: F401 - the fixture

from faults.test_broker_down import KafkaTarget, RabbitMqTarget, ctl

RETRYABLE = {502, 503, 408}


@pytest.mark.slow
@pytest.mark.parametrize("kind", [RabbitMqTarget, KafkaTarget], ids=["rabbitmq", "kafka"])
def test_a_broker_killed_mid_request_never_gets_a_2xx_for_an_unconfirmed_event(serve, kind):  # noqa: F811
    target = kind()
    settings = {**target.settings, "timeout_seconds": 3}
    server = serve(settings, args=["-o", "json"])
    confirmed: list[str] = []
    refused: list[int] = []
    confirmed_after_restart = threading.Event()
    restarted = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()

    def client(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            n = 0
            while not stop.is_set():
                urns = [f"w{worker:02d}-{n + i:07d}" for i in range(1 + n % 5)]
                n += len(urns)
                try:
                    answer = http.post(
                        "/events", json=[{"topic": "order.kill", "urn": u} for u in urns]
                    )
                except httpx.HTTPError:
                    time.sleep(
                        0.05
                    )  # the connection was closed: the client does not know, may retry
                    continue
                with lock:
                    if answer.status_code == 200:
                        confirmed.extend(urns)
                        if restarted.is_set():
                            confirmed_after_restart.set()
                    else:
                        refused.append(answer.status_code)
                        time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(confirmed) < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(confirmed) >= 500, f"the load did not run: {server.stderr()}"
        ctl("kill", target.service)  # a crash, with requests in flight
        time.sleep(4)
        ctl("start", target.service, keep=True)
        restarted.set()
        confirmed_after_restart.wait(90)
    finally:
        stop.set()
        for thread in threads:
            thread.join(90)
        code = server.stop()
    assert code == 143, server.stderr()
    assert confirmed_after_restart.is_set(), f"no 2xx after the broker came back: {server.stderr()}"
    assert refused, (
        "the broker's crash was never noticed by a client: the test did not test anything"
    )
    assert set(refused) <= RETRYABLE, f"answers a client cannot retry on: {sorted(set(refused))}"
    seen = target.urns()
    missing = [u for u in confirmed if u not in seen]
    print(
        f"{target.service} killed under serve: {len(confirmed)} answered 200, {len(refused)} refused "
        f"({sorted(set(refused))}), {len(seen)} distinct at the destination, lost {len(missing)}"
    )
    assert not missing, (
        f"{len(missing)} events answered 200 are not at the destination: {missing[:5]}"
    )

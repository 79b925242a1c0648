"""SQS with several batches in flight (SqsBroker.submit): order per message group across batches,
one request per group at a time, and exact accounting when a request fails with batches in flight.

Batch sizes are lowered (monkeypatch) so the window of 4 batches spans tens of messages; the server
is ElasticMQ. A lost connection is injected at wfbus's own request function (the request is then
never sent): what is tested is the accounting of the batches in flight around it,
counted on the server.
"""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict

import pytest
from conftest import write_jsonl

from brokers.test_sqs_fidelity import Queues, _seed, queues  # noqa: F401 - the fixture
from wfbus.brokers.sqs import SqsBroker
from wfbus.errors import BrokerUnavailable

pytestmark = pytest.mark.broker("sqs")


class RequestWatch:
    """Wraps SqsBroker._request: how many requests run at once, overall and per message group."""

    def __init__(self, monkeypatch, fail_at: int | None = None) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.per_group: dict[str, int] = defaultdict(int)
        self.max_per_group = 0
        self.calls = 0
        self.fail_at = fail_at
        real = SqsBroker._request
        watch = self

        def request(broker, url, batch):
            groups = {entry.group for entry in batch if entry.group is not None}
            with watch.lock:
                watch.calls += 1
                if watch.calls == watch.fail_at:
                    raise BrokerUnavailable("injected: connection reset by peer")
                watch.active += 1
                watch.max_active = max(watch.max_active, watch.active)
                for group in groups:
                    watch.per_group[group] += 1
                    watch.max_per_group = max(watch.max_per_group, watch.per_group[group])
            try:
                return real(broker, url, batch)
            finally:
                with watch.lock:
                    watch.active -= 1
                    for group in groups:
                        watch.per_group[group] -= 1

        monkeypatch.setattr(SqsBroker, "_request", request)


def _events(rng: random.Random, count: int, groups: int) -> list[dict]:
    return [
        {"topic": "order.submit", "urn": f"g{rng.randrange(groups)}", "payload": {"n": i}}
        for i in range(count)
    ]


def test_fifo_batches_in_flight_keep_each_groups_order_with_one_request_per_group_at_a_time(
    wfbus, queues, tmp_path, monkeypatch
):
    rng = random.Random(_seed())
    q = queues(fifo=True)
    monkeypatch.setattr(SqsBroker, "publish_batch_size", rng.randint(8, 15))
    watch = RequestWatch(monkeypatch)
    events = _events(rng, rng.randint(200, 320), rng.randint(4, 9))
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl")
    assert result.code == 0, result.err
    assert watch.max_per_group == 1, "two requests of one message group were in flight together"
    assert watch.max_active >= 2, "groups are sent side by side"
    arrived = [json.loads(m["Body"]) for m in q.drain(q.main)]
    assert sorted(e["payload"]["n"] for e in arrived) == list(range(len(events)))
    per_group: dict[str, list[int]] = defaultdict(list)
    for event in arrived:
        per_group[event["urn"]].append(event["payload"]["n"])
    for group, seq in per_group.items():
        assert seq == sorted(seq), f"group {group} out of order: {seq[:20]}"


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_lost_connection_with_batches_in_flight_is_accounted_exactly(
    wfbus, queues, tmp_path, monkeypatch, fifo
):
    """Every event is either in the queue once or in --failed-out, never both; on FIFO what arrived
    of each group is a prefix of it (nothing after a message that did not arrive)."""
    rng = random.Random(_seed())
    q = queues(fifo=fifo)
    batch = rng.randint(8, 15)
    monkeypatch.setattr(SqsBroker, "publish_batch_size", batch)
    RequestWatch(monkeypatch, fail_at=rng.randint(4, 12))
    events = _events(
        rng, batch * SqsBroker.pipeline_window * 3 + rng.randint(0, batch), rng.randint(3, 8)
    )
    write_jsonl(tmp_path / "e.jsonl", events)
    result = wfbus("-o", "json", "emit", "e.jsonl", "--failed-out", "failed.jsonl")
    assert result.code == 1, result.err
    report = result.json()
    assert report["aborted"] and "injected" in report["aborted"]
    arrived = [json.loads(m["Body"])["payload"]["n"] for m in q.drain(q.main)]
    failed = [
        json.loads(line)["payload"]["n"]
        for line in (tmp_path / "failed.jsonl").read_text().splitlines()
    ]
    assert len(arrived) == len(set(arrived)) == report["published"]
    assert not set(arrived) & set(failed), "confirmed and also in --failed-out"
    assert sorted(arrived + failed) == list(range(len(events))), (
        "every event in the queue or in --failed-out"
    )
    assert report["failed_count"] + report["not_attempted"] == len(failed)
    if fifo:
        by_group: dict[str, list[int]] = defaultdict(list)
        for event in events:
            by_group[event["urn"]].append(event["payload"]["n"])
        got = set(arrived)
        for group, seq in by_group.items():
            flags = [n in got for n in seq]
            assert flags == sorted(flags, reverse=True), (
                f"group {group}: a message arrived after a gap: {flags}"
            )

"""Three `wfbus replay` processes draining one dead-letter queue at once: the broker shares the work
(competing consumers, the Kafka replay group); every event arrives, none is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import write_jsonl
from contract.test_contract import _depth

N = 600


@pytest.mark.slow
def test_three_concurrent_replays_lose_nothing(wfbus, target, tmp_path):
    events = [{"topic": "order.submit", "urn": f"s{i:04d}"} for i in range(N)]
    write_jsonl(tmp_path / "dlq.jsonl", events)
    assert wfbus("emit", "-b", "target", "--dead-letter", "dlq.jsonl").code == 0

    procs = [subprocess.Popen([sys.executable, "-m", "wfbus", "-o", "json", "replay", "-b", "target", "--yes",
                               "--batch", "20"], cwd=tmp_path, env={**os.environ}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out))
    deadline = time.monotonic() + 60
    while _depth(wfbus)["dead-letter"] and time.monotonic() < deadline:  # SQS: held messages come back
        assert wfbus("replay", "-b", "target", "--yes").code == 0
        time.sleep(1)

    moved = Counter(e["urn"] for e in json.loads(
        wfbus("peek", "-b", "target", "--all", "--force", "-o", "json").out))
    assert set(moved) == {e["urn"] for e in events}  # none lost
    duplicates = sum(c - 1 for c in moved.values())
    shares = [r["replayed"] for r in reports]
    print(f"{target.kind}: 3 replays moved {shares} (sum {sum(shares)}), duplicates {duplicates}")
    if target.kind in ("local", "sqs", "sqs-fifo", "rabbitmq"):
        assert duplicates == 0

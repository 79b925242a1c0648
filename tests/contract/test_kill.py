"""Kill -9 during a replay, then run it again: no event may be lost, on every broker."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import write_jsonl

N = 500
TRIALS = 20  # issue 8: at least 20 kill points per broker type


def _ids(wfbus, *flags) -> Counter:
    result = wfbus("peek", "-b", "target", "--all", "--force", "-o", "json", *flags)
    assert result.code == 0, result.err
    return Counter(e["urn"] for e in json.loads(result.out))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_replay_killed_at_a_random_moment_loses_nothing(wfbus, target, tmp_path, trial):
    events = [{"topic": "order.submit", "urn": f"k{i:04d}", "payload": {"i": i}} for i in range(N)]
    write_jsonl(tmp_path / "dlq.jsonl", events)
    assert wfbus("emit", "-b", "target", "--dead-letter", "dlq.jsonl").code == 0

    rng = random.Random(trial * 7919 + hash(target.kind) % 1000)
    # --rate spreads the replay over ~2 s after start-up, so the kill lands mid-way, not before or after
    proc = subprocess.Popen([sys.executable, "-m", "wfbus", "replay", "-b", "target", "--batch", "10",
                             "--rate", "250"],
                            cwd=tmp_path, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(rng.uniform(0.9, 2.9))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    moved_before_rerun = sum(_ids(wfbus).values())

    deadline = time.monotonic() + 60
    while True:  # rerun until the dead-letter queue is drained (SQS: held messages come back after visibility)
        result = wfbus("replay", "-b", "target", "-o", "json")
        assert result.code == 0, result.err
        depth = {q["role"]: q for q in wfbus("depth", "-b", "target", "-o", "json").json()["queues"]}
        dead = depth["dead-letter"]
        if (dead["ready"] or 0) == 0 and (dead["in_flight"] or 0) == 0:
            break
        assert time.monotonic() < deadline, f"dead-letter queue not drained: {dead}"
        time.sleep(1)

    moved = _ids(wfbus)
    expected = {e["urn"] for e in events}
    assert set(moved) == expected, f"lost: {sorted(expected - set(moved))[:10]}"
    duplicates = sum(count - 1 for count in moved.values())
    # The journal makes a rerun finish, not repeat, a publish that was confirmed. A kill while a batch
    # is on the wire (sent, confirm not yet received) can still repeat that one batch (--batch 10),
    # except where the destination recognises the resend (see Kit.kill_duplicates_bound).
    assert duplicates <= target.kill_duplicates_bound
    print(f"{target.kind}: trial {trial}: killed with {moved_before_rerun}/{N} moved; lost 0, duplicates {duplicates}")

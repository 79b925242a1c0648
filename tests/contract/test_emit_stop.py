"""An emit stopped at a random point loses nothing once the documented recovery ran, on every broker.

SIGTERM and SIGHUP are handled like Ctrl-C (exit 128+signal, exact --failed-out: recovery is
`wfbus emit FAILED_OUT`); SIGKILL leaves only the progress record (recovery is `wfbus emit --resume`
with the same sources). The kill point is a random fraction of the events, reached by watching the
destination fill, so the stops land mid-way; most trials must, or the test proves nothing. Counting
is done with each broker's own client: every event at the destination, duplicates at most the
batches that were in flight (pipeline_window x publish_batch_size), and a resume reports that bound.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

from contract.drain import count_main, drain_main, target_settings
from wfbus.brokers import broker_class

TRIALS = int(os.environ.get("WFBUS_STOP_TRIALS", "10"))
SIGNALS = [signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGHUP]


def _seed() -> int:
    return int(os.environ.get("WFBUS_TEST_SEED") or random.SystemRandom().randrange(1 << 30))


def _wfbus(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wfbus", *args],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")},
    )


def test_emit_stopped_by_a_signal_at_a_random_point_loses_nothing_after_recovery(
    wfbus, target, tmp_path
):
    seed = _seed()
    rng = random.Random(seed)
    print(f"seed {seed} (WFBUS_TEST_SEED={seed} repeats this run)")
    settings = target_settings(tmp_path)
    batch = broker_class(settings["type"]).publish_batch_size
    # what a kill may leave sent but unrecorded: every batch in flight (pipeline_window of them)
    in_flight = batch * max(1, broker_class(settings["type"]).pipeline_window)
    landed_mid_way = 0
    already_there = 0  # local and Kafka keep what earlier trials sent
    for trial in range(TRIALS):
        stop = SIGNALS[trial % len(SIGNALS)]
        # local: ~15k events/s, give it time; Kafka through librdkafka sends 15k events in a
        # fraction of a second, before a watcher polling the topic can catch it mid-way (the
        # kafka-python driver is slow enough for the general 2.5-4 batches)
        librdkafka = settings["type"] == "kafka" and settings.get("driver") != "kafka-python"
        batches = (10, 20) if settings["type"] == "local" else (6, 10) if librdkafka else (2.5, 4)
        count = rng.randint(int(batch * batches[0]), int(batch * batches[1]))
        count = max(
            count, rng.randint(1000, 1600)
        )  # small batches (SQS: 100): time for the stop to land
        events = [
            {
                "topic": "order.submit",
                "urn": f"u-{i % 7}",
                "payload": {"trial": trial, "i": i, "pw": "guest"},
                "attempt": 0,
            }
            for i in range(count)
        ]
        source = tmp_path / f"events-{trial}.jsonl"
        source.write_text("".join(json.dumps(e) + "\n" for e in events))
        failed_out = tmp_path / f"failed-{trial}.jsonl"
        baseline = count_main(
            tmp_path
        )  # what the destination holds before this trial's emit starts
        kill_at = baseline + int(count * rng.uniform(0.15, 0.85))

        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wfbus",
                "-o",
                "json",
                "emit",
                "-b",
                "target",
                str(source),
                "--failed-out",
                str(failed_out),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "WFBUS_STATE_DIR": str(tmp_path / "state")},
        )
        while proc.poll() is None and count_main(tmp_path) < kill_at:
            time.sleep(0.02)
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=300)
        before_recovery = count_main(tmp_path) - baseline
        stopped = proc.returncode == (-stop if stop == signal.SIGKILL else 128 + stop)
        mid_way = 0 < before_recovery < count and stopped
        landed_mid_way += mid_way

        recovery_report = None
        if stop == signal.SIGKILL:
            assert proc.returncode in (-signal.SIGKILL, 0), err.decode()
            recovered = _wfbus(
                tmp_path, "-o", "json", "emit", "--resume", "-b", "target", str(source)
            )
            assert recovered.returncode == 0, recovered.stderr.decode()
            recovery_report = json.loads(recovered.stdout)
        elif proc.returncode == 128 + stop:
            report = json.loads(out)
            undelivered = report["failed_count"] + report["not_attempted"]
            assert report["published"] + undelivered == count
            if undelivered:
                lines = failed_out.read_text().splitlines()
                assert len(lines) == undelivered, (
                    "--failed-out must hold exactly the events not confirmed"
                )
                recovered = _wfbus(tmp_path, "emit", "-b", "target", str(failed_out))
                assert recovered.returncode == 0, recovered.stderr.decode()
            else:
                assert not failed_out.exists()
        elif proc.returncode == -stop and out:
            # the signal came while the interpreter shut down, after the whole report was written
            # (Python puts the default handlers back for its last steps): everything was confirmed
            report = json.loads(out)
            assert report["published"] == count == before_recovery, (report, before_recovery)
        elif proc.returncode == -stop:
            # the signal came before wfbus could handle it: nothing was sent
            assert before_recovery == 0, err.decode()
            assert _wfbus(tmp_path, "emit", "-b", "target", str(source)).returncode == 0
        else:
            assert proc.returncode == 0, err.decode()  # it finished before the signal arrived

        bodies = [json.loads(b) for b in drain_main(tmp_path, already_there + count)]
        mine = Counter(e["payload"]["i"] for e in bodies if e["payload"]["trial"] == trial)
        lost = set(range(count)) - set(mine)
        duplicates = sum(n - 1 for n in mine.values())
        assert not lost, (
            f"seed {seed} trial {trial} ({stop.name}): lost {len(lost)}, e.g. {sorted(lost)[:5]}"
        )
        assert duplicates <= in_flight, (
            f"seed {seed} trial {trial}: {duplicates} duplicates, over {in_flight}"
        )
        if recovery_report is not None and recovery_report["resume"]["skipped_confirmed"]:
            assert duplicates <= recovery_report["resume"]["may_be_duplicated"]  # said, not hidden
        if settings["type"] in ("local", "kafka"):
            already_there += sum(mine.values())
        print(
            f"{target.kind}: trial {trial} {stop.name}: {count} events, {before_recovery} confirmed before "
            f"the stop; lost 0, duplicates {duplicates}"
        )
    assert landed_mid_way >= TRIALS * 0.7, (
        f"seed {seed}: only {landed_mid_way}/{TRIALS} stops landed mid-way"
    )

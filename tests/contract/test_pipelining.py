"""Pipelining (issue 14 item 2) on every broker type: batches in flight, each accounted exactly.

A broker declares how many batches it keeps in flight (`Broker.pipeline_window`); emit and replay
hand batches over with `submit()` and read each answer (`PendingPublish.result()`) oldest first.
What is checked here, with each broker's own client at the destination:

- batches really overlap where the window is above one: a message of the second batch reaches the
  destination before the first batch's answer is read (a wfbus that waits for each answer never gets
  there), and never more than the window is in flight;
- generated workloads across window x batch boundaries (sizes window*batch-1, window*batch,
  window*batch+1 and random ones; the seed is printed): every event at the destination exactly once,
  order per key where the broker promises it (the kit's capabilities), the
  dead-letter queue drained;
- a message the destination refuses in the middle of a window fails alone: everything else arrives,
  --failed-out holds exactly that one;
- SIGTERM while batches are in flight (reached by watching the destination fill): every answer on
  the wire is read, the report and --failed-out are exact, nothing is lost and nothing duplicated.

Batch sizes are lowered in-process (monkeypatch) so the boundaries come after tens of events, not
thousands; the window is the broker's own.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from contract.drain import count_main, drain_main, target_settings
from wfbus.brokers import broker_class
from wfbus.brokers.base import PendingPublish


def _seed(label: str) -> random.Random:
    seed = int(os.environ.get("WFBUS_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"{label}: seed {seed} (WFBUS_TEST_SEED={seed} repeats it)")
    return random.Random(seed)


class Watch:
    """Counts the batches handed to the destination and the answers read, as emit/replay see them.

    Wraps the broker class's own submit(); the broker and its server are untouched.
    `on_first_answer` runs when the first batch's answer is about to be read (before it is)."""

    def __init__(self, monkeypatch, cls, on_first_answer=None) -> None:
        self.submitted = 0
        self.answered = 0
        self.max_in_flight = 0
        self.receive_ahead: bool | None = None
        self.on_first_answer = on_first_answer
        self.lock = threading.Lock()
        real_submit, real_reader = cls.submit, cls.dead_letter_reader
        watch = self

        def submit(broker, messages, **kwargs):
            pending = real_submit(broker, messages, **kwargs)
            with watch.lock:
                watch.submitted += 1
                number = watch.submitted
                watch.max_in_flight = max(watch.max_in_flight, watch.submitted - watch.answered)
            return _Watched(pending, watch, number)

        def dead_letter_reader(broker):
            reader = real_reader(broker)
            watch.receive_ahead = getattr(
                reader, "receive_ahead", False
            )  # absent before pipelining
            return reader

        monkeypatch.setattr(cls, "submit", submit)
        monkeypatch.setattr(cls, "dead_letter_reader", dead_letter_reader)

    @property
    def in_flight(self) -> int:
        with self.lock:
            return self.submitted - self.answered


class _Watched(PendingPublish):
    def __init__(self, inner: PendingPublish, watch: Watch, number: int) -> None:
        super().__init__(inner.messages)
        self.inner, self.watch, self.number, self.read = inner, watch, number, False

    def result(self):
        if self.number == 1 and self.watch.on_first_answer is not None and not self.read:
            self.watch.on_first_answer(len(self.messages))
        try:
            return self.inner.result()
        finally:
            if not self.read:
                self.read = True
                with self.watch.lock:
                    self.watch.answered += 1


def _events(rng: random.Random, count: int, tag: str, keys: int) -> list[dict]:
    return [
        {
            "topic": "order.submit",
            "urn": f"{tag}-k{rng.randrange(keys)}",
            "payload": {"tag": tag, "i": i, "text": "ünï" * rng.randint(0, 5)},
            "attempt": 0,
        }
        for i in range(count)
    ]


def _write(path: Path, events: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
    )
    return path


def _check_arrived(target, bodies: list[bytes], events: list[dict], tag: str, label: str) -> None:
    """Every event of this run exactly once, byte for byte, in order per key where promised."""
    expected = {
        json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode(): e for e in events
    }
    mine = [b for b in bodies if b in expected]
    strangers = [b for b in bodies if b not in expected and f'"tag":"{tag}"'.encode() in b]
    assert not strangers, f"{label}: altered bodies arrived: {strangers[:2]}"
    counts = Counter(mine)
    lost = [e["payload"]["i"] for b, e in expected.items() if counts[b] == 0]
    duplicated = {expected[b]["payload"]["i"]: n for b, n in counts.items() if n > 1}
    assert not lost, f"{label}: lost {len(lost)} of {len(events)}: {lost[:10]}"
    assert not duplicated, f"{label}: duplicated {duplicated}"
    order = [expected[b]["payload"]["i"] for b in mine]
    if target.order == "total":
        assert order == sorted(order), f"{label}: publish order not kept: {order[:30]}"
    elif target.order == "per-key":
        per_key: dict[str, list[int]] = defaultdict(list)
        for b in mine:
            per_key[expected[b]["urn"]].append(expected[b]["payload"]["i"])
        for key, seq in per_key.items():
            assert seq == sorted(seq), f"{label}: key {key} out of order: {seq[:30]}"


def _dead_letter_left(wfbus) -> int:
    result = wfbus("depth", "-b", "target", "-o", "json")
    assert result.code == 0, result.err
    row = next(q for q in result.json()["queues"] if q["role"] == "dead-letter")
    return (row["ready"] or 0) + (row["in_flight"] or 0) + (row["lag"] or 0)


def _wait_for_second_batch(tmp_path: Path, seen: dict, baseline: int):
    """On the first answer: wait (up to 20 s) until more than the first batch has arrived."""

    def wait(first_batch: int) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if count_main(tmp_path) - baseline > first_batch:
                seen["overtook"] = True
                return
            time.sleep(0.05)
        seen["overtook"] = False

    return wait


# -- overlap ---------------------------------------------------------------------------------------
def test_emit_sends_the_next_batches_before_reading_the_first_answer(
    wfbus, target, tmp_path, monkeypatch
):
    """A window above one is used: batch 2 reaches the server before batch 1's answer is read."""
    settings = target_settings(tmp_path)
    cls = broker_class(settings["type"])
    window = max(1, cls.pipeline_window)
    batch = 10
    monkeypatch.setattr(cls, "publish_batch_size", batch)
    seen: dict = {}
    watch = Watch(
        monkeypatch,
        cls,
        _wait_for_second_batch(tmp_path, seen, count_main(tmp_path)) if window > 1 else None,
    )
    rng = _seed(target.kind)
    events = _events(rng, batch * (window + 2), "overlap", 5)
    result = wfbus("-o", "json", "emit", "-b", "target", str(_write(tmp_path / "e.jsonl", events)))
    assert result.code == 0, result.err
    assert result.json()["published"] == len(events)
    assert watch.submitted == window + 2, "every batch is handed over with Broker.submit()"
    assert watch.answered == watch.submitted
    assert watch.max_in_flight == window, (
        f"{target.kind}: at most, and up to, its window of {window} in flight"
    )
    if window > 1:
        assert seen.get("overtook"), (
            f"{target.kind}: batch 2 never reached the server before batch 1's answer"
        )
    _check_arrived(target, drain_main(tmp_path, len(events)), events, "overlap", target.kind)


def test_replay_publishes_the_next_batches_before_settling_the_first(
    wfbus, target, tmp_path, monkeypatch
):
    """Where the source's reader may receive ahead, replay keeps the destination's window busy."""
    settings = target_settings(tmp_path)
    cls = broker_class(settings["type"])
    window = max(1, cls.pipeline_window)
    rng = _seed(target.kind)
    events = _events(rng, 10 * (window + 2), "replay-overlap", 5)
    assert (
        wfbus(
            "emit", "-b", "target", "--dead-letter", str(_write(tmp_path / "d.jsonl", events))
        ).code
        == 0
    )
    seen: dict = {}
    watch = Watch(monkeypatch, cls, None)
    watch.on_first_answer = lambda first: (
        _wait_for_second_batch(tmp_path, seen, 0)(first)
        if window > 1 and watch.receive_ahead
        else None
    )
    result = wfbus("-o", "json", "replay", "-b", "target", "--yes", "--batch", "10")
    assert result.code == 0, result.err
    assert result.json()["replayed"] == len(events)
    expected_window = window if watch.receive_ahead else 1
    if target.capabilities.atomic_transfer:
        expected_window = (
            0  # into the same store: moved in one transaction each, nothing is published
        )
    print(f"{target.kind}: window {window}, reader receives ahead: {watch.receive_ahead}")
    assert watch.max_in_flight == expected_window
    if expected_window > 1:
        assert seen.get("overtook"), (
            f"{target.kind}: batch 2 never reached the server before batch 1 was settled"
        )
    _check_arrived(target, drain_main(tmp_path, len(events)), events, "replay-overlap", target.kind)
    assert _dead_letter_left(wfbus) == 0


# -- generated workloads across window x batch boundaries ------------------------------------------
def test_emit_and_replay_across_window_and_batch_boundaries(wfbus, target, tmp_path, monkeypatch):
    settings = target_settings(tmp_path)
    cls = broker_class(settings["type"])
    window = max(1, cls.pipeline_window)
    rng = _seed(target.kind)
    batch = rng.randint(5, 12)
    monkeypatch.setattr(cls, "publish_batch_size", batch)
    unit = window * batch
    sizes = [unit - 1, unit, unit + 1, rng.randint(1, 3 * unit + 2)]
    print(f"{target.kind}: window {window}, batch {batch}, sizes {sizes}")
    keeps = settings["type"] in (
        "local",
        "kafka",
        "spool",
    )  # read without removal: earlier runs stay
    before = 0
    for run, size in enumerate(sizes):
        tag = f"emit{run}"
        events = _events(rng, size, tag, rng.randint(1, 9))
        result = wfbus(
            "-o", "json", "emit", "-b", "target", str(_write(tmp_path / f"{tag}.jsonl", events))
        )
        assert result.code == 0, result.err
        assert result.json()["published"] == size
        bodies = drain_main(tmp_path, before + size)
        _check_arrived(target, bodies, events, tag, f"{target.kind} emit {size}")
        if keeps:
            before += size

        tag = f"replay{run}"
        events = _events(rng, size, tag, rng.randint(1, 9))
        assert (
            wfbus(
                "emit",
                "-b",
                "target",
                "--dead-letter",
                str(_write(tmp_path / f"{tag}.jsonl", events)),
            ).code
            == 0
        )
        replay_batch = rng.randint(3, 12)
        result = wfbus(
            "-o", "json", "replay", "-b", "target", "--yes", "--batch", str(replay_batch)
        )
        assert result.code == 0, result.err
        report = result.json()
        assert (report["replayed"], report["left"]) == (size, 0), report
        bodies = drain_main(tmp_path, before + size)
        _check_arrived(
            target, bodies, events, tag, f"{target.kind} replay {size} (--batch {replay_batch})"
        )
        assert _dead_letter_left(wfbus) == 0
        if keeps:
            before += size


# -- a failure in the middle of a window -----------------------------------------------------------
def _refused_event(kind: str, monkeypatch) -> dict | None:
    """One event the destination refuses on its own, as each server really does (None: this
    type has none).

    SQS: a 300 KB message (ElasticMQ refuses over 256 KiB; it ignores MaximumMessageSize, so wfbus's
    own size check is raised for the test, the refusal is the server's). RabbitMQ: a topic no queue
    is bound to (returned unroutable). Kafka (either driver): a 2 MB record, over
    the broker's message.max.bytes."""
    if kind in ("sqs", "sqs-fifo"):
        from wfbus.brokers.sqs import SqsBroker

        monkeypatch.setattr(SqsBroker, "message_size_limit", lambda self: 1 << 20)
        return {"topic": "order.submit", "urn": "refused-alone", "payload": {"blob": "x" * 300_000}}
    if kind == "rabbitmq":
        return {"topic": "nowhere.unroutable", "urn": "refused-alone", "payload": {}}
    if kind in ("kafka", "kafka-python"):
        cls = broker_class("kafka")
        monkeypatch.setattr(cls, "message_size_limit", lambda self: None)
        return {
            "topic": "order.submit",
            "urn": "refused-alone",
            "payload": {"blob": "x" * 2_000_000},
        }
    return None


def test_a_refused_message_in_the_middle_of_a_window_fails_alone(
    wfbus, target, tmp_path, monkeypatch
):
    settings = target_settings(tmp_path)
    cls = broker_class(settings["type"])
    window = max(1, cls.pipeline_window)
    bad = _refused_event(target.kind, monkeypatch)
    if bad is None:
        pytest.skip(
            f"{target.kind}: the destination refuses no single message (nothing to provoke)"
        )
    rng = _seed(target.kind)
    batch = rng.randint(6, 12)
    monkeypatch.setattr(cls, "publish_batch_size", batch)
    events = _events(rng, window * batch * 2 + rng.randint(1, batch), "mid", 6)
    at = batch + rng.randint(
        1, batch - 2
    )  # inside the second batch: others are in flight around it
    bad["payload"]["tag"], bad["payload"]["i"] = "mid", -1
    bad["attempt"] = 0
    source = _write(tmp_path / "mid.jsonl", events[:at] + [bad] + events[at:])
    failed_out = tmp_path / "failed.jsonl"
    result = wfbus(
        "-o", "json", "emit", "-b", "target", str(source), "--failed-out", str(failed_out)
    )
    assert result.code == 1, result.err
    report = result.json()
    assert (report["published"], report["failed_count"], report["not_attempted"]) == (
        len(events),
        1,
        0,
    ), report
    assert [json.loads(line)["urn"] for line in failed_out.read_text().splitlines()] == [
        "refused-alone"
    ]
    _check_arrived(
        target,
        drain_main(tmp_path, len(events)),
        events,
        "mid",
        f"{target.kind} refused mid-window",
    )


# -- SIGTERM while batches are in flight -----------------------------------------------------------
def test_sigterm_with_batches_in_flight_reads_every_answer_and_loses_nothing(
    wfbus, target, tmp_path, monkeypatch
):
    settings = target_settings(tmp_path)
    cls = broker_class(settings["type"])
    window = max(1, cls.pipeline_window)
    rng = _seed(target.kind)
    batch = 20
    monkeypatch.setattr(cls, "publish_batch_size", batch)
    watch = Watch(monkeypatch, cls)
    previous = signal.signal(
        signal.SIGTERM, lambda *_: None
    )  # a signal after the run ends is harmless
    trials, mid_way, in_flight_at_stop = 5, 0, []
    scale = 1  # a broker that finished before the stop gets more events in the next trial
    keeps = settings["type"] in ("local", "kafka", "spool")
    before = 0
    try:
        for trial in range(trials):
            # several windows; a broker without a window gets enough events for the stop
            # to land mid-way
            count = scale * max(
                rng.randint(6, 12) * window * batch, rng.randint(2500, 4000) // window
            )
            count += rng.randint(0, batch)
            tag = f"term{trial}"
            events = _events(rng, count, tag, 7)
            source = _write(tmp_path / f"{tag}.jsonl", events)
            failed_out = tmp_path / f"{tag}-failed.jsonl"
            baseline = count_main(tmp_path)
            kill_at = baseline + int(count * rng.uniform(0.2, 0.7))
            state = {"in_flight": None}
            done = threading.Event()

            def stopper(done=done, kill_at=kill_at, state=state) -> None:
                while not done.is_set() and count_main(tmp_path) < kill_at:
                    time.sleep(0.01)
                if not done.is_set():
                    state["in_flight"] = watch.in_flight
                    os.kill(os.getpid(), signal.SIGTERM)

            thread = threading.Thread(target=stopper, daemon=True)
            thread.start()
            result = wfbus(
                "-o", "json", "emit", "-b", "target", str(source), "--failed-out", str(failed_out)
            )
            done.set()
            thread.join()
            if result.code == 130 and not result.out:
                # the signal landed after the sending ended (closing the progress record,
                # rendering): click turns it into an Abort with no report (a gap before this work,
                # said in the report). The destination must then hold every event exactly once:
                # checked below, nothing resent.
                report = {"published": count}
                print(f"{target.kind}: trial {trial}: the stop landed after the sending ended")
            else:
                assert result.code in (0, 143), result.err
                report = result.json()
            undelivered = report.get("failed_count", 0) + report.get("not_attempted", 0)
            assert report["published"] + undelivered == count, report
            if result.code != 143 or report["published"] == count:
                scale = min(scale * 3, 27)
            if result.code == 143:
                mid_way += 0 < report["published"] < count
                in_flight_at_stop.append(state["in_flight"])
                if undelivered:
                    lines = failed_out.read_text().splitlines()
                    assert len(lines) == undelivered, (
                        "--failed-out holds exactly the events not confirmed"
                    )
                    again = wfbus("emit", "-b", "target", str(failed_out))
                    assert again.code == 0, again.err
            bodies = drain_main(tmp_path, before + count)
            _check_arrived(target, bodies, events, tag, f"{target.kind} SIGTERM trial {trial}")
            if keeps:
                before += count
            print(
                f"{target.kind}: trial {trial}: {count} events, stopped with "
                f"{state['in_flight']} batch(es) in flight, {report['published']} confirmed before "
                "the stop; lost 0, duplicates 0"
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert mid_way >= 2, f"only {mid_way}/{trials} stops landed mid-way"
    if window > 1:
        assert any((n or 0) >= 2 for n in in_flight_at_stop), (
            f"{target.kind}: no stop landed with several batches in flight: {in_flight_at_stop}"
        )


# -- SIGKILL of an unpaced replay with batches in flight -------------------------------------------
def test_a_killed_replay_with_batches_in_flight_loses_nothing_and_repeats_at_most_the_window(
    wfbus, target, tmp_path
):
    """Published but not yet journaled: at most the batches in flight can repeat after a rerun (none
    where the destination drops a resend or the move is one transaction)."""
    import subprocess
    import sys

    settings = target_settings(tmp_path)
    cls = broker_class(settings["type"])
    caps = target.capabilities
    batch = 20
    rng = _seed(target.kind)
    count = rng.randint(1500, 2500)
    events = _events(rng, count, "killed", 9)
    assert (
        wfbus(
            "emit", "-b", "target", "--dead-letter", str(_write(tmp_path / "k.jsonl", events))
        ).code
        == 0
    )
    with cls(
        "target", cls.settings_model(**settings), tmp_path
    ) as broker:  # what the source's reader declares
        with broker.dead_letter_reader() as reader:
            window = max(1, cls.pipeline_window) if reader.receive_ahead else 1
    bound = 0 if caps.atomic_transfer or caps.dedup_on_resend else window * batch
    env = {**os.environ, "NO_COLOR": "1", "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", "replay", "-b", "target", "--yes", "--batch", str(batch)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_at = int(count * rng.uniform(0.2, 0.7))
    while proc.poll() is None and count_main(tmp_path) < kill_at:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    at_kill = count_main(tmp_path)
    deadline = time.monotonic() + 90
    while _dead_letter_left(wfbus):
        result = wfbus("-o", "json", "replay", "-b", "target", "--yes")
        assert result.code in (0, 1) and not result.json()["failed"], result.err
        assert time.monotonic() < deadline, "the dead-letter queue was not drained"
        time.sleep(0.5)
    bodies = drain_main(tmp_path, count)
    expected = {json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode() for e in events}
    counts = Counter(b for b in bodies if b in expected)
    lost = len(expected) - len(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"{target.kind}: killed at {at_kill}/{count} (window {window}); lost {lost}, "
        f"duplicates {duplicates} (bound {bound})"
    )
    assert lost == 0
    assert duplicates <= bound

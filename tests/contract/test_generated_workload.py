"""A generated dead-letter workload, replayed with random interruptions, checked by counting.

Inputs vary on every run (the seed is printed; WFBUS_TEST_SEED repeats one): how many events, how
many message groups (each longer than one replay batch), payloads holding registered secrets and
unicode, foreign (non-event) bodies with headers of every type the broker has; and the replay is
stopped by SIGTERM or SIGKILL at a random point, or not at all. Whatever happens, once the
documented recovery (run the replay again) is done:

- every dead-lettered body is at the destination, byte for byte, and nothing else is;
- duplicates only where the broker cannot recognise a resend, at most the batch on the wire;
- when the replay was not interrupted, the order per key is the order in the dead-letter queue,
  wherever the broker declares an ordering (Capabilities.ordering).

WFBUS_WORKLOAD_ROUNDS sets how many workloads per broker (CI: 2; the soak command in README: 30).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

from contract.drain import count_main, drain_main, inject_foreign_dead_letters, target_settings
from wfbus.brokers import broker_class

ROUNDS = int(os.environ.get("WFBUS_WORKLOAD_ROUNDS", "2"))
SECRETS_IN_PAYLOADS = ["guest", "Sasl-Secret-41", "AKIAWFBUSPAYLOAD0042", "amqp://user:guest@host/"]
UNICODE = ["größe", "✓", "🚚", "日本語", "\u2028", "é" * 40]


def _events(rng: random.Random, groups: int, per_group: range, round_no: int) -> list[dict]:
    sizes = {f"g{round_no}-{g}": rng.choice(per_group) for g in range(groups)}
    queue = [urn for urn, size in sizes.items() for _ in range(size)]
    rng.shuffle(queue)  # the groups interleave, each in its own order
    seen: Counter = Counter()
    events = []
    for urn in queue:
        events.append(
            {
                "topic": rng.choice(["order.submit", "order.ship", "billing.charge"]),
                "urn": urn,
                "payload": {
                    "seq": seen[urn],
                    "round": round_no,
                    "note": rng.choice(SECRETS_IN_PAYLOADS),
                    "text": rng.choice(UNICODE),
                },
                "attempt": rng.randint(0, 3),
            }
        )
        seen[urn] += 1
    return events


def _foreign(
    rng: random.Random, kind: str, count: int, round_no: int
) -> list[tuple[bytes, str, dict]]:
    out = []
    for n in range(count):
        body = f"not an event #{round_no}/{n} {rng.choice(UNICODE)} guest".encode()
        if kind in ("kafka", "rabbitmq", "local") and n % 2:
            body += b" \x00\xff\xfe binary"
        if kind == "local":
            body = body.decode(
                "utf-8", "replace"
            ).encode()  # the local DLQ is fed through wfbus: text
        headers: dict = {
            "topic": "order.foreign",
            "count": n,
            "flag": "true",
            "blob": bytes([0, 255, n % 256]),
        }
        if kind == "rabbitmq":
            headers.update(flag=True, nested={"a": 1, "b": [1, "x"]}, listed=[1, 2, 3])
        if kind == "sqs":
            headers.pop("flag")
        out.append((body, f"foreign-{n % 3}", headers))
    return out


def _replay_until_drained(tmp_path, deadline_seconds: float = 120) -> None:
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "wfbus",
                "-o",
                "json",
                "replay",
                "-b",
                "target",
                "--batch",
                "50",
            ],
            cwd=tmp_path,
            capture_output=True,
            timeout=300,
            env=_env(tmp_path),
        )
        report = json.loads(result.stdout)
        dead = report["dead_letter_after"] or {}
        if (
            result.returncode == 0
            and not (dead.get("ready") or 0)
            and not (dead.get("in_flight") or 0)
        ):
            return
        assert result.returncode in (0, 1), (
            result.stderr.decode()
        )  # 1: held by the killed run, back soon
        assert time.monotonic() < deadline, f"dead-letter queue not drained: {report}"
        time.sleep(1)


def _env(tmp_path) -> dict:
    return {**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")}


def test_a_generated_workload_survives_replay_and_interruptions(wfbus, target, tmp_path):
    seed = int(os.environ.get("WFBUS_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    log = [
        f"seed {seed} (WFBUS_TEST_SEED={seed} repeats this run)"
    ]  # printed at the end: the wfbus fixture
    # reads the captured output before each call
    settings = target_settings(tmp_path)
    kind = settings["type"]
    ordering = (
        broker_class(kind).capabilities_for(broker_class(kind).settings_model(**settings)).ordering
    )
    already_there = 0
    earlier: set[bytes] = set()  # bodies of earlier rounds (each round's bodies are unique to it)
    for round_no in range(ROUNDS):
        batch = rng.randint(10, 40)
        events = _events(rng, rng.randint(7, 9), range(batch + 1, batch * 2 + 5), round_no)
        foreign = _foreign(rng, kind, rng.randint(3, 12), round_no)
        source = tmp_path / f"dead-{round_no}.jsonl"
        source.write_text(
            "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
        )
        assert wfbus("emit", "-b", "target", "--dead-letter", str(source)).code == 0
        inject_foreign_dead_letters(tmp_path, foreign)
        expected = [
            json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode() for e in events
        ]
        expected += [body for body, _, _ in foreign]

        stop = rng.choice([None, signal.SIGTERM, signal.SIGKILL])
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wfbus",
                "replay",
                "-b",
                "target",
                "--batch",
                str(batch),
                "--rate",
                "300",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_env(tmp_path),
        )
        if stop is not None:
            at = already_there + int(len(expected) * rng.uniform(0.1, 0.9))
            while proc.poll() is None and count_main(tmp_path) < at:
                time.sleep(0.02)
            proc.send_signal(stop)
        _, err = proc.communicate(timeout=300)
        if stop is None:
            assert proc.returncode == 0, err.decode()
        _replay_until_drained(tmp_path)

        arrived = drain_main(tmp_path, already_there + len(expected))
        wanted = set(expected)
        mine = [b for b in arrived if b in wanted]
        strangers = [
            b for b in arrived if b not in wanted and b not in earlier
        ]  # local, Kafka keep earlier rounds'
        earlier |= wanted
        assert not strangers, (
            f"seed {seed}: bodies that were never dead-lettered arrived (altered?): {strangers[:3]}"
        )
        counts = Counter(mine)
        lost = [b for b in expected if counts[b] == 0]
        duplicates = sum(n - 1 for n in counts.values())
        # a stop can repeat the batch that was on the wire, except where publish and removal are one
        # transaction (local) or the destination drops the resend (SQS FIFO):
        # Kit.kill_duplicates_bound
        # (--rate: a paced replay keeps one batch in flight whatever
        # the destination's pipeline_window)
        bound = 0 if stop is None or target.kill_duplicates_bound == 0 else batch
        assert not lost, (
            f"seed {seed} round {round_no} ({stop and stop.name}): lost {len(lost)}: {lost[:3]}"
        )
        assert duplicates <= bound, (
            f"seed {seed} round {round_no}: {duplicates} duplicates (bound {bound})"
        )
        if stop is None and ordering != "none":
            received: dict[str, list[int]] = defaultdict(list)
            for body in mine:
                try:
                    event = json.loads(body)
                except ValueError:
                    continue
                if isinstance(event, dict) and "seq" in (event.get("payload") or {}):
                    received[event["urn"]].append(event["payload"]["seq"])
            for urn, seqs in received.items():
                assert seqs == sorted(seqs), f"seed {seed}: {urn} arrived out of order: {seqs[:20]}"
        if kind in ("local", "kafka"):
            already_there += len(mine)
        log.append(
            f"{target.kind}: round {round_no}: {len(events)} events in {len({e['urn'] for e in events})} groups "
            f"+ {len(foreign)} foreign, batch {batch}, stop {stop and stop.name}: lost 0, duplicates {duplicates}"
        )
    print("\n".join(log))

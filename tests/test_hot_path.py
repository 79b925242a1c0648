"""The per-event fast paths (issue 14, item 4) give exactly what the reference paths give, and
`peek --all` streams (item 5).  Inputs are generated; the seed is printed (WFBUS_TEST_SEED replays it)."""

from __future__ import annotations

import json
import os
import random
import re
import struct
import tracemalloc

import pytest

from wfbus import strictjson
from wfbus.event import EventInvalid, _parse_event_slowly, parse_event
from wfbus.sources import read_file


def _seed() -> int:
    seed = int(os.environ.get("WFBUS_TEST_SEED") or random.randrange(1 << 30))
    print(f"seed {seed}")
    return seed


def _float(rng: random.Random) -> float:
    while True:
        kind = rng.random()
        if kind < 0.3:
            value = 10 ** rng.uniform(-30, 30) * rng.choice([1, -1])
        elif kind < 0.6:
            value = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        else:
            value = round(rng.uniform(-1e6, 1e6), rng.randrange(0, 8))
        if value == value and abs(value) != float("inf"):
            return value


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice(
            [
                0,
                -1,
                2**53 - 1,
                -(2**53 - 1),
                2**53,
                2**63 - 1,
                2**64,
                -(2**70),
                rng.randrange(-999, 999),
            ]
        )
    if kind == 2:
        return _float(rng)
    if kind in (3, 4, 5):
        return "".join(
            rng.choice(
                ["a", "é", "日", "\\", '"', "\n", "\t", "\x00", "\u2028", "😀", "1e5", "0.0000"]
            )
            for _ in range(rng.randrange(0, 6))
        )
    if kind in (6, 7):
        return {
            rng.choice(["a", "b", "é", "Z", "😀", "topic", ""]): _value(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))
        }
    return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]


def _texts(rng: random.Random, value) -> list[bytes]:
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    texts = [
        compact,
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, indent=1).encode(),
    ]
    if compact.startswith(b"{") and len(compact) > 2:
        texts.append(b'{"a":1,' + compact[1:])  # maybe a duplicate key
        texts.append(compact[:-1] + b',"a":NaN}')
    return texts


def _outcome(action):
    try:
        return "ok", action()
    except (strictjson.StrictJSONError, EventInvalid) as exc:
        return "error", type(exc).__name__


def test_the_fast_parse_reads_every_generated_text_as_the_reference_decoder_does():
    rng = random.Random(_seed())
    for _ in range(4000):
        value = _value(rng)
        for text in _texts(rng, value):
            fast = _outcome(lambda text=text: strictjson.loads(text))
            reference = _outcome(lambda text=text: strictjson._reference_loads(text))
            assert fast[0] == reference[0], text
            if fast[0] == "ok":
                assert json.dumps(fast[1], sort_keys=True) == json.dumps(
                    reference[1], sort_keys=True
                ), text
                assert [type(x) for x in _walk(fast[1])] == [
                    type(x) for x in _walk(reference[1])
                ], text


def _walk(value):
    yield value
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _walk(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_the_canonical_bytes_equal_the_stdlib_canonical_text_for_generated_values():
    rng = random.Random(_seed())
    for _ in range(20000):
        value = [_value(rng), _float(rng), {"k": _float(rng), "é": _value(rng)}]
        try:
            expected = strictjson.dumps_canonical(value).encode()
        except ValueError:
            continue
        assert strictjson.dumps_canonical_bytes(value) == expected, value


def test_the_short_path_of_parse_event_agrees_with_every_rule():
    rng = random.Random(_seed())
    keys = ["topic", "event", "urn", "payload", "attempt", "topc"]
    values = ["t", "", 0, -1, 2**53 - 1, 2**53, True, None, 1.0, [2**60], {"a": -(2**53)}, "u", [1]]
    for _ in range(20000):
        doc = {key: rng.choice(values) for key in rng.sample(keys, rng.randrange(0, 5))}
        text = json.dumps(doc).encode()
        checked = re.search(rb"[0-9]{16}", text) is None
        for ints_checked in {False, checked}:
            fast = _outcome(lambda doc=doc, ic=ints_checked: parse_event(doc, ints_checked=ic))
            slow = _outcome(lambda doc=doc: _parse_event_slowly(doc))
            assert fast == slow, doc


def test_a_line_holding_a_long_integer_is_still_checked(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(
        b'{"topic":"t","urn":"u","payload":{"n":9007199254740993}}\n'
        b'{"topic":"t","urn":"u","payload":{"n":9007199254740991}}\n'
    )
    first, second = read_file(path, "e.jsonl")
    assert first.event is None and "payload.n" in first.problems[0]
    assert second.event is not None


# -- streaming peek ------------------------------------------------------------------------------
def _seed_local(db_path, count: int) -> None:
    """Fill the local broker's main queue directly (fast), with bodies emit would have sent."""
    from wfbus.brokers.local import connect

    db = connect(db_path)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO messages (queue, body, headers, routing_key, message_id, enqueued_at) VALUES (?,?,?,?,?,?)",
        [
            (
                "local",
                json.dumps(
                    {
                        "topic": "t",
                        "urn": f"u-{i}",
                        "payload": {"i": i, "pad": "x" * 150},
                        "attempt": 0,
                    },
                    separators=(",", ":"),
                ).encode(),
                "{}",
                "t",
                f"m{i}",
                0.0,
            )
            for i in range(count)
        ],
    )
    db.execute("COMMIT")
    db.close()


def _peak_peek(wfbus, *args) -> tuple[int, str]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = wfbus("peek", "--all", *args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.code == 0, result.err
    return peak, result.out


@pytest.mark.parametrize("mode", [["-o", "jsonl"], ["-o", "json"], []])
def test_peek_all_holds_a_page_not_the_queue(wfbus, tmp_path, mode):
    """Peak memory of peek --all (the output itself excluded) barely grows from 3,000 to 30,000 messages."""
    peaks = {}
    for count in (3000, 30000):
        db = tmp_path / f"q{count}.db"
        _seed_local(db, count)
        (tmp_path / "wfbus.yaml").write_text(
            f"brokers:\n  local:\n    type: local\n    path: {db}\n"
        )
        peak, out = _peak_peek(wfbus, *mode)
        peaks[count] = peak - len(out) * 2  # capsys keeps the output text in this process
        if mode == ["-o", "jsonl"]:
            assert [json.loads(line)["urn"] for line in out.splitlines()] == [
                f"u-{i}" for i in range(count)
            ]
        elif mode:
            assert [d["urn"] for d in json.loads(out)] == [f"u-{i}" for i in range(count)]
        else:
            rows = [line.split()[0] for line in out.splitlines() if line[:1].isdigit()]
            assert rows == [str(i) for i in range(1, count + 1)]
            assert out.rstrip().endswith(f"{count} message(s) shown, left in place")
    assert peaks[30000] <= 1.5 * peaks[3000] + 2_000_000, peaks


def test_a_small_peek_is_one_table_as_before(wfbus, tmp_path):
    _seed_local(tmp_path / "q.db", 3)
    (tmp_path / "wfbus.yaml").write_text(
        f"brokers:\n  local:\n    type: local\n    path: {tmp_path / 'q.db'}\n"
    )
    out = wfbus("peek", "--all").out.splitlines()
    assert out[0].endswith(": 3 message(s) shown, left in place")
    assert (
        out[1].split() == ["#", "event", "id", "topic", "urn", "attempt", "body"] and len(out) == 5
    )

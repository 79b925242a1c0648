"""Fuzzed input: never a traceback, always the right exit code and a place; the fast JSON path reads
exactly what the reference (stdlib, strict) decoder reads."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfbus import strictjson
from wfbus.event import EventInvalid, parse_event

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _reference(text: bytes):
    try:
        return ("ok", strictjson._reference_loads(text))
    except strictjson.StrictJSONError as exc:
        return ("error", exc.message)


def _fast(text: bytes):
    try:
        return ("ok", strictjson.loads(text))
    except strictjson.StrictJSONError as exc:
        return ("error", exc.message)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    json_values,
    st.sampled_from([None, 2]),
    st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]),
)
def test_the_fast_path_reads_what_the_reference_reads(value, indent, separators):
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=False).encode()
    assert _fast(text) == _reference(text)


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "topic", "urn", 'k\\"q']), st.integers(-(10**9), 10**9)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_duplicate_keys_are_found_however_the_object_is_written(pairs):
    text = ("{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}").encode()
    keys = [json.loads(f'"{k}"') for k, _ in pairs]
    outcome = _fast(text)
    if len(set(keys)) < len(keys):
        assert outcome[0] == "error" and "duplicate key" in outcome[1]
    else:
        assert outcome == _reference(text)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_a_strict_json_error(data):
    fast = _fast(data)
    reference = _reference(data)
    assert fast[0] == reference[0]
    if fast[0] == "ok":
        assert fast[1] == reference[1]


@settings(max_examples=300)
@given(json_values)
def test_any_json_value_is_an_event_or_a_list_of_named_problems(value):
    try:
        parse_event(value)
    except EventInvalid as exc:
        named = (
            "topic: ",
            "event: ",
            "urn: ",
            "attempt: ",
            "payload.",
            "payload[",
            "payload: ",
            "must be a JSON object",
        )
        assert exc.problems and all(
            p.startswith(named) or ": unknown key (" in p for p in exc.problems
        ), exc.problems


BIG_PAYLOAD = b'{"topic":"t","urn":"u","payload":"' + b"x" * 10_000_000 + b'"}'

# Each nasty input and its one right answer: exit 3 with the reason named at its place (":1: ..." is
# appended to the file name), or exit 0 and the event sent as given.
NASTY: list[tuple[bytes, int, str]] = [
    (b"", 3, "no events"),
    (b"\n\n", 3, "no events"),
    (b"{", 3, ":1: invalid JSON: Expecting property name"),
    (b'{"topic":"t","urn":"u"', 3, ":1: invalid JSON: Expecting ',' delimiter"),
    (b"\xff\xfe{}", 3, ":1: not valid UTF-8 (byte 1)"),
    (b"\xef\xbb\xbf{}", 3, ":1: starts with a UTF-8 byte order mark"),
    (b'{"topic":"t","urn":NaN}', 3, ":1: NaN is not valid JSON"),
    (b'{"topic":"t","urn":Infinity}', 3, ":1: Infinity is not valid JSON"),
    (b'{"topic":"t","urn":1e999}', 3, ":1: invalid JSON: a number is too large for a double"),
    (
        b'{"topic":"t","urn":' + b"9" * 5000 + b"}",
        3,
        ":1: invalid JSON: a number has too many digits",
    ),
    (
        b'{"topic":"t","urn":' + b"9" * 4000 + b"}",
        3,
        ":1: urn: 99999999999999999999...999999 (4000 digits) is outside",
    ),
    (b"[" * 100000 + b"]" * 100000, 3, ":1: invalid JSON: nested too deeply"),
    (b'{"topic":"t","urn":"u","urn":"v"}', 3, ":1: duplicate key 'urn'"),
    (b'{"topic":"t","urn":true}', 3, ":1: urn: must be a non-empty string or an integer, got true"),
    (b'{"topic":"t","urn":1.0}', 3, ":1: urn: must be a non-empty string or an integer, got 1.0"),
    (b'{"topic":"t","urn":""}', 3, ':1: urn: must be a non-empty string or an integer, got ""'),
    (b'{"topic":"t","urn":"u","attempt":-1}', 3, ":1: attempt: must be an integer ≥ 0, got -1"),
    (b'{"topic":"t","urn":"\\ud800"}', 3, ":1: invalid JSON: a \\u escape is a lone surrogate"),
    (b'{"topic":"t","urn":9007199254740993}', 3, ":1: urn: 9007199254740993 is outside ±(2^53−1)"),
    (
        b'{"topic":"t","urn":"u","payload":{"id":[18446744073709551617]}}',
        3,
        ":1: payload.id.0: 18446744073709551617",
    ),
    (b'{"topic":"t","urn":"u","payload":{"n":1e300}}', 0, ""),  # a float JavaScript reads alike
    (b'{"topic":"t","urn":"\\u00fc\\ud83d\\ude00"}', 0, ""),  # a valid surrogate pair is text
    (BIG_PAYLOAD, 0, ""),
]


def _ready(wfbus) -> dict[str, int]:
    return {q["role"]: q["ready"] for q in wfbus("depth", "-o", "json").json()["queues"]}


def test_every_nasty_input_gets_its_one_right_answer_and_only_valid_ones_are_sent(wfbus, tmp_path):
    sent = 0
    for index, (data, code, reason) in enumerate(NASTY):
        name = f"nasty-{index}.jsonl"
        (tmp_path / name).write_bytes(data)
        for command in ("validate", "emit"):
            result = wfbus(command, name)
            assert result.code == code, (index, command, result.code, result.err[:300])
            assert "Traceback" not in result.err and "internal error" not in result.err, (
                index,
                result.err[:300],
            )
            if code == 3:  # the reason, at its place (file:line where there is a line)
                place = f"{name}{reason}" if reason.startswith(":") else name
                assert place in result.err and reason in result.err, (
                    index,
                    command,
                    result.err[:300],
                )
        sent += code == 0
        assert _ready(wfbus) == {"main": sent, "dead-letter": 0}, (
            index
        )  # refused: nothing published
    # what was sent is what was given, byte for byte (the 10 MB payload included)
    bodies = [
        json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode()
        for e in json.loads(wfbus("peek", "--all", "--force", "-o", "json").out)
    ]
    given = [
        json.dumps(
            {**json.loads(data), "attempt": 0}, separators=(",", ":"), ensure_ascii=False
        ).encode()
        for data, code, _ in NASTY
        if code == 0
    ]
    assert bodies == given

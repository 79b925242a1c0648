"""Fuzzed input: never a traceback, always the right exit code and a place; the fast JSON path reads
exactly what the reference (stdlib, strict) decoder reads."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfbus import strictjson
from wfbus.event import EventInvalid, parse_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
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
@given(json_values, st.sampled_from([None, 2]), st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]))
def test_the_fast_path_reads_what_the_reference_reads(value, indent, separators):
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=False).encode()
    assert _fast(text) == _reference(text)


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "topic", "urn", "k\\\"q"]), st.integers(-10**9, 10**9)), min_size=1, max_size=6))
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
        assert exc.problems and all(isinstance(p, str) and ": " in p or p.startswith("must be") for p in exc.problems)


NASTY = [
    b"", b"\n\n", b"{", b'{"topic":"t","urn":"u"', b"\xff\xfe{}", b"\xef\xbb\xbf{}", b'{"topic":"t","urn":NaN}',
    b'{"topic":"t","urn":Infinity}', b'{"topic":"t","urn":1e999}', b'{"topic":"t","urn":' + b"9" * 5000 + b"}",
    b"[" * 100000 + b"]" * 100000, b'{"topic":"t","urn":"u","urn":"v"}', b'{"topic":"t","urn":true}',
    b'{"topic":"t","urn":1.0}', b'{"topic":"t","urn":""}', b'{"topic":"t","urn":"u","attempt":-1}',
    b'{"topic":"t","urn":"\\ud800"}', b'{"topic":"t","urn":"u","payload":"' + b"x" * 10_000_000 + b'"}',
]


def test_a_corpus_of_nasty_inputs_is_refused_or_accepted_without_a_traceback(wfbus, tmp_path):
    for index, data in enumerate(NASTY):
        (tmp_path / f"nasty-{index}.jsonl").write_bytes(data)
        result = wfbus("emit", f"nasty-{index}.jsonl")
        assert result.code in (0, 3), (index, result.code, result.err[:300])
        assert "Traceback" not in result.err and "internal error" not in result.err, (index, result.err[:300])
        if result.code == 3:
            assert f"nasty-{index}.jsonl" in result.err

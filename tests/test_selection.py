"""`--match PATH=VALUE` selects exactly what the operator wrote (issue 12.15).

The rule: VALUE is read as JSON when it parses as JSON, and then equals a value of the same JSON
type (numbers by value, so 1 == 1.0; a boolean never equals a number; a string never equals a
number). VALUE that does not parse as JSON is a string and equals string values only.
These are pure function tests (selection is wfbus's own logic); one CLI test replays on
the local broker.
"""

from __future__ import annotations

import json

import pytest
from conftest import write_jsonl

from wfbus.brokers.base import ReceivedMessage
from wfbus.selection import Selection, parse_message


def _parsed(
    payload: object = None, *, urn: object = "u-1", body: bytes | None = None, headers=None
):
    if body is None:
        body = json.dumps(
            {"topic": "order.submit", "urn": urn, "payload": payload, "attempt": 0}
        ).encode()
    return parse_message(ReceivedMessage(body=body, headers=headers or {}, handle=None))


def _selects(expression: str, payload: object = None, **kwargs) -> bool:
    path, value = expression.split("=", 1)
    return Selection(matches=((path, value),)).accepts(_parsed(payload, **kwargs))


# payload.flag=1 used to select true, 1 and "1": only the number 1 (and 1.0, the same JSON number)
@pytest.mark.parametrize(
    "flag,selected",
    [
        (1, True),
        (1.0, True),
        (True, False),
        ("1", False),
        (False, False),
        (0, False),
        (None, False),
        ([1], False),
        (2, False),
    ],
)
def test_a_number_selects_numbers_of_that_value_only(flag, selected):
    assert _selects("payload.flag=1", {"flag": flag}) is selected


@pytest.mark.parametrize(
    "flag,selected", [(True, True), (1, False), ("true", False), (1.0, False), (None, False)]
)
def test_true_selects_the_boolean_only(flag, selected):
    assert _selects("payload.flag=true", {"flag": flag}) is selected


@pytest.mark.parametrize(
    "flag,selected", [(False, True), (0, False), ("false", False), (None, False)]
)
def test_false_selects_the_boolean_only(flag, selected):
    assert _selects("payload.flag=false", {"flag": flag}) is selected


@pytest.mark.parametrize(
    "value,selected", [(None, True), ("null", False), (0, False), (False, False)]
)
def test_null_selects_null_only(value, selected):
    assert _selects("payload.v=null", {"v": value}) is selected


def test_null_does_not_select_an_absent_key():
    assert not _selects("payload.v=null", {"w": 1})


# payload.currency="EUR" used to select nothing
@pytest.mark.parametrize(
    "currency,selected", [("EUR", True), ('"EUR"', False), ("eur", False), (None, False)]
)
def test_a_quoted_value_is_a_json_string(currency, selected):
    assert _selects('payload.currency="EUR"', {"currency": currency}) is selected


@pytest.mark.parametrize(
    "region,selected", [("eu", True), ("EU", False), ('"eu"', False), (["eu"], False)]
)
def test_a_value_that_is_not_json_is_a_string_and_matches_strings_only(region, selected):
    assert _selects("payload.region=eu", {"region": region}) is selected


def test_a_number_written_as_a_string_needs_quotes():
    assert _selects('payload.code="1"', {"code": "1"})
    assert not _selects('payload.code="1"', {"code": 1})
    assert not _selects("payload.code=1", {"code": "1"})


@pytest.mark.parametrize(
    "text,value,selected",
    [
        ("1e400", "1e400", True),  # not JSON for wfbus (it would be Infinity): a string
        ("1e400", 1e300, False),
        ("", "", True),  # an empty right side is the empty string
        ("", None, False),
        (" eu", " eu", True),  # not JSON: compared as written, spaces included
        (" 1", 1, True),  # JSON allows surrounding whitespace
        ("01", "01", True),  # not JSON (a leading zero): a string
        ("01", 1, False),
        ("NaN", "NaN", True),  # strict JSON refuses NaN: a string
        ("tru", "tru", True),
    ],
)
def test_corners_of_what_parses_as_json(text, value, selected):
    assert _selects(f"payload.v={text}", {"v": value}) is selected


@pytest.mark.parametrize(
    "text,value,selected",
    [
        ('{"a":1,"b":[true,null]}', {"b": [True, None], "a": 1.0}, True),
        ('{"a":1}', {"a": True}, False),  # deep: a boolean never equals a number
        ('{"a":1}', {"a": 1, "b": 2}, False),
        ("[1,2]", [1, 2], True),
        ("[1,2]", [2, 1], False),
        ("[1]", [True], False),
        ("[]", {}, False),
        ("{}", {}, True),
        ('"x"', "x", True),
    ],
)
def test_arrays_and_objects_compare_as_json_deeply(text, value, selected):
    assert _selects(f"payload.v={text}", {"v": value}) is selected


def test_numbers_compare_exactly_by_value():
    assert _selects("payload.n=0.5", {"n": 0.5})
    assert _selects("payload.n=5e-1", {"n": 0.5})
    assert not _selects("payload.n=9007199254740991", {"n": 9007199254740990})
    assert _selects("payload.n=-0", {"n": 0})


def test_urn_keeps_its_json_type_under_match():
    assert _selects("urn=123", urn=123)
    assert not _selects("urn=123", urn="123")
    assert _selects('urn="123"', urn="123")
    assert _selects("urn=order-1", urn="order-1")


def test_paths_into_arrays_and_missing_paths():
    payload = {"items": [{"sku": "a"}, {"sku": "b"}]}
    assert _selects("payload.items.1.sku=b", payload)
    assert not _selects("payload.items.2.sku=b", payload)
    assert not _selects("payload.items.x=b", payload)
    assert not _selects("payload.nothing=b", payload)


def test_a_foreign_body_is_never_selected_by_match():
    foreign = _parsed(body=b"not json", headers={"topic": "order.submit", "urn": "u-1"})
    assert not Selection(matches=(("urn", "u-1"),)).accepts(foreign)
    assert Selection(topics=("order.*",)).accepts(foreign)


def test_all_matches_must_hold():
    payload = {"a": 1, "b": "x"}
    assert Selection(matches=(("payload.a", "1"), ("payload.b", "x"))).accepts(_parsed(payload))
    assert not Selection(matches=(("payload.a", "1"), ("payload.b", "y"))).accepts(_parsed(payload))


def test_replay_match_on_the_local_broker_takes_exactly_the_written_values(wfbus, tmp_path):
    """The CLI end to end: what is replayed is what the rule selects; the rest stays in the DLQ."""
    values = [1, 1.0, True, "1", 0, None, "EUR", '"EUR"', False]
    events = [
        {"topic": "order.submit", "urn": f"m{i}", "payload": {"flag": v}}
        for i, v in enumerate(values)
    ]
    write_jsonl(tmp_path / "dlq.jsonl", events)
    assert wfbus("emit", "--dead-letter", "dlq.jsonl").code == 0

    def replay(match: str) -> set:
        result = wfbus("-o", "json", "replay", "--yes", "--match", match)
        assert result.code == 0, result.err
        moved = json.loads(wfbus("peek", "--all", "--force", "-o", "json").out)
        return {e["urn"] for e in moved}

    assert replay("payload.flag=1") == {"m0", "m1"}  # 1 and 1.0; not true, not "1"
    assert replay('payload.flag="1"') == {"m0", "m1", "m3"}
    assert replay('payload.flag="EUR"') == {"m0", "m1", "m3", "m6"}  # not the string '"EUR"'
    assert replay("payload.flag=true") == {"m0", "m1", "m3", "m6", "m2"}
    left = json.loads(wfbus("peek", "--dead-letter", "--all", "--force", "-o", "json").out)
    assert sorted(e["urn"] for e in left) == ["m4", "m5", "m7", "m8"]

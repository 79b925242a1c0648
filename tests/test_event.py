"""The event contract of design.md: what is accepted, what is refused, and how it goes on the wire."""

import json

import jsonschema
import pytest

from wfbus.event import EVENT_JSON_SCHEMA, EventInvalid, WorkflowEvent, parse_event


def test_a_complete_event_is_accepted_and_keeps_its_values():
    event = parse_event(
        {"topic": "order.submit", "urn": "order-1", "payload": {"total": 150.0}, "attempt": 2}
    )
    assert event == WorkflowEvent("order.submit", "order-1", 2, {"total": 150.0})


def test_attempt_defaults_to_zero_and_is_always_written():
    event = parse_event({"topic": "t", "urn": "u"})
    assert event.attempt == 0
    assert json.loads(event.encode()) == {"topic": "t", "urn": "u", "attempt": 0}


def test_an_absent_payload_stays_absent_and_null_stays_null():
    assert "payload" not in json.loads(parse_event({"topic": "t", "urn": "u"}).encode())
    assert (
        json.loads(parse_event({"topic": "t", "urn": "u", "payload": None}).encode())["payload"]
        is None
    )


def test_urn_keeps_its_json_type():
    assert parse_event({"topic": "t", "urn": 123}).urn == 123
    assert parse_event({"topic": "t", "urn": "123"}).urn == "123"
    assert (
        parse_event({"topic": "t", "urn": 123}).event_id
        != parse_event({"topic": "t", "urn": "123"}).event_id
    )


@pytest.mark.parametrize("urn", [True, 1.5, "", None, [], {}])
def test_urn_must_be_a_non_empty_string_or_an_integer(urn):
    with pytest.raises(EventInvalid, match="urn: must be a non-empty string or an integer"):
        parse_event({"topic": "t", "urn": urn})


@pytest.mark.parametrize("attempt", [-1, 1.0, "1", True, None])
def test_attempt_must_be_an_integer_of_zero_or_more(attempt):
    with pytest.raises(EventInvalid, match="attempt: must be an integer ≥ 0"):
        parse_event({"topic": "t", "urn": "u", "attempt": attempt})


def test_unknown_keys_are_rejected_by_name_with_a_suggestion():
    with pytest.raises(EventInvalid) as caught:
        parse_event({"topic": "t", "urn": "u", "atempt": 1})
    assert caught.value.problems == ["atempt: unknown key (did you mean attempt?)"]


def test_event_is_accepted_for_topic_and_both_must_agree():
    assert parse_event({"event": "order.submit", "urn": "u"}).topic == "order.submit"
    assert parse_event({"event": "a", "topic": "a", "urn": "u"}).topic == "a"
    with pytest.raises(EventInvalid, match="event: differs from topic"):
        parse_event({"event": "a", "topic": "b", "urn": "u"})


def test_every_problem_of_an_event_is_listed():
    with pytest.raises(EventInvalid) as caught:
        parse_event({"urn": True, "attempt": -2, "extra": 1})
    assert len(caught.value.problems) == 4


def test_wire_formats_topic_event_and_both_in_contract_key_order():
    event = WorkflowEvent("order.submit", "o-1", 1, {"a": 1})
    assert (
        event.encode("topic")
        == b'{"topic":"order.submit","urn":"o-1","payload":{"a":1},"attempt":1}'
    )
    assert (
        event.encode("event")
        == b'{"event":"order.submit","urn":"o-1","payload":{"a":1},"attempt":1}'
    )
    assert event.encode("both") == (
        b'{"topic":"order.submit","event":"order.submit","urn":"o-1","payload":{"a":1},"attempt":1}'
    )


def test_body_is_compact_utf8_not_escaped():
    assert WorkflowEvent("t", "ü", 0).encode() == '{"topic":"t","urn":"ü","attempt":0}'.encode()


def test_event_id_is_deterministic_and_sensitive_to_every_field():
    base = WorkflowEvent("t", "u", 0, {"a": 1, "b": 2})
    assert (
        base.event_id == WorkflowEvent("t", "u", 0, {"b": 2, "a": 1}).event_id
    )  # key order is not identity
    others = [
        WorkflowEvent("t2", "u", 0, {"a": 1, "b": 2}),
        WorkflowEvent("t", "u2", 0, {"a": 1, "b": 2}),
        WorkflowEvent("t", "u", 1, {"a": 1, "b": 2}),
        WorkflowEvent("t", "u", 0, {"a": 1}),
        WorkflowEvent("t", "u", 0),
        WorkflowEvent("t", "u", 0, None),
    ]
    assert len({base.event_id, *(e.event_id for e in others)}) == 1 + len(others)


SAMPLES = [
    ({"topic": "t", "urn": "u"}, True),
    ({"event": "t", "urn": 5, "payload": [1], "attempt": 3}, True),
    ({"topic": "t", "urn": "u", "x": 1}, False),
    ({"topic": "", "urn": "u"}, False),
    ({"topic": "t", "urn": ""}, False),
    ({"topic": "t", "urn": "u", "attempt": -1}, False),
    ({"urn": "u"}, False),
    ({"topic": "t"}, False),
]


@pytest.mark.parametrize("doc,valid", SAMPLES)
def test_json_schema_agrees_with_the_validator(doc, valid):
    assert _schema_accepts(doc) == valid
    try:
        parse_event(doc)
        accepted = True
    except EventInvalid:
        accepted = False
    assert accepted == valid


def _schema_accepts(doc) -> bool:
    return jsonschema.Draft202012Validator(EVENT_JSON_SCHEMA).is_valid(doc)


# --- integers a JavaScript consumer reads as another number (issue 12.13) -------------------------
# JSON.parse reads every number as an IEEE double: 9007199254740993 (2**53 + 1) becomes
# 9007199254740992, another entity. Such integers are input errors wherever they appear, named by
# place, and nothing is sent.

SAFE = 2**53 - 1


def _depth_ready(wfbus) -> list[int]:
    return [q["ready"] for q in wfbus("depth", "-o", "json").json()["queues"]]


def _write(tmp_path, name: str, lines: list[str]):
    (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    return name


def test_integers_at_the_edge_of_the_safe_range_are_sent_as_written(wfbus, tmp_path):
    lines = [
        f'{{"topic":"t","urn":{value},"payload":{{"n":{value}}},"attempt":{SAFE}}}'
        for value in (SAFE, -SAFE)
    ]
    name = _write(tmp_path, "edge.jsonl", lines)
    assert wfbus("validate", name).code == 0
    assert wfbus("emit", name).code == 0
    bodies = [
        json.dumps(e, separators=(",", ":"))
        for e in json.loads(wfbus("peek", "-n", "5", "-o", "json").out)
    ]
    assert bodies == lines


@pytest.mark.parametrize("value", [2**53, 2**53 + 1, -(2**53), -(2**53) - 1, 2**64 + 1, 10**30])
def test_an_unsafe_integer_urn_is_an_input_error_with_a_hint_to_send_a_string(
    wfbus, tmp_path, value
):
    name = _write(
        tmp_path, "u.jsonl", ['{"topic":"t","urn":"ok"}', f'{{"topic":"t","urn":{value}}}']
    )
    for command in ("validate", "emit"):
        result = wfbus(command, name)
        assert result.code == 3, (command, result.err)
        assert f"u.jsonl:2: urn: {value} is outside" in result.err, result.err
        assert f'send the urn as a string: "{value}"' in result.err, result.err
    assert _depth_ready(wfbus) == [0, 0]  # all or nothing: the valid first line was not sent either


@pytest.mark.parametrize("value", [2**53, 2**63, 10**30])
def test_an_unsafe_integer_attempt_is_an_input_error(wfbus, tmp_path, value):
    name = _write(tmp_path, "a.jsonl", [f'{{"topic":"t","urn":"u","attempt":{value}}}'])
    for command in ("validate", "emit"):
        result = wfbus(command, name)
        assert result.code == 3, (command, result.err)
        assert f"a.jsonl:1: attempt: {value} is outside" in result.err, result.err
    assert _depth_ready(wfbus) == [0, 0]


def test_unsafe_integers_inside_the_payload_are_named_by_their_path(wfbus, tmp_path):
    big = 2**53 + 1
    doc = (
        f'{{"topic":"t","urn":"u","payload":{{"a":{{"b":{big}}},"ids":[1,{-big}],"ok":1e300,'
        f'"s":"{big}","f":9007199254740993.5,"odd.key":{big}}}}}'
    )
    name = _write(tmp_path, "p.jsonl", [doc])
    for command in ("validate", "emit"):
        result = wfbus(command, name)
        assert result.code == 3, (command, result.err)
        for place in ("payload.a.b", "payload.ids.1", 'payload["odd.key"]'):
            assert f"p.jsonl:1: {place}: " in result.err, (place, result.err)
        # floats, exponents and strings are read alike by JavaScript and are not refused
        assert (
            "payload.ok" not in result.err
            and "payload.s" not in result.err
            and "payload.f" not in result.err
        )
    assert _depth_ready(wfbus) == [0, 0]


def test_an_unsafe_integer_given_inline_is_refused(wfbus):
    result = wfbus("emit", "--topic", "t", "--urn", "u", "--payload", f'{{"n":{2**60}}}')
    assert result.code == 3 and "payload.n:" in result.err, result.err
    result = wfbus("emit", "--topic", "t", "--urn", "u", "--attempt", str(2**60))
    assert result.code == 3 and "attempt:" in result.err, result.err
    assert _depth_ready(wfbus) == [0, 0]


@pytest.mark.parametrize(
    "topic",
    [
        " ",
        "\t",
        "  \n ",
        "\u00a0",
        "order\nsubmit",
        "a\x00b",
        "tab\tinside",
        "del\x7f",
        "c1\x85",
        "\x1b[31mred",
    ],
)
def test_a_topic_of_only_whitespace_or_with_control_characters_is_refused_by_validator_and_schema(
    topic,
):
    for key in ("topic", "event"):
        doc = {key: topic, "urn": "u"}
        with pytest.raises(EventInvalid) as caught:
            parse_event(doc)
        assert any(p.startswith(f"{key}:") for p in caught.value.problems), caught.value.problems
        assert not _schema_accepts(doc), doc


@pytest.mark.parametrize(
    "topic", ["order.submit", " padded ", "ordre.créée", "注文", "a b", "x" * 300]
)
def test_topics_with_visible_characters_stay_valid_for_both(topic):
    doc = {"topic": topic, "urn": "u"}
    assert parse_event(doc).topic == topic
    assert _schema_accepts(doc)


def test_a_whitespace_topic_in_a_file_is_an_input_error_and_nothing_is_sent(wfbus, tmp_path):
    path = _write(
        tmp_path,
        "e.jsonl",
        ['{"topic":"ok","urn":"a"}', '{"topic":"  ","urn":"b"}', '{"topic":"a\\u0007b","urn":"c"}'],
    )
    result = wfbus("emit", str(path))
    assert result.code == 3, result.err
    assert "e.jsonl:2: topic:" in result.err and "e.jsonl:3: topic:" in result.err
    assert _depth_ready(wfbus) == [0, 0]

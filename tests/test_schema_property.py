"""The published JSON Schema (`wfbus schema`) and the validator (`wfbus validate`) agree on events.

Generated documents are near-valid on purpose: every field takes valid values and the values just
beside them (floats that equal integers, booleans, integers at and past ±(2^53−1), empty strings,
both `topic` and `event`, unknown keys, payloads with large numbers). The schema is the document the
CLI prints, read by the `jsonschema` package as any producer would read it.

JSON Schema cannot express two of wfbus's rules, and the schema says so in its description:
- its data model does not see how a number is written: `1.0` is the integer 1 to it, while wfbus
  refuses a urn or attempt written as a float (design.md: "integer, not bool, not float");
- it cannot compare two properties, so `topic` and `event` with different values pass it.
Both make the schema accept what wfbus refuses; the reverse (payload numbers like `1e300` that equal
an integer past 2^53) makes it refuse what wfbus sends. Every disagreement is checked to be exactly
one of these, by repairing that one thing and seeing both sides then agree.
"""

from __future__ import annotations

import json
import math
import random

import jsonschema
import pytest
from conftest import run_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfbus.event import EventInvalid, parse_event

SAFE = 2**53 - 1


class Published:
    """The schema exactly as `wfbus schema` prints it (short repr: hypothesis prints its arguments)."""

    def __init__(self, schema: dict) -> None:
        jsonschema.Draft202012Validator.check_schema(schema)
        self.schema = schema
        self._validator = jsonschema.Draft202012Validator(schema)

    def is_valid(self, doc: object) -> bool:
        return self._validator.is_valid(doc)

    def __repr__(self) -> str:
        return "<published schema>"


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Published:
    """Printed by `wfbus schema` in a fresh process, as a producer would fetch it."""
    result = run_process("-o", "json", "schema", cwd=tmp_path_factory.mktemp("schema"))
    assert result.code == 0, result.err
    return Published(json.loads(result.out))


big_ints = st.sampled_from([SAFE, SAFE + 1, SAFE + 2, -SAFE, -SAFE - 1, 2**63, 2**64 + 1, 10**30])
ints = st.integers(-5, 5) | st.integers() | big_ints
floats = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-10, 10).map(float)
    | st.sampled_from([float(2**53), 1e300, -1e16, 9007199254740993.5])
)
names = st.sampled_from(["", "order.submit", "t", "ü", " "]) | st.text(max_size=6)
scalars = st.none() | st.booleans() | ints | floats | names
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "b", "", "x.y", "7"]) | st.text(max_size=4), children, max_size=4
        )
    ),
    max_leaves=12,
)


valid_names = st.sampled_from(["order.submit", "t", "ü", " "]) | st.text(min_size=1, max_size=6)
valid_urns = valid_names | st.integers(-SAFE, SAFE) | st.sampled_from([0, SAFE, -SAFE])
valid_attempts = st.integers(0, 5) | st.sampled_from([SAFE])
safe_payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)

# One step from a valid event to its neighbour: each is a rule of the wire-format table.
MUTATIONS = {
    "drop topic": lambda d, draw: d.pop("topic", None),
    "topic to event": lambda d, draw: (
        d.__setitem__("event", d.pop("topic")) if "topic" in d else None
    ),
    "event equal to topic": lambda d, draw: (
        d.__setitem__("event", d["topic"]) if "topic" in d else None
    ),
    "event differs": lambda d, draw: d.__setitem__("event", draw(valid_names | scalars)),
    "bad topic": lambda d, draw: d.__setitem__("topic", draw(scalars)),
    "drop urn": lambda d, draw: d.pop("urn", None),
    "bad urn": lambda d, draw: d.__setitem__(
        "urn", draw(ints | floats | st.booleans() | st.none() | names | st.lists(ints, max_size=1))
    ),
    "float urn": lambda d, draw: d.__setitem__("urn", float(draw(st.integers(-10, 10)))),
    "big urn": lambda d, draw: d.__setitem__("urn", draw(big_ints)),
    "bad attempt": lambda d, draw: d.__setitem__(
        "attempt", draw(ints | floats | st.booleans() | st.none() | st.sampled_from(["1", "0"]))
    ),
    "float attempt": lambda d, draw: d.__setitem__(
        "attempt", draw(st.sampled_from([0.0, 2.0, -1.0, 1e20]))
    ),
    "big attempt": lambda d, draw: d.__setitem__("attempt", draw(big_ints)),
    "payload": lambda d, draw: d.__setitem__("payload", draw(json_values)),
    "big in payload": lambda d, draw: d.__setitem__(
        "payload", {"a": {"b": draw(big_ints | floats)}, "c": [draw(ints)]}
    ),
    "unknown key": lambda d, draw: d.__setitem__(
        draw(st.sampled_from(["atempt", "extra", "", "Topic", "payload "])), draw(scalars)
    ),
    "not an object": lambda d, draw: None,
}


@st.composite
def near_events(draw) -> object:
    """A valid event, then zero to two steps to a neighbour (valid or not) — both sides of each rule."""
    doc: dict = {"topic": draw(valid_names), "urn": draw(valid_urns)}
    if draw(st.booleans()):
        doc["payload"] = draw(safe_payloads)
    if draw(st.booleans()):
        doc["attempt"] = draw(valid_attempts)
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2)):
        if name == "not an object":
            return draw(json_values)
        MUTATIONS[name](doc, draw)
    return doc


def validator_accepts(doc: object) -> bool:
    try:
        parse_event(doc)
    except EventInvalid:
        return False
    return True


def _integral_float(value: object) -> bool:
    return type(value) is float and math.isfinite(value) and value.is_integer()


def repair_schema_blind_spots(doc: object) -> tuple[object, set[str]]:
    """The document with each rule JSON Schema cannot see made moot, and which ones were touched."""
    if type(doc) is not dict:
        return doc, set()
    fixed, touched = dict(doc), set()
    for field in ("urn", "attempt"):
        if _integral_float(fixed.get(field)):
            fixed[field] = int(fixed[field])
            touched.add("float-written integer")
    if "topic" in fixed and "event" in fixed and fixed["topic"] != fixed["event"]:
        fixed["event"] = fixed["topic"]
        touched.add("topic differs from event")
    if "payload" in fixed:
        fixed["payload"], big = _without_big_integral_floats(fixed["payload"])
        if big:
            touched.add("payload float past 2^53")
    return fixed, touched


def _without_big_integral_floats(value: object) -> tuple[object, bool]:
    if _integral_float(value) and abs(value) > SAFE:
        return 0.5, True
    if type(value) is list:
        items = [_without_big_integral_floats(v) for v in value]
        return [v for v, _ in items], any(b for _, b in items)
    if type(value) is dict:
        items = {k: _without_big_integral_floats(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(b for _, b in items.values())
    return value, False


def check_agreement(published: Published, doc: object) -> None:
    by_validator = validator_accepts(doc)
    by_schema = published.is_valid(doc)
    if by_validator == by_schema:
        return
    fixed, touched = repair_schema_blind_spots(doc)
    assert touched, f"schema says {by_schema}, validator says {by_validator} for {doc!r}"
    if by_schema:  # the schema lets through what wfbus refuses: only the rules it cannot express
        assert touched & {"float-written integer", "topic differs from event"}, (touched, doc)
    else:  # the schema refuses what wfbus sends: only numbers it reads as integers past 2^53
        assert "payload float past 2^53" in touched, (touched, doc)
    assert validator_accepts(fixed) == published.is_valid(fixed) == True, (doc, fixed)  # noqa: E712


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_events())
def test_schema_and_validator_agree_on_generated_events(published, doc):
    check_agreement(published, doc)


@pytest.mark.parametrize(
    "doc,valid",
    [
        ({"topic": "t", "urn": SAFE, "attempt": SAFE, "payload": {"n": -SAFE}}, True),
        ({"topic": "t", "urn": SAFE + 1}, False),
        ({"topic": "t", "urn": -SAFE - 1}, False),
        ({"topic": "t", "urn": "u", "attempt": SAFE + 1}, False),
        ({"topic": "t", "urn": "u", "payload": {"a": [{"b": 2**64}]}}, False),
        ({"topic": "t", "urn": "u", "payload": {"f": 4503599627370495.5, "g": -1e15}}, True),
        ({"topic": "t", "event": "t", "urn": "u"}, True),
        ({"event": "t", "urn": 0}, True),
        ({"topic": "t", "urn": True}, False),
        ({"topic": "t", "urn": "u", "attempt": False}, False),
        ({"topic": "t", "urn": 1.5}, False),
        ({"topic": "t", "urn": "u", "": 1}, False),
    ],
)
def test_corners_where_both_sides_must_give_the_same_answer(published, doc, valid):
    assert validator_accepts(doc) == valid
    assert published.is_valid(doc) == valid


def test_the_schema_names_the_rules_it_cannot_express(published):
    description = published.schema["description"]
    assert "1.0" in description and "topic" in description and "event" in description
    assert "2^53" in description


def test_wfbus_validate_gives_the_validators_answer_on_the_command_line(wfbus, published, tmp_path):
    """The CLI is what users run: the same generated documents, through `wfbus validate -`."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    docs = [_random_doc(rng) for _ in range(150)]
    for doc in docs:
        result = wfbus("-o", "json", "validate", "-", stdin=json.dumps(doc).encode())
        assert result.code in (0, 3), (doc, result.code, result.err)
        assert (result.code == 0) == validator_accepts(doc), (seed, doc, result.err)
        check_agreement(published, doc)


def _random_doc(rng: random.Random) -> dict:
    """A plain-random near-event (hypothesis drives the property test; this one feeds the CLI)."""
    pick = rng.choice
    doc: dict = {}
    if rng.random() < 0.9:
        doc["topic"] = pick(["t", "", "order.submit", 5, None])
    if rng.random() < 0.3:
        doc["event"] = pick([doc.get("topic", "t"), "other", ""])
    if rng.random() < 0.95:
        doc["urn"] = pick(["u", "", 7, -7, SAFE, SAFE + 1, -SAFE - 1, 2**64, 1.0, 2.5, True, None])
    if rng.random() < 0.5:
        doc["attempt"] = pick([0, 3, -1, 2.0, True, "1", SAFE, SAFE + 1])
    if rng.random() < 0.5:
        doc["payload"] = pick(
            [None, {"a": {"b": SAFE + 1}}, {"a": [1, 2.0]}, [2**70], 1e300, "x", {"n": SAFE}]
        )
    if rng.random() < 0.1:
        doc[pick(["atempt", "extra", ""])] = 1
    return doc

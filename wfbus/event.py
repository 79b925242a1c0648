"""The workflow event: its rules, its identity and its wire form (design.md, "the event").

Validation is hand-written rather than a pydantic model because it runs once per event on
million-line files and must say exactly which rule broke, in the user's words, per field.
The JSON Schema printed by `wfbus schema` is written out below next to the rules it mirrors, and a
property test (tests/test_schema_property.py) checks that both accept and reject the same generated
documents, except where JSON Schema cannot see a rule (its description names those: a urn/attempt
written as a float, `topic` != `event`, a payload float past 2^53).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from .errors import Problem
from .strictjson import dumps_canonical_bytes, dumps_compact, dumps_compact_bytes

WireFormat = Literal["topic", "event", "both"]

ALLOWED_KEYS = ("topic", "event", "urn", "payload", "attempt")

MAX_SAFE_INTEGER = 2**53 - 1
"""JavaScript's Number.MAX_SAFE_INTEGER (and I-JSON's interoperable range, RFC 7493 2.2).

`JSON.parse` reads every number as an IEEE double, so beyond ±(2**53 - 1) two integers can read
as one: 9007199254740993 arrives as 9007199254740992, another entity. An integer written without a
fraction or exponent outside this range is refused wherever it appears (urn, attempt, payload).
A number written as a float (`1e300`, `9007199254740993.5`) is not: Python already holds it as the
same double a JavaScript consumer will read, so what wfbus sends is what the consumer sees.
"""

MAX_LISTED_PAYLOAD_PROBLEMS = 5


class _Absent:
    """Marks an event without a payload: absent must stay absent on the wire, unlike null."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()


class EventInvalid(ValueError):
    """The rules an event broke, as `field: reason` lines (the caller adds the place).

    Each line is a Problem (a str) that keeps its field and reason apart for error documents."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    topic: str
    urn: str | int
    attempt: int = 0
    payload: Any = ABSENT

    @property
    def has_payload(self) -> bool:
        return self.payload is not ABSENT

    @property
    def key(self) -> str:
        """The partition / FIFO group key: one entity's events stay in order."""
        return str(self.urn)

    @property
    def event_id(self) -> str:
        """Deterministic id of (topic, urn, attempt, payload): the same event always hashes alike.

        The urn keeps its JSON type ("123" and 123 differ) and an absent payload differs from null.
        """
        parts: list[Any] = [self.topic, self.urn, self.attempt]
        if self.has_payload:
            parts.append(self.payload)
        return hashlib.sha256(dumps_canonical_bytes(parts)).hexdigest()[:32]

    def to_dict(self, wire: WireFormat = "topic") -> dict[str, Any]:
        """Keys in the contract's order: topic/event, urn, payload, attempt."""
        doc: dict[str, Any] = {}
        if wire in ("topic", "both"):
            doc["topic"] = self.topic
        if wire in ("event", "both"):
            doc["event"] = self.topic
        doc["urn"] = self.urn
        if self.has_payload:
            doc["payload"] = self.payload
        doc["attempt"] = self.attempt
        return doc

    def encode(self, wire: WireFormat = "topic") -> bytes:
        return dumps_compact_bytes(self.to_dict(wire))

    def with_attempt(self, attempt: int) -> WorkflowEvent:
        return WorkflowEvent(self.topic, self.urn, attempt, self.payload)


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is a subclass of int and must not pass


def _is_safe(value: int) -> bool:
    return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _unsafe(value: int) -> str:
    return f"{_digits(value)} is outside ±(2^53−1), so a JavaScript consumer (JSON.parse) reads another number"


def _digits(value: int) -> str:
    """The integer as written, shortened past 40 digits (a 4,000-digit number makes no useful message)."""
    text = str(value)
    return (
        text if len(text) <= 40 else f"{text[:20]}...{text[-6:]} ({len(text.lstrip('-'))} digits)"
    )


def parse_event(doc: Any, *, ints_checked: bool = False) -> WorkflowEvent:
    """Check one decoded JSON value against the event rules; raise EventInvalid listing all breaks.

    `ints_checked`: the caller proved from the text that no integer in it can be out of the safe
    range (no run of 16 digits), so the payload is not walked.  The common event takes the short
    path below: the usual keys, right types, nothing to say.
    """
    if type(doc) is dict:
        topic: Any = doc.get("topic")
        urn: Any = doc.get("urn")
        attempt: Any = doc.get("attempt", 0)
        payload = doc.get("payload", ABSENT)
        kind = type(urn)
        if (
            type(topic) is str
            and topic
            and topic.isprintable()
            and not topic.isspace()
            and "event" not in doc
            and (
                (kind is str and urn)
                or (kind is int and -MAX_SAFE_INTEGER <= urn <= MAX_SAFE_INTEGER)
            )
            and type(attempt) is int
            and 0 <= attempt <= MAX_SAFE_INTEGER
            and len(doc) == 2 + ("attempt" in doc) + (payload is not ABSENT)
            and (
                ints_checked
                or payload is ABSENT
                or type(payload) not in (dict, list, int)
                or _all_safe(payload)
            )
        ):
            return WorkflowEvent(topic, urn, attempt, payload)
    return _parse_event_slowly(doc)


def _parse_event_slowly(doc: Any) -> WorkflowEvent:
    """Every rule, every break listed (the short path in parse_event found something to say)."""
    if type(doc) is not dict:
        raise EventInvalid(
            [
                Problem(
                    None, None, f"must be a JSON object with topic and urn, not {_json_type(doc)}"
                )
            ]
        )
    problems: list[str] = []  # Problem(None, field, reason): the caller adds the place
    for key in doc:
        if key not in ALLOWED_KEYS:
            problems.append(Problem(None, str(key), f"unknown key{_suggest(key)}"))

    topic = doc.get("topic", ABSENT)
    event = doc.get("event", ABSENT)
    if topic is ABSENT and event is ABSENT:
        problems.append(
            Problem(None, "topic", "required (a non-empty string; `event` is accepted too)")
        )
    else:
        for name, value in (("topic", topic), ("event", event)):
            if value is not ABSENT and (type(value) is not str or not value):
                problems.append(
                    Problem(None, name, f"must be a non-empty string, got {_show(value)}")
                )
            elif value is not ABSENT:
                problems.extend(
                    Problem(None, name, reason) for reason in _topic_text_problems(value)
                )
        if topic is not ABSENT and event is not ABSENT and topic != event:
            reason = f"differs from topic ({_show(event)} vs {_show(topic)}); give one of them"
            problems.append(Problem(None, "event", reason))
        if topic is ABSENT:
            topic = event

    urn = doc.get("urn", ABSENT)
    if urn is ABSENT:
        problems.append(Problem(None, "urn", "required (a non-empty string or an integer)"))
    elif not ((type(urn) is str and urn) or _is_int(urn)):
        problems.append(
            Problem(None, "urn", f"must be a non-empty string or an integer, got {_show(urn)}")
        )
    elif _is_int(urn) and not _is_safe(urn):
        quoted = f': "{urn}"' if len(str(urn)) <= 40 else " (in quotes)"
        problems.append(Problem(None, "urn", f"{_unsafe(urn)}; send the urn as a string{quoted}"))

    attempt = doc.get("attempt", 0)
    if not _is_int(attempt) or attempt < 0:
        problems.append(Problem(None, "attempt", f"must be an integer ≥ 0, got {_show(attempt)}"))
    elif attempt > MAX_SAFE_INTEGER:
        problems.append(Problem(None, "attempt", _unsafe(attempt)))

    payload = doc.get("payload", ABSENT)
    if payload is not ABSENT and type(payload) in (dict, list, int) and not _all_safe(payload):
        problems.extend(_unsafe_in_payload(payload))

    if problems:
        raise EventInvalid(problems)
    return WorkflowEvent(topic, urn, attempt, payload)


_TOPIC_TEXT = {"pattern": "\\S", "not": {"pattern": "[\\x00-\\x1f\\x7f-\\x9f]"}}
"""A topic is a name a transition listens for: some non-space character, no control character (C0,
DEL, C1).  `" "` or `"order\\n"` would be sent and never match a transition; the schema says the same
(unanchored patterns: `$` would let a trailing newline through in Python's re)."""


def _topic_text_problems(topic: str) -> list[str]:
    """Why a non-empty topic string cannot be a name (checked only off the fast path)."""
    if topic.isspace():
        return [f"is only whitespace ({_show(topic)}); give the event's name"]
    controls = sorted({c for c in topic if c < " " or "\x7f" <= c <= "\x9f"})
    if controls:
        codes = ", ".join(f"U+{ord(c):04X}" for c in controls)
        return [f"has a control character ({codes}) in {_show(topic)}; a topic is a visible name"]
    return []


def _all_safe(value: Any) -> bool:
    """True when no integer anywhere in `value` is outside the safe range (the fast common case)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return True


def _unsafe_in_payload(payload: Any) -> list[str]:
    """`payload.a.b: ...` for each unsafe integer, in document order, the first few then a count."""
    found: list[str] = []
    more = 0
    stack: list[tuple[str, Any]] = [("payload", payload)]
    while stack:
        place, item = stack.pop()
        kind = type(item)
        if kind is int and not _is_safe(item):
            more += 1
            if len(found) < MAX_LISTED_PAYLOAD_PROBLEMS:
                found.append(Problem(None, place, f"{_unsafe(item)}; send it as a string"))
        elif kind is dict:
            stack.extend((_child(place, key), child) for key, child in reversed(item.items()))
        elif kind is list:
            stack.extend(
                (f"{place}.{index}", child) for index, child in reversed(list(enumerate(item)))
            )
    more -= len(found)
    if more:
        found.append(Problem(None, "payload", f"... and {more} more unsafe integers"))
    return found


def _child(place: str, key: str) -> str:
    """A dotted path as `--match` reads it; a key a dot path cannot spell is written `["key"]`."""
    if key and "." not in key and not key.isdigit() and '"' not in key and "[" not in key:
        return f"{place}.{key}"
    return f"{place}[{dumps_compact(key)}]"


def _suggest(key: str) -> str:
    import difflib  # only on the error path: it costs start-up time

    close = difflib.get_close_matches(key, ALLOWED_KEYS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (allowed: {', '.join(ALLOWED_KEYS)})"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _show(value: Any) -> str:
    text = dumps_compact(value) if not isinstance(value, float) or value == value else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_SAFE_INTEGER = {"minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}

EVENT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://wfbus.dev/schema/workflow-event.json",
    "title": "WorkflowEvent",
    "description": "A workflow event as wfbus accepts it on input. `event` is the newer name of "
    "`topic` (nestjs-serverless-workflow >= 0.0.8); either may be given, both only if equal. "
    "Integers (urn, attempt, and any inside payload) must lie within ±(2^53−1), which JSON.parse "
    "reads exactly; send larger ids as strings. Two rules JSON Schema cannot express are checked by "
    "wfbus only: `topic` and `event` given together must be equal, and a urn or attempt written as a "
    "float (`1.0`, `2e0`) is refused although JSON Schema counts it as an integer. Conversely a "
    "payload number written as a float past 2^53 (`1e300`) is accepted by wfbus (JavaScript reads "
    "the same double) but counted as an out-of-range integer here.",
    "type": "object",
    "properties": {
        "topic": {
            "type": "string",
            "minLength": 1,
            **_TOPIC_TEXT,
            "description": "event name a transition listens for: not only whitespace, no control "
            "characters",
        },
        "event": {
            "type": "string",
            "minLength": 1,
            **_TOPIC_TEXT,
            "description": "newer name of topic; equal to topic if both",
        },
        "urn": {
            "description": "entity id; the FIFO group / Kafka key. Its JSON type is kept. An integer "
            "must be written without fraction or exponent, within ±(2^53−1).",
            "oneOf": [{"type": "string", "minLength": 1}, {"type": "integer", **_SAFE_INTEGER}],
        },
        "payload": {
            "description": "any JSON value; absent stays absent on the wire",
            "$ref": "#/$defs/jsonSafeIntegers",
        },
        "attempt": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_SAFE_INTEGER,
            "default": 0,
            "description": "written without fraction or exponent",
        },
    },
    "required": ["urn"],
    "anyOf": [{"required": ["topic"]}, {"required": ["event"]}],
    "additionalProperties": False,
    "$defs": {
        "jsonSafeIntegers": {
            "description": "any JSON value whose integers, at any depth, lie within ±(2^53−1)",
            "if": {"type": "integer"},
            "then": _SAFE_INTEGER,
            "items": {"$ref": "#/$defs/jsonSafeIntegers"},
            "additionalProperties": {"$ref": "#/$defs/jsonSafeIntegers"},
        },
    },
}

"""Which dead-lettered messages a replay takes: the filters, and how a message is read for them.

A message is read as a workflow event from its body; a body that is not one (a foreign message) is
described by its headers, so filters on topic, urn and attempt still apply to it.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from typing import Any

from . import strictjson
from .brokers.base import HEADER_ATTEMPT, HEADER_TOPIC, HEADER_URN, ReceivedMessage
from .event import EventInvalid, WorkflowEvent, parse_event


@dataclass
class Parsed:
    message: ReceivedMessage
    topic: str
    urn: str
    attempt: int | None
    event: WorkflowEvent | None


def parse_message(message: ReceivedMessage) -> Parsed:
    """Read the event from the body; fall back to headers for a body that is not one."""
    event: WorkflowEvent | None
    try:
        event = parse_event(strictjson.loads(message.body.decode("utf-8")))
    except (strictjson.StrictJSONError, EventInvalid, UnicodeDecodeError):
        event = None
    if event is not None:
        return Parsed(message, event.topic, event.key, event.attempt, event)
    headers = message.headers
    attempt = headers.get(HEADER_ATTEMPT)
    return Parsed(
        message,
        headers.get(HEADER_TOPIC) or message.route,
        headers.get(HEADER_URN, ""),
        int(attempt) if attempt and attempt.isdigit() else None,
        None,
    )


@dataclass(frozen=True)
class Selection:
    """Which dead-lettered messages to replay; an empty selection takes everything.

    `matches` holds `--match PATH=VALUE` pairs; all must hold. PATH is dotted into the event as
    written on the wire (`payload.items.0.sku`, `urn`); a message whose body is not an event never
    matches. VALUE follows one rule, so the operator gets exactly what they wrote:

    - VALUE that parses as (strict) JSON is that JSON value and equals a value of the same JSON
      type: numbers by value (`1` selects 1 and 1.0), strings, booleans and null by equality,
      arrays and objects element by element under the same rule. A boolean never equals a number
      (`flag=1` does not select true) and a string never equals a number (`code=1` does not
      select "1": write `code='"1"'`).
    - VALUE that does not parse as JSON (`eu`, `order-1`, an empty VALUE) is that text and
      equals string values only, character for character.
    """

    topics: tuple[str, ...] = ()  # glob patterns
    urns: tuple[str, ...] = ()
    matches: tuple[tuple[str, str], ...] = ()  # (dotted path, VALUE as the operator wrote it)
    min_attempt: int | None = None
    max_attempt: int | None = None
    limit: int | None = None

    def accepts(self, parsed: Parsed) -> bool:
        if self.topics and not any(
            fnmatch.fnmatchcase(parsed.topic, pattern) for pattern in self.topics
        ):
            return False
        if self.urns and parsed.urn not in self.urns:
            return False
        if self.min_attempt is not None and (
            parsed.attempt is None or parsed.attempt < self.min_attempt
        ):
            return False
        if self.max_attempt is not None and (
            parsed.attempt is None or parsed.attempt > self.max_attempt
        ):
            return False
        return all(_path_equals(parsed, path, _expected(text)) for path, text in self.matches)


@functools.lru_cache(maxsize=64)  # read once per --match, not once per message
def _expected(text: str) -> Any:
    """VALUE as JSON when it parses as JSON, else as text (`_Text`, which equals strings only)."""
    try:
        return strictjson.loads(text)
    except strictjson.StrictJSONError:
        return _Text(text)


class _Text(str):
    """A VALUE that is not JSON: the operator's text, compared with string values only."""


def _path_equals(parsed: Parsed, path: str, expected: Any) -> bool:
    """The value at the dotted path equals `expected` under the rule in Selection's docstring."""
    if parsed.event is None:
        return False
    value: Any = parsed.event.to_dict()
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False
    if isinstance(expected, _Text):
        return type(value) is str and value == expected
    return json_equal(value, expected)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of two decoded JSON values by JSON type: 1 == 1.0, but true != 1 and "1" != 1."""
    kinds = (_json_kind(left), _json_kind(right))
    if kinds[0] != kinds[1]:
        return False
    if kinds[0] == "array":
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=False)
        )
    if kinds[0] == "object":
        return left.keys() == right.keys() and all(
            json_equal(left[key], right[key]) for key in left
        )
    return left == right


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before numbers: bool is an int in Python, never in JSON
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"

"""Which dead-lettered messages a replay takes: the filters, and how a message is read for them.

A message is read as a workflow event from its body; a body that is not one (a foreign message) is
described by its headers, so filters on topic, urn and attempt still apply to it.
"""

from __future__ import annotations

import fnmatch
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
    """Which dead-lettered messages to replay; an empty selection takes everything."""

    topics: tuple[str, ...] = ()  # glob patterns
    urns: tuple[str, ...] = ()
    matches: tuple[tuple[str, str], ...] = ()  # (dotted path, expected value as text or JSON)
    min_attempt: int | None = None
    max_attempt: int | None = None
    limit: int | None = None

    def accepts(self, parsed: Parsed) -> bool:
        if self.topics and not any(fnmatch.fnmatchcase(parsed.topic, pattern) for pattern in self.topics):
            return False
        if self.urns and parsed.urn not in self.urns:
            return False
        if self.min_attempt is not None and (parsed.attempt is None or parsed.attempt < self.min_attempt):
            return False
        if self.max_attempt is not None and (parsed.attempt is None or parsed.attempt > self.max_attempt):
            return False
        return all(_path_equals(parsed, path, expected) for path, expected in self.matches)


def _path_equals(parsed: Parsed, path: str, expected: str) -> bool:
    """`payload.region=eu`: the value at the dotted path, compared as text (or as JSON when it parses)."""
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
    if isinstance(value, str):
        return value == expected
    try:
        return value == strictjson.loads(expected)
    except strictjson.StrictJSONError:
        return False

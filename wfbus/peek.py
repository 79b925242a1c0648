"""Peek: read messages without consuming them, as events `wfbus emit` accepts back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import strictjson
from .brokers.base import HEADER_EVENT_ID, Broker
from .event import EventInvalid, parse_event


@dataclass
class PeekedMessage:
    body: str
    document: dict[str, Any] | None  # the event as emit reads it; None if the body is not one
    event_id: str
    topic: str
    urn: str
    attempt: Any


@dataclass
class PeekResult:
    queue: str
    items: list[PeekedMessage] = field(default_factory=list)


def peek(broker: Broker, *, dead_letter: bool, limit: int | None, force: bool = False) -> PeekResult:
    messages = broker.peek(dead_letter=dead_letter, limit=limit, force=force)
    result = PeekResult(broker.describe_destination(dead_letter=dead_letter))
    for message in messages:
        text = message.body.decode("utf-8", "replace")
        try:
            event = parse_event(strictjson.loads(text))
        except (strictjson.StrictJSONError, EventInvalid):
            event = None
        result.items.append(PeekedMessage(
            body=text,
            document=event.to_dict(broker.wire) if event else None,
            event_id=message.headers.get(HEADER_EVENT_ID) or (event.event_id if event else ""),
            topic=event.topic if event else message.headers.get("topic", "?"),
            urn=str(event.urn) if event else message.headers.get("urn", "?"),
            attempt=event.attempt if event else message.headers.get("attempt", "?"),
        ))
    return result

"""Peek: read messages without consuming them, as events `wfbus emit` accepts back.

The messages are a stream, rendered as they arrive: `peek --all` of a million messages holds one
page of them, not the queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import strictjson
from .brokers.base import HEADER_EVENT_ID, Broker, ReceivedMessage
from .event import EventInvalid, WireFormat, parse_event


@dataclass(slots=True)
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
    items: Iterator[PeekedMessage]  # read once, as the broker gives them


def peek(
    broker: Broker, *, dead_letter: bool, limit: int | None, force: bool = False
) -> PeekResult:
    messages = broker.peek_stream(dead_letter=dead_letter, limit=limit, force=force)
    return PeekResult(
        broker.describe_source(dead_letter=dead_letter), _items(messages, broker.wire)
    )


def _items(messages: Iterator[ReceivedMessage], wire: WireFormat) -> Iterator[PeekedMessage]:
    for message in messages:
        yield _peeked(message, wire)


def _peeked(message: ReceivedMessage, wire: WireFormat) -> PeekedMessage:
    text = message.body.decode("utf-8", "replace")
    try:
        event = parse_event(strictjson.loads(text))
    except (strictjson.StrictJSONError, EventInvalid):
        event = None
    return PeekedMessage(
        body=text,
        document=event.to_dict(wire) if event else None,
        event_id=message.headers.get(HEADER_EVENT_ID) or (event.event_id if event else ""),
        topic=event.topic if event else message.headers.get("topic", "?"),
        urn=str(event.urn) if event else message.headers.get("urn", "?"),
        attempt=event.attempt if event else message.headers.get("attempt", "?"),
    )

"""The Broker protocol and its small value types.

A broker offers a few primitives (kombu's idea); the generic layer (emit, replay, depth) builds
the rest.  Nothing here imports a driver: broker modules import boto3 / kafka / pika inside
their methods, so `wfbus --help` and local work stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from ..event import WireFormat, WorkflowEvent

HEADER_TOPIC = "topic"
HEADER_URN = "urn"
HEADER_ATTEMPT = "attempt"
HEADER_EVENT_ID = "event-id"
HEADER_REPLAYED_FROM = "replayed-from"


class BrokerSettings(BaseModel):
    """Settings every broker type shares; each type extends it (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    wire: WireFormat = "topic"

    def secret_values(self) -> list[str]:
        """Values that must never be printed (registered with wfbus.redact on load)."""
        return []

    def target(self) -> str:
        """Where this broker sends, for `wfbus brokers`; secrets redacted."""
        return ""

    def warnings(self) -> list[str]:
        """Settings that work but are risky (TLS verification off), said on every use."""
        return []


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a broker sends: the body plus the routing facts every broker maps its own way."""

    body: bytes
    topic: str
    key: str
    event_id: str
    headers: dict[str, str]
    place: str = ""
    dedup_id: str | None = None  # SQS FIFO: a replay passes a fresh one
    group_id: str | None = None  # SQS FIFO: a replay keeps the original message group
    routing_key: str | None = None  # RabbitMQ: a replay keeps the original routing key (x-death)

    @classmethod
    def from_event(cls, event: WorkflowEvent, wire: WireFormat, place: str = "") -> OutgoingMessage:
        event_id = event.event_id
        return cls(
            body=event.encode(wire),
            topic=event.topic,
            key=event.key,
            event_id=event_id,
            headers={
                HEADER_TOPIC: event.topic,
                HEADER_URN: event.key,
                HEADER_ATTEMPT: str(event.attempt),
                HEADER_EVENT_ID: event_id,
            },
            place=place,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """The broker's answer for one message: confirmed, or failed with a reason."""

    message: OutgoingMessage
    error: str | None = None
    taken_elsewhere: bool = False  # a concurrent replay moved this message first: neither ours nor failed

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class ReceivedMessage:
    """A message read from a queue; `handle` is the broker's own token to ack or release it."""

    body: bytes
    headers: dict[str, str]
    handle: Any
    message_id: str = ""  # stable across redeliveries where the broker has one (journal key)
    routing_key: str = ""  # RabbitMQ: the routing key it was first published with (from x-death)
    dead_letter_reason: str = ""
    receive_count: int | None = None
    redelivered: bool | None = None  # False: certainly never handed to a consumer before (RabbitMQ)
    # names this one arrival in the queue, and never a later one (SQS: the MessageId; RabbitMQ: the
    # publish id wfbus gave the message and its death count). Not Kafka offsets: an operator may rewind
    # the replay group to replay them again on purpose. The journal remembers such messages after
    # removing them, so one that comes back (an ack lost in a broker crash) is removed again, not
    # replayed again; a replay into SQS FIFO derives the dedup id from it.
    arrival_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def journal_key(self) -> str:
        return self.arrival_id or self.message_id


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """One row of `wfbus depth`; None means the broker does not report that figure."""

    broker: str
    queue: str
    role: Literal["main", "dead-letter"]
    ready: int | None = None
    in_flight: int | None = None
    delayed: int | None = None
    consumers: int | None = None
    lag: int | None = None
    approximate: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class DeadLetterReader:
    """Reads a dead-letter queue for replay, bounded to what was there when it opened.

    `receive` returns [] once the bound is reached; `ack` removes messages at the source (only
    after the destination confirmed them); `release` leaves them where they were.  `close`
    releases anything still held.
    """

    source_label: str = ""

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        raise NotImplementedError

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        raise NotImplementedError

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        raise NotImplementedError

    def take(self, limit: int | None, step: int = 100) -> list[ReceivedMessage]:
        """Receive until `limit` messages (None: all there are) or the bound is reached; for peek."""
        out: list[ReceivedMessage] = []
        while limit is None or len(out) < limit:
            batch = self.receive(step if limit is None else min(step, limit - len(out)))
            if not batch:
                break
            out.extend(batch)
        return out

    def skip(self, messages: Sequence[ReceivedMessage]) -> None:
        """Not selected by the filters: left in place where the broker can (Kafka passes them over)."""
        self.release(messages)

    def close(self) -> None:
        pass

    def __enter__(self) -> DeadLetterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Broker:
    """Base class of every broker type.

    Subclasses set `settings_model`, implement the primitives, and list their driver's
    connection errors in `connection_errors()` so generic code can catch them without importing
    the driver.
    """

    settings_model: ClassVar[type[BrokerSettings]] = BrokerSettings
    publish_batch_size: ClassVar[int] = 500
    replays_by_passing_over: ClassVar[bool] = False  # Kafka: unselected messages are skipped, not kept

    def __init__(self, name: str, settings: BrokerSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir

    def resolve_path(self, value: str | None) -> str | None:
        """A file named in the config (TLS files), relative to the config file's folder."""
        return str((self.base_dir / value).resolve()) if value else None

    @property
    def wire(self) -> WireFormat:
        return self.settings.wire

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        """Human name of where publish() sends (queue URL, topic, exchange)."""
        return self.settings.target()

    def message_size_limit(self) -> int | None:
        """Largest body the destination accepts, checked before anything is sent."""
        return None

    def publish(self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False) -> list[Delivery]:
        """Send a batch; return one Delivery per message, in order, once the broker answered."""
        raise NotImplementedError

    def depth(self) -> list[QueueDepth]:
        raise NotImplementedError

    def peek(self, *, dead_letter: bool, limit: int | None, force: bool = False) -> list[ReceivedMessage]:
        """Messages as they are, left in place (None: all of them)."""
        raise NotImplementedError

    def dead_letter_reader(self) -> DeadLetterReader:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The Broker protocol and its small value types.

A broker offers a few primitives (kombu's idea); the generic layer (emit, replay, depth) builds
the rest.  Nothing here imports a driver: broker modules import boto3 / kafka / pika inside
their methods, so `wfbus --help` and local work stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .. import interrupts
from ..event import WireFormat, WorkflowEvent

HEADER_TOPIC = "topic"
HEADER_URN = "urn"
HEADER_ATTEMPT = "attempt"
HEADER_EVENT_ID = "event-id"
HEADER_REPLAYED_FROM = "replayed-from"


EVENT_TEMPLATE_FIELDS = ("topic", "urn")


def check_event_template(value: str, fields: Sequence[str] = EVENT_TEMPLATE_FIELDS) -> str:
    """A settings template ({topic}, {urn}) that names anything else would fail at the first publish
    (an internal error mid-emit): refuse it when the config is loaded (a ValueError pydantic reports)."""
    import string

    known = ", ".join("{" + f + "}" for f in fields)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); it may use {known}") from None
    unknown = [name or "{}" for name in names if name not in fields]
    if unknown:
        raise ValueError(f"unknown field {{{unknown[0]}}} in the template; it may use {known}")
    try:
        value.format(**{f: "x" for f in fields})
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"not a valid template ({exc}); it may use {known}") from None
    return value


class BrokerSettings(BaseModel):
    """Settings every broker type shares; each type extends it (unknown keys are errors)."""

    # the validator of a settings model is built at its first use, not when its module is imported:
    # a command validates only the brokers it uses (wfbus.config), so the others cost a
    # class, no schema
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

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


Ordering = Literal["none", "per-key", "per-group", "per-queue", "total"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a broker type guarantees (kombu's `Transport.implements`), declared, never probed.

    Core code, `wfbus brokers`, the README table and the contract suite all read this value, so a
    plugin broker is held to exactly what it claims.
    """

    ordering: Ordering = (
        "none"  # whose order a publish keeps: per key (Kafka partition), per group (SQS FIFO) ...
    )
    dedup_on_resend: bool = (
        False  # a resend after a kill is recognised and dropped by the destination
    )
    atomic_transfer: bool = (
        False  # publish + removal at the source in one transaction (no duplicate ever)
    )
    keeps_unselected: bool = (
        True  # messages a selective replay did not pick stay for a later replay
    )
    native_move: bool = False  # a server-side redrive exists (`replay --native`)
    exact_depth: bool = True  # depth figures are exact (False: approximate, e.g. SQS)
    keeps_properties: bool = True  # a same-type replay republishes headers/properties type for type

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Origin:
    """A received message as its broker gave it, so the same broker type can republish it losslessly.

    `headers` keeps the driver's own types and repeated keys (Kafka: (str, bytes) pairs; RabbitMQ:
    the header table's values); `properties` the broker's message properties (AMQP basic properties,
    SQS message attributes with their DataType); `key` the original record key (None: none).
    """

    broker_type: str
    key: bytes | None = None
    headers: tuple[tuple[str, Any], ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)
    null_value: bool = False  # Kafka tombstone: the value was null, not empty


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a broker sends: the body plus the routing facts every broker maps its own way."""

    body: bytes
    topic: str
    key: str
    event_id: str
    headers: dict[str, str]
    place: str = ""
    dedup_id: str | None = (
        None  # a replay passes its own (SQS FIFO drops a repeat within 5 minutes)
    )
    ordering_key: str | None = (
        None  # a replay keeps the original ordering key (SQS FIFO message group)
    )
    route: str | None = (
        None  # a replay keeps the original route (RabbitMQ routing key from x-death)
    )
    origin: Origin | None = None  # a replay: the message as the source broker gave it

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
    taken_elsewhere: bool = (
        False  # a concurrent replay moved this message first: neither ours nor failed
    )

    @property
    def ok(self) -> bool:
        return self.error is None


class PendingPublish:
    """A batch handed to the broker whose answer has not been read yet.

    Pipelining: emit and replay keep up to `Broker.pipeline_window` of these in flight and read
    their answers oldest first, so the broker works on the next batch while the previous one is
    confirmed. `result()` waits for the answer: one Delivery per message, in order, exactly like
    `publish()`, and raises the same WfbusError (BrokerUnavailable) when nothing of the
    batch was confirmed.

    A broker that cannot pipeline answers at once (`PendingPublish.answered`), which is the default.
    A broker that can must keep its ordering promise across batches in flight: a message of a later
    batch never overtakes one of an earlier batch with the same ordering key (Kafka key / partition,
    SQS FIFO message group, RabbitMQ channel).
    """

    def __init__(self, messages: Sequence[OutgoingMessage]) -> None:
        self.messages = messages

    @classmethod
    def answered(
        cls,
        messages: Sequence[OutgoingMessage],
        deliveries: list[Delivery] | None = None,
        error: Exception | None = None,
    ) -> PendingPublish:
        """An answer already in hand (the broker published synchronously, or refused at once)."""
        return _Answered(messages, deliveries, error)

    def result(self) -> list[Delivery]:
        raise NotImplementedError


class _Answered(PendingPublish):
    def __init__(
        self,
        messages: Sequence[OutgoingMessage],
        deliveries: list[Delivery] | None,
        error: Exception | None,
    ) -> None:
        super().__init__(messages)
        self._deliveries = deliveries
        self._error = error

    def result(self) -> list[Delivery]:
        if self._error is not None:
            raise self._error
        assert self._deliveries is not None
        return self._deliveries


@dataclass(slots=True)
class ReceivedMessage:
    """A message read from a queue; `handle` is the broker's own token to ack or release it."""

    body: bytes
    headers: dict[str, str]
    handle: Any
    message_id: str = (
        ""  # for display: the broker's or application's id (never trusted as a journal key)
    )
    route: str = ""  # where it was first published to (RabbitMQ: the routing key from x-death)
    dead_letter_reason: str = ""
    receive_count: int | None = None
    redelivered: bool | None = None  # False: certainly never handed to a consumer before (RabbitMQ)
    # names this one arrival in the queue, and never a later one (SQS: the MessageId; RabbitMQ: the
    # publish id wfbus gave the message and its death count). Not Kafka offsets: an operator may
    # rewind the replay group to replay them again on purpose. The journal remembers such messages
    # after removing them, so one that comes back (an ack lost in a broker crash) is removed again,
    # not replayed again; a replay into SQS FIFO derives the dedup id from it.
    arrival_id: str | None = None
    # unique at the source but may be replayed again on purpose (Kafka
    # topic/partition/offset, local row)
    position_id: str | None = None
    ordering_key: str | None = None  # SQS FIFO message group, Kafka key as text
    origin: Origin | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def journal_key(self) -> str | None:
        """Only ids wfbus minted or the broker guarantees unique; never an application's message_id."""
        return self.arrival_id or self.position_id


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
    # the source's real identity (queue ARN/URL, cluster id + topic, vhost + queue): keys the
    # journal, so two clusters under one broker name, or a recreated topic, never share entries
    identity: str = ""
    # replay pipelining: receive() may be called again while messages it returned are still
    # unsettled (published, answer not read, neither acked nor released), without ending early,
    # failing, or handing the same message out twice. False (the default) keeps a replay from this
    # source at one batch in flight: a reader that needs a batch settled before the next receive (a
    # FIFO queue that hides a held group's later messages; commit metadata whose room frees only on
    # settling) says so.
    receive_ahead: bool = False

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

    def transfer(
        self,
        messages: Sequence[ReceivedMessage],
        outgoing: Sequence[OutgoingMessage],
        destination: Broker,
    ) -> list[Delivery] | None:
        """Publish and remove in one transaction where `capabilities.atomic_transfer` says so; else None."""
        return None

    def skip(self, messages: Sequence[ReceivedMessage]) -> None:
        """Not selected by the filters: left in place where the broker can (Kafka passes them over)."""
        self.release(messages)

    def held_elsewhere(self) -> tuple[int, float | None] | None:
        """Messages at the source that this reader could not see because another consumer (or a killed
        run) holds them, and in how many seconds they return; None where the broker cannot tell."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> DeadLetterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        with interrupts.closing():
            self.close()


class Broker:
    """Base class of every broker type.

    Subclasses set `settings_model`, implement the primitives, and list their driver's
    connection errors in `connection_errors()` so generic code can catch them without
    importing the driver.
    """

    settings_model: ClassVar[type[BrokerSettings]] = BrokerSettings
    publish_batch_size: ClassVar[int] = 500
    # batches in flight at once (see PendingPublish); 1: each batch waits for the previous one's
    # answer. A kill can leave up to pipeline_window * publish_batch_size events sent but unrecorded
    # (the `may_be_duplicated` bound of `emit --resume`).
    pipeline_window: ClassVar[int] = 1
    implements: ClassVar[Capabilities] = Capabilities()

    def __init__(self, name: str, settings: BrokerSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir

    def resolve_path(self, value: str | None) -> str | None:
        """A file named in the config (TLS files), relative to the config file's folder."""
        return str((self.base_dir / value).resolve()) if value else None

    @classmethod
    def capabilities_for(cls, settings: BrokerSettings) -> Capabilities:
        """The guarantees of this type with these settings (SQS FIFO differs from standard); no I/O."""
        return cls.implements

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_for(self.settings)

    @property
    def wire(self) -> WireFormat:
        return self.settings.wire

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        """Human name of where publish() sends (queue URL, topic, exchange)."""
        return self.settings.target()

    def describe_source(self, *, dead_letter: bool = False) -> str:
        """Human name of what peek reads; where a broker publishes to one place (a RabbitMQ exchange)
        and reads from another (its queue), it overrides this."""
        return self.describe_destination(dead_letter=dead_letter)

    def destination_identity(self, *, dead_letter: bool = False) -> str:
        """The real identity of where publish() sends (keys an emit's progress record): not the broker's
        name, which two clusters can share, and not a topic's name, which a recreated topic keeps."""
        return f"{self.settings.type}:{self.describe_destination(dead_letter=dead_letter)}"

    def message_size_limit(self) -> int | None:
        """Largest body the destination accepts, checked before anything is sent."""
        return None

    def publish(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> list[Delivery]:
        """Send a batch; return one Delivery per message, in order, once the broker answered."""
        raise NotImplementedError

    def submit(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> PendingPublish:
        """Hand a batch to the broker without waiting for its answer (pipelining); the default publishes
        now. May raise what publish() raises when the broker refuses before anything is sent."""
        return PendingPublish.answered(messages, self.publish(messages, dead_letter=dead_letter))

    def depth(self) -> list[QueueDepth]:
        raise NotImplementedError

    def peek(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> list[ReceivedMessage]:
        """Messages as they are, left in place (None: all of them)."""
        raise NotImplementedError

    def peek_stream(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> Iterator[ReceivedMessage]:
        """peek() as an iterator, for `wfbus peek --all`; a broker that can page overrides it (memory flat)."""
        return iter(self.peek(dead_letter=dead_letter, limit=limit, force=force))

    def dead_letter_reader(self) -> DeadLetterReader:
        raise NotImplementedError

    def purge(self, *, dead_letter: bool = False) -> int | None:
        """Empty the queue (`wfbus purge`); how many messages were removed (None: the broker cannot say)."""
        from ..errors import UsageError

        raise UsageError(
            f"broker {self.name!r} ({self.settings.type}) cannot purge",
            hint="empty it with the broker's own tools",
        )

    def native_move(self, progress: Any = None) -> dict[str, Any]:
        """The server's own redrive, where `capabilities.native_move` says there is one."""
        raise NotImplementedError

    def prepare_to_publish(self, *, dead_letter: bool = False) -> None:
        """Called by emit once it knows it will send (after checking every event): a driver whose
        connection takes long to become ready for sending (librdkafka's idempotent producer) starts
        it here, so that the wait overlaps emit's own preparation. Nothing by default; readiness
        probes and read-only commands never call it."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        with interrupts.closing():
            self.close()

"""RabbitMQ (pika): persistent, mandatory, pipelined-confirm emit; depth; in-place peek; DLQ replay.

Publishing keeps many messages in flight and counts confirms as they arrive (one round trip per
batch, not per message); a basic.return (unroutable, `mandatory`) or a nack fails that event. A
return is matched to its publish by the `wfbus-publish-id` header, unique per publish (never by the
message_id: two publishes of one event, or every foreign message, share one).

Peek and replay hold messages unacknowledged and hand back what they do not take, which RabbitMQ
requeues in their original positions. A message passed over is handed back within `hold_seconds`
(before the server's consumer_timeout closes the channel) and passed over again when it is read
again; a thread answers heartbeats while wfbus waits elsewhere (a paced replay, a slow destination).

A replay into RabbitMQ of a message read from RabbitMQ republishes it as it was dead-lettered: the
body byte for byte, every basic property, every header type for type as pika reads them, minus the
broker's x-death bookkeeping, plus `replayed-from` and a new `wfbus-publish-id`. pika reads float
and double header values as integers (0.25 -> 0) and cannot write floats: `_install_codec` mends
that. Its other limit stays: 8/16-bit and unsigned integers are read as integers and written
back as 32/64-bit.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from ..errors import BrokerUnavailable, ConfigError
from ..redact import url_password, url_without_password
from .base import (
    HEADER_ATTEMPT,
    HEADER_EVENT_ID,
    Broker,
    BrokerSettings,
    Capabilities,
    DeadLetterReader,
    Delivery,
    Origin,
    OutgoingMessage,
    PendingPublish,
    QueueDepth,
    ReceivedMessage,
    check_event_template,
)

# unique per publish: with the death count, names one arrival in a queue
PUBLISH_ID = "wfbus-publish-id"
DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)
# the basic properties a message carries besides its headers, as pika names them
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
ROUTING_FIELDS = ("topic", "urn")
FLUSH_EVERY = 200  # publishes between two pushes onto the socket while a batch is being written
TIMED_OUT = "no confirm from RabbitMQ before the timeout"
CONSUME_IDLE_SECONDS = (
    0.25  # a reader's consumer that got nothing more for this long has all it will get
)
# ... and one that got nothing at all (a slow node): then basic.get is tried
CONSUME_FIRST_SECONDS = 2.0


class RabbitMqSettings(BrokerSettings):
    type: str = "rabbitmq"
    url: str = "amqp://guest:guest@localhost:5672/%2F"
    exchange: str = "workflow-events"
    routing_key: str = "{topic}"
    queue: str | None = None
    dead_letter_queue: str | None = None
    # may wfbus declare the exchange? Off: never create topology in production silently
    declare: bool = False
    heartbeat: int = Field(30, ge=0)
    timeout_seconds: float = Field(10, gt=0)
    # longest a replay or peek holds a message it passes over before handing it back (and passing
    # over it again when read again): keep it well below the server's consumer_timeout
    # (30 min by default)
    hold_seconds: float = Field(300, gt=0)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    @field_validator("routing_key")
    @classmethod
    def _routing_key_names_known_fields(cls, value: str) -> str:
        return check_event_template(value, ROUTING_FIELDS)

    def secret_values(self) -> list[str]:
        password = url_password(self.url)
        return [password] if password else []

    def target(self) -> str:
        return f"{url_without_password(self.url)} exchange {self.exchange}"

    def warnings(self) -> list[str]:
        if self.url.startswith("amqps://") and not self.verify:
            return [
                "verify: false turns off TLS certificate verification: anyone on the path can "
                "read and change the traffic"
            ]
        return []


class RabbitMqBroker(Broker):
    settings_model = RabbitMqSettings
    publish_batch_size = 2000
    # several batches on one channel: RabbitMQ keeps their order per queue; a kill can leave up to
    # pipeline_window * publish_batch_size events published but unrecorded (emit --resume's bound)
    pipeline_window = 3
    implements = Capabilities(ordering="per-queue", keeps_properties=True)
    settings: RabbitMqSettings

    def __init__(self, name, settings, base_dir) -> None:
        super().__init__(name, settings, base_dir)
        self._link = _Link(self._open_connection, _keeper_interval(self.settings))
        self._publish_channel: _ConfirmingChannel | None = None
        self._exchange_checked = False
        self._lost: BrokerUnavailable | None = None
        self._run_id = os.urandom(8).hex()
        self._published = 0
        self._user: str | None = None

    # -- connection --------------------------------------------------------------------------
    def _parameters(self):
        import pika

        _install_codec()
        s = self.settings
        params = pika.URLParameters(s.url)
        params.heartbeat = s.heartbeat
        params.blocked_connection_timeout = s.timeout_seconds
        params.socket_timeout = s.timeout_seconds
        params.stack_timeout = s.timeout_seconds
        params.connection_attempts = 1
        if s.url.startswith("amqps://"):
            context = ssl.create_default_context(cafile=self.resolve_path(s.ca_file))
            if s.cert_file:
                context.load_cert_chain(
                    self.resolve_path(s.cert_file) or s.cert_file, self.resolve_path(s.key_file)
                )
            if not s.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            params.ssl_options = pika.SSLOptions(context, params.host)
        return params

    def _open_connection(self):
        import pika

        with self._errors("connect"):
            return pika.BlockingConnection(self._parameters())

    @property
    def connection(self):
        return self._link.connection()

    def identity(self, queue: str) -> str:
        """The queue's real identity, without credentials: amqp://host:port/vhost#queue."""
        import pika

        params = pika.URLParameters(
            self.settings.url
        )  # no TLS context: a missing ca_file is the connection's error
        scheme = "amqps" if self.settings.url.startswith("amqps://") else "amqp"
        return (
            f"{scheme}://{params.host}:{params.port}/{quote(params.virtual_host, safe='')}#{queue}"
        )

    def user(self) -> str:
        """The user this broker publishes as (RabbitMQ checks a message's user_id against it)."""
        if self._user is None:
            import pika

            self._user = pika.URLParameters(self.settings.url).credentials.username
        return self._user

    @contextmanager
    def _amqp(self, what: str) -> Iterator[None]:
        """Use the broker's own connection (the heartbeat thread waits meanwhile);
        driver errors mapped."""
        with self._link.lock, self._errors(what):
            yield

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        import pika.exceptions as px
        from pika.adapters.utils.connection_workflow import AMQPConnectorException

        where = url_without_password(self.settings.url)
        try:
            yield
        except px.ProbableAuthenticationError:
            raise BrokerUnavailable(
                f"{self.name}: {what}: authentication failed at {where}",
                hint="check the user and password in the url",
            ) from None
        except px.ProbableAccessDeniedError:
            raise BrokerUnavailable(
                f"{self.name}: {what}: access to the virtual host refused at {where}",
                hint="check the vhost in the url and the user's permissions",
            ) from None
        except px.ChannelClosedByBroker as exc:
            hint = {
                404: "create it, or fix its name in the config",
                403: "the user lacks permission for it",
            }.get(exc.reply_code, "see the broker's log")
            raise BrokerUnavailable(
                f"{self.name}: {what}: {exc.reply_code} {exc.reply_text}", hint=hint
            ) from None
        except (
            px.AMQPConnectionError,
            px.AMQPChannelError,
            px.StreamLostError,
            OSError,
            AMQPConnectorException,  # e.g. a node that takes the TCP connection and never answers
        ) as exc:
            untrusted = _certificate_error(exc)
            if untrusted:
                raise BrokerUnavailable(
                    f"{self.name}: {what}: the TLS certificate of {where} is not trusted: "
                    f"{untrusted}",
                    hint="set ca_file to the CA that signed the broker's certificate "
                    "(verify: false turns the check off, and is unsafe)",
                ) from None
            raise BrokerUnavailable(
                f"{self.name}: {what}: cannot reach RabbitMQ at {where}: "
                f"{type(exc).__name__} {exc}".rstrip(),
                hint="check the url (host, port, amqp/amqps) and that the broker is up",
            ) from None

    def close(self) -> None:
        self._link.close()
        self._publish_channel = None

    # -- publish -----------------------------------------------------------------------------
    def describe_destination(self, *, dead_letter: bool = False) -> str:
        if dead_letter:
            return f"queue {self._require_dlq()}"
        return f"exchange {self.settings.exchange}"

    def describe_source(self, *, dead_letter: bool = False) -> str:
        if dead_letter:
            return self.describe_destination(dead_letter=True)
        return (
            f"queue {self.settings.queue}" if self.settings.queue else self.describe_destination()
        )

    def destination_identity(self, *, dead_letter: bool = False) -> str:
        """Also connects: an unreachable broker fails before anything is sent, as on
        SQS and Kafka."""
        self.connection  # noqa: B018 - opens the connection the publishes then use
        if dead_letter:
            return self.identity(f"queue:{self._require_dlq()}")
        return self.identity(f"exchange:{self.settings.exchange}")

    def _require_dlq(self) -> str:
        if not self.settings.dead_letter_queue:
            raise ConfigError(
                f"{self.name}: no dead_letter_queue configured",
                hint=f"set brokers.{self.name}.dead_letter_queue in the config",
            )
        return self.settings.dead_letter_queue

    def _require_queue(self) -> str:
        if not self.settings.queue:
            raise ConfigError(
                f"{self.name}: no queue configured",
                hint=f"set brokers.{self.name}.queue in the config",
            )
        return self.settings.queue

    def _channel_for_publish(self):
        if self._publish_channel is None or self._publish_channel.is_closed:
            with self._amqp("open channel"):
                channel = self.connection.channel()
            if not self._exchange_checked:
                with self._amqp(f"exchange {self.settings.exchange!r}"):
                    channel.exchange_declare(
                        self.settings.exchange,
                        "topic",
                        durable=True,
                        passive=not self.settings.declare,
                    )
                self._exchange_checked = True
            self._publish_channel = _ConfirmingChannel(channel)
        return self._publish_channel

    def publish(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> list[Delivery]:
        return self.submit(messages, dead_letter=dead_letter).result()

    def submit(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> PendingPublish:
        """Publish the batch now (mandatory, persistent, confirmed) and return without waiting for
        the confirms: the broker writes this batch to disk while the caller prepares the next one.
        Every batch goes out on one channel, in order, so RabbitMQ keeps the order per queue across
        batches in flight.

        The connection's lock is held only while publishing and, in `result()`, for each short read
        of the socket: the heartbeat thread may read in between, and the confirms it reads are
        kept for result()."""
        if dead_letter:
            exchange, queue = "", self._require_dlq()
            routes = [queue] * len(messages)
        else:
            exchange = self.settings.exchange
            template = self.settings.routing_key
            routes = [m.route or template.format(topic=m.topic, urn=m.key) for m in messages]
        # the heartbeat thread must not read the socket while a batch is half written
        with self._link.lock:
            if self._lost is not None:
                # gone: refused at once, nothing sent
                return PendingPublish.answered(messages, error=self._lost)
            try:
                channel = self._channel_for_publish()
            except BrokerUnavailable as exc:
                return PendingPublish.answered(messages, error=exc)
            pending = _RabbitPending(self, channel, messages, f"publish to {exchange or 'queue'}")
            user = self.user()
            try:
                with self._amqp(pending.what):
                    flush_every = FLUSH_EVERY
                    for index, (message, route) in enumerate(zip(messages, routes, strict=True), 1):
                        self._published += 1
                        publish_id = f"{self._run_id}-{self._published}"
                        properties = _properties_for(message, publish_id, user)
                        pending.tags.append(
                            channel.publish(exchange, route, message.body, properties, publish_id)
                        )
                        pending.publish_ids.append(publish_id)
                        if index % flush_every == 0:
                            # onto the socket now, so the broker works while we encode the rest;
                            # reads the confirms that are in (cheap: never waits)
                            channel.poll(0)
                    channel.poll(0)
            except BrokerUnavailable as exc:
                # the connection died (or the channel was closed) mid-batch: result() says
                # what was confirmed
                self._lost = exc
        return pending

    def _settle(self, pending: _RabbitPending) -> list[Delivery]:
        """Wait for one batch's confirms (and returns); what later batches' confirms say is
        kept for them."""
        channel, tags = pending.channel, pending.tags
        deadline = time.monotonic() + self.settings.timeout_seconds * 3
        while self._lost is None and channel.unsettled(tags) and time.monotonic() < deadline:
            # one short read at a time, the lock taken for each: the heartbeat thread gets its turn
            with self._link.lock:
                try:
                    with self._amqp(pending.what):
                        # pika's process_data_events blocks for its whole time_limit even when the
                        # confirms are in: a short limit in a loop returns within a millisecond of
                        # the last confirm
                        channel.poll(0.001)
                except BrokerUnavailable as exc:
                    # the next batches are refused at once instead of waiting for timeouts
                    self._lost = exc
        with self._link.lock:
            outcome = channel.take(tags, pending.publish_ids)
        messages, lost = pending.messages, self._lost
        if lost is None:
            return [
                Delivery(m, outcome[tag] if tag in outcome else TIMED_OUT)
                for m, tag in zip(messages, tags, strict=True)
            ]
        # The connection died (or the broker closed the channel): what was confirmed stays
        # confirmed, the rest failed; a message not even handed to the socket failed too
        if not outcome:
            # nothing of this batch was confirmed: the broker is gone or refuses us (exit 5)
            raise lost
        reason = f"not confirmed: {lost.message}"
        return [
            Delivery(m, outcome[tags[i]] if i < len(tags) and tags[i] in outcome else reason)
            for i, m in enumerate(messages)
        ]

    # -- depth and peek ----------------------------------------------------------------------
    def _queue_state(self, queue: str) -> tuple[int, int]:
        with self._amqp(f"queue {queue!r}"):
            channel = self.connection.channel()
            try:
                result = channel.queue_declare(queue, passive=True)
            finally:
                if channel.is_open:
                    channel.close()
        return result.method.message_count, result.method.consumer_count

    def depth(self) -> list[QueueDepth]:
        rows = []
        roles: tuple[tuple[str | None, Literal["main", "dead-letter"]], ...] = (
            (self.settings.queue, "main"),
            (self.settings.dead_letter_queue, "dead-letter"),
        )
        for queue, role in roles:
            if queue:
                ready, consumers = self._queue_state(queue)
                rows.append(QueueDepth(self.name, queue, role, ready=ready, consumers=consumers))
        if not rows:
            raise ConfigError(
                f"{self.name}: depth needs `queue` or `dead_letter_queue` in the config"
            )
        return rows

    def purge(self, *, dead_letter: bool = False) -> int | None:
        queue = self._require_dlq() if dead_letter else self._require_queue()
        with self._amqp(f"queue {queue!r}"):
            channel = self.connection.channel()
            try:
                return channel.queue_purge(queue).method.message_count
            finally:
                if channel.is_open:
                    channel.close()

    def peek(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> list[ReceivedMessage]:
        queue = self._require_dlq() if dead_letter else self._require_queue()
        # nothing acked: closing puts every message back in place
        with RabbitQueueReader(self, queue) as reader:
            return reader.take(limit)

    def dead_letter_reader(self) -> RabbitQueueReader:
        return RabbitQueueReader(self, self._require_dlq())


def _keeper_interval(settings: RabbitMqSettings) -> float:
    """How often the heartbeat thread looks in: several times per heartbeat and per hold_seconds."""
    if not settings.heartbeat:
        return max(0.2, settings.hold_seconds / 4)
    return max(0.2, min(settings.heartbeat / 4, settings.hold_seconds / 4))


class _Link:
    """One pika connection, and a thread that answers its heartbeats while wfbus is busy elsewhere.

    pika's BlockingConnection reads the socket only inside its own calls. During a paced replay's
    sleep or a slow destination publish (a Kafka flush), nobody answers the broker's heartbeats, the
    broker closes the connection, and the messages it held go back to the queue. The thread does the
    socket work only when it gets the lock, which every user of the connection holds while using it
    (pika is not thread-safe), and runs `on_tick` (the reader's hand-back of messages held
    too long) likewise.
    """

    def __init__(self, opener: Callable[[], Any], interval: float) -> None:
        self.lock = threading.RLock()
        self.on_tick: Callable[[], None] | None = None
        self._opener = opener
        self._interval = interval
        self._connection = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connection(self):
        with self.lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = self._opener()
                if self._interval and self._thread is None:
                    self._thread = threading.Thread(
                        target=self._keep, name="wfbus-rabbitmq-keeper", daemon=True
                    )
                    self._thread.start()
            return self._connection

    def _keep(self) -> None:
        while not self._stop.wait(self._interval):
            if not self.lock.acquire(blocking=False):
                continue  # in use: the user's own calls service the socket
            try:
                connection = self._connection
                if connection is not None and connection.is_open:
                    connection.process_data_events(time_limit=0)
                    if self.on_tick is not None:
                        self.on_tick()
            except Exception:  # noqa: BLE001 - reported by the owner's next call
                pass
            finally:
                self.lock.release()

    def close(self) -> None:
        self._stop.set()
        with self.lock:
            connection, self._connection = self._connection, None
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - closing must not mask the real error
                    pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        self._stop = threading.Event()


def _properties_for(message: OutgoingMessage, publish_id: str, user: str):
    """The AMQP properties of one publish.

    A message read from RabbitMQ goes out as it was dead-lettered: every property, every header as
    pika read it (types kept), minus the broker's death bookkeeping and the old publish id, plus its
    new publish id and `replayed-from`. Where an attempt policy re-encoded the event, its new
    attempt and event id replace the old header values (the message_id too, where it was the event
    id). A user_id other than the publishing user is left out: RabbitMQ would refuse the publish (it
    vouches for who published). Anything else (an emitted event, a message from another broker type)
    is a persistent JSON message.
    """
    import pika

    from .base import HEADER_REPLAYED_FROM

    origin = message.origin
    if origin is None or origin.broker_type != "rabbitmq":
        return _emitted_properties()(
            delivery_mode=2,
            content_type="application/json",
            message_id=message.event_id,
            headers={**message.headers, PUBLISH_ID: publish_id},
        )
    properties = dict(origin.properties)
    headers = {k: v for k, v in origin.headers if k not in DEATH_HEADERS and k != PUBLISH_ID}
    for key in (HEADER_ATTEMPT, HEADER_EVENT_ID):
        new = message.headers.get(key)
        old = headers.get(key)
        if new is None or old is None or _text(old) == new:
            continue
        if key == HEADER_EVENT_ID and properties.get("message_id") == _text(old):
            properties["message_id"] = new
        headers[key] = (
            int(new)
            if isinstance(old, int) and not isinstance(old, bool) and new.isdigit()
            else new
        )
    if HEADER_REPLAYED_FROM in message.headers:
        headers[HEADER_REPLAYED_FROM] = message.headers[HEADER_REPLAYED_FROM]
    headers[PUBLISH_ID] = publish_id
    if properties.get("user_id") not in (None, user):
        del properties["user_id"]
    return pika.BasicProperties(**properties, headers=headers)


_EMITTED_PROPERTIES: Any = None


def _emitted_properties() -> Any:
    """pika.BasicProperties for an emitted event (content type, text headers, delivery mode, message
    id), encoded in one pass: pika's generic encoder tests all 14 properties and goes through four
    calls per header, a third of the time a bulk emit spends in Python. The bytes are pika's (a test
    compares them); anything unexpected (a value that is not text, a short string over 255 bytes)
    takes pika's own path."""
    global _EMITTED_PROPERTIES
    if _EMITTED_PROPERTIES is not None:
        return _EMITTED_PROPERTIES
    import struct

    import pika

    flags = struct.pack(
        ">H",
        pika.BasicProperties.FLAG_CONTENT_TYPE
        | pika.BasicProperties.FLAG_HEADERS
        | pika.BasicProperties.FLAG_DELIVERY_MODE
        | pika.BasicProperties.FLAG_MESSAGE_ID,
    )
    pack_long, pack_value = struct.Struct(">I").pack, struct.Struct(">cI").pack
    plain = (
        "content_encoding",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "timestamp",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    )

    class EmittedProperties(pika.BasicProperties):
        def encode(self) -> list[bytes]:
            try:
                if any(getattr(self, name) is not None for name in plain):
                    raise ValueError
                content_type, message_id = self.content_type.encode(), self.message_id.encode()
                table: list[bytes] = []
                for key, value in self.headers.items():
                    raw_key, raw = key.encode(), value.encode()
                    if len(raw_key) > 255:
                        raise ValueError
                    table += (bytes((len(raw_key),)), raw_key, pack_value(b"S", len(raw)), raw)
                if len(content_type) > 255 or len(message_id) > 255:
                    raise ValueError
                encoded_table = b"".join(table)
                return [
                    flags,
                    bytes((len(content_type),)),
                    content_type,
                    pack_long(len(encoded_table)),
                    encoded_table,
                    bytes((self.delivery_mode,)),
                    bytes((len(message_id),)),
                    message_id,
                ]
            except (AttributeError, TypeError, ValueError):
                return super().encode()

    _EMITTED_PROPERTIES = EmittedProperties
    return EmittedProperties


class _RabbitPending(PendingPublish):
    """A batch published on `channel` whose confirms may still be on their way."""

    def __init__(
        self,
        broker: RabbitMqBroker,
        channel: _ConfirmingChannel,
        messages: Sequence[OutgoingMessage],
        what: str,
    ) -> None:
        super().__init__(messages)
        self.broker = broker
        self.what = what  # for errors: "publish to <exchange>"
        self.channel = channel
        self.tags: list[int] = []  # delivery tags of the messages handed to the socket, in order
        self.publish_ids: list[str] = []
        self._deliveries: list[Delivery] | None = None

    def result(self) -> list[Delivery]:
        if self._deliveries is None:
            self._deliveries = self.broker._settle(self)
        return self._deliveries


class _ConfirmingChannel:
    """Publisher confirms, pipelined: publish many, then wait for their acks/nacks as they come.

    Uses the asynchronous channel under pika's BlockingChannel, because BlockingChannel's own
    confirm mode waits for each message's confirm before publishing the next. Confirms and returns
    are recorded by callbacks, whichever thread reads the socket (the owner or the heartbeat thread,
    each holding the connection's lock); each batch takes its own answers out with `take`.
    """

    def __init__(self, blocking_channel) -> None:
        self.blocking = blocking_channel
        self.impl = blocking_channel._impl
        self.connection = blocking_channel.connection
        self.next_tag = 1
        # published, unconfirmed -> failure seen in a basic.return
        self.pending: dict[int, str | None] = {}
        self.settled: dict[int, str | None] = {}  # confirmed -> None (ok) or why it failed
        # unique per publish: which publish a basic.return is about
        self.tag_by_publish_id: dict[str, int] = {}
        self.closed_reason: Exception | None = None
        self.impl.confirm_delivery(self._on_confirm)
        self.impl.add_on_return_callback(self._on_return)
        self.impl.add_on_close_callback(self._on_close)
        self.connection.process_data_events(time_limit=0)

    @property
    def is_closed(self) -> bool:
        return self.blocking.is_closed

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties, publish_id: str
    ) -> int:
        if self.closed_reason is not None:
            raise self.closed_reason  # closed by the broker: nothing more goes out on it
        tag = self.next_tag
        self.impl.basic_publish(exchange, routing_key, body, properties=properties, mandatory=True)
        self.next_tag += 1
        self.pending[tag] = None
        self.tag_by_publish_id[publish_id] = tag
        return tag

    def poll(self, time_limit: float) -> None:
        """Push what is written onto the socket and read what came (confirms, returns); raises why
        the broker closed the channel, since no confirm will come on a closed channel."""
        self.connection.process_data_events(time_limit=time_limit)
        if self.closed_reason is not None:
            raise self.closed_reason

    def _on_return(self, _channel, method, properties, _body) -> None:
        """basic.return comes before the basic.ack of the same message; its headers
        name the publish."""
        publish_id = _text((properties.headers or {}).get(PUBLISH_ID, ""))
        tag = self.tag_by_publish_id.get(publish_id)
        if tag in self.pending and self.pending[tag] is None:
            self.pending[tag] = (
                f"unroutable: {method.reply_code} {method.reply_text} "
                f"(no queue bound for routing key {method.routing_key!r})"
            )

    def _on_confirm(self, frame) -> None:
        method = frame.method
        failure = "nacked by the broker" if type(method).__name__ == "Nack" else None
        pending = self.pending
        if method.multiple:
            tags = []
            for tag in pending:  # insertion order is tag order
                if tag > method.delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [method.delivery_tag] if method.delivery_tag in pending else []
        settled = self.settled
        for tag in tags:
            settled[tag] = failure or pending.pop(tag)

    def _on_close(self, _channel, reason: Exception) -> None:
        """The broker closed the channel (403 no write permission, 404 exchange deleted...)."""
        self.closed_reason = reason

    def unsettled(self, tags: list[int]) -> bool:
        """Is any of these still waiting for its confirm? (Confirms come in tag order: look
        from the end.)"""
        pending = self.pending
        return any(tag in pending for tag in reversed(tags))

    def take(self, tags: list[int], publish_ids: list[str]) -> dict[int, str | None]:
        """The answers of one batch (tag -> None or why it failed), removed from the books; a tag
        without an answer is given up (a late confirm for it is ignored)."""
        settled, pending, by_id = self.settled, self.pending, self.tag_by_publish_id
        outcome = {}
        for tag in tags:
            if tag in settled:
                outcome[tag] = settled.pop(tag)
            else:
                pending.pop(tag, None)
        for publish_id in publish_ids:
            by_id.pop(publish_id, None)
        return outcome


class RabbitQueueReader(DeadLetterReader):
    """Reads up to the messages present at open, on a connection of its own; acks what was confirmed
    elsewhere and hands everything else back, in place.

    Each receive() consumes with a prefetch of what it may take (basic.qos per consumer, so what
    this channel already holds does not count) and cancels its consumer before returning: the
    messages stream in one round trip instead of one basic.get each, and between calls nothing is
    delivered to us, so a slow (paced) caller holds only what it was handed. A queue that delivers
    nothing to a consumer while it has messages ready (single active consumer taken by another app)
    is read with basic.get instead.

    A message passed over (not selected, beyond --limit, or refused by the destination) stays held,
    so that this run does not read it again; but a channel may hold a delivery only for the server's
    consumer_timeout. So the keeper thread hands passed-over messages back (nack, requeue: to their
    original place) once the oldest has been held `hold_seconds`, and reading passes over them again
    when they come round: each is recognised by a digest of its body and properties (identical
    messages are interchangeable) and held again without being counted or returned twice.
    """

    # receive() could run again before the last batch is settled (a message handed out stays held
    # until acked or released, never handed out twice; the bound counts what was handed out), but
    # messages read ahead sit unacknowledged for window x batch / --rate in a paced replay, which
    # passes the server's consumer_timeout (the channel is closed): kept at one batch in flight
    # until a paced replay reads no further ahead than it sends. Consuming with a prefetch is most
    # of the gain (measured: ~10% more here).
    receive_ahead = False

    def __init__(self, broker: RabbitMqBroker, queue: str) -> None:
        self.broker = broker
        self.queue = queue
        self.source_label = f"{broker.name}:{queue}"
        self.identity = broker.identity(queue)
        self._hold_seconds = broker.settings.hold_seconds
        self._link = _Link(broker._open_connection, _keeper_interval(broker.settings))
        self._bound, _ = broker._queue_state(queue)
        self._taken = 0  # distinct messages handed out, up to the bound
        # delivery tag -> digest (or what it is computed from), for every delivery held
        self._digests: dict[int, str | tuple[Any, bytes]] = {}
        # delivery tag -> when read, for the held deliveries passed over
        self._passed: dict[int, float] = {}
        # handed back: pass over them again when they come round
        self._returning: Counter[str] = Counter()
        self._strays = 0  # messages read beyond the bound while looking for those handed back
        self._prefetch = 0  # the channel's basic.qos for its next consumer
        self._by_get = False  # consuming delivers nothing here: one basic.get per message instead
        with self._io(f"queue {queue!r}"):
            self.channel = self._link.connection().channel()
        self._link.on_tick = self._hand_back_if_due

    @contextmanager
    def _io(self, what: str) -> Iterator[None]:
        with self._link.lock, self.broker._errors(what):
            yield

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        with self._io(f"read {self.queue!r}"):
            self._hand_back_if_due()
            while len(out) < max_messages and self._more_to_read():
                if not (
                    self._read_by_get(max_messages, out)
                    if self._by_get
                    else self._read_by_consume(max_messages, out)
                ):
                    break
        return out

    def _read_by_consume(self, max_messages: int, out: list[ReceivedMessage]) -> bool:
        """One consumer for as many deliveries as this call may take, then cancelled: the server
        streams them (one round trip for the lot, not one per message) and nothing is pushed to us
        between calls, so a slow caller holds no more than it was handed. False: the queue has
        nothing more for us."""
        waiting = sum(self._returning.values())
        wanted = max(0, min(max_messages - len(out), self._bound - self._taken)) + waiting
        ready = self.channel.queue_declare(self.queue, passive=True).method.message_count
        if ready == 0:
            self._returning.clear()  # handed back, then taken by someone else: nothing to wait for
            return False
        expect = max(1, min(wanted, ready, 65535))  # basic.qos's prefetch count is 16 bits
        if expect != self._prefetch:
            # per consumer: the messages held by earlier consumers of this channel do not
            # count against it
            self.channel.basic_qos(prefetch_count=expect)
            self._prefetch = expect
        deliveries: list[tuple[Any, Any, bytes]] = []
        tag = self.channel.basic_consume(
            self.queue, lambda _c, m, p, b: deliveries.append((m, p, b))
        )
        connection = self._link.connection()
        last = time.monotonic()
        seen, idle = 0, CONSUME_FIRST_SECONDS
        while len(deliveries) < expect:
            connection.process_data_events(time_limit=0.001)
            if len(deliveries) > seen:
                seen, last, idle = len(deliveries), time.monotonic(), CONSUME_IDLE_SECONDS
            elif time.monotonic() - last > idle:
                break  # fewer than were ready: another consumer took some
        # what arrives before cancel-ok and was not handed to the callback, pika
        # rejects: back in place
        self.channel.basic_cancel(tag)
        if not deliveries:
            if not self.channel.queue_declare(self.queue, passive=True).method.message_count:
                self._returning.clear()  # another reader took what was ready
                return False
            # ready, yet nothing delivered (a single-active-consumer queue, a consumer of higher
            # priority): read one at a time for the rest of this run, as a plain basic.get reader
            self._by_get = True
            return True
        handed_back = [
            self._take(method, properties, body, max_messages, out)
            for method, properties, body in deliveries
        ]
        if any(handed_back):
            # the nacks of what this call could not take, sent now
            connection.process_data_events(time_limit=0)
        return True

    def _read_by_get(self, max_messages: int, out: list[ReceivedMessage]) -> bool:
        method, properties, body = self.channel.basic_get(self.queue, auto_ack=False)
        if method is None:
            self._returning.clear()  # handed back, then taken by someone else: nothing to wait for
            return False
        self._take(method, properties, body, max_messages, out)
        return True

    def _take(
        self, method, properties, body: bytes, max_messages: int, out: list[ReceivedMessage]
    ) -> bool:
        """One delivery: handed out, passed over again (one we handed back), or not this run's; True
        when it was more than this call may hand out and goes back in place (a nack still
        to be sent)."""
        tag = method.delivery_tag
        # the digest is computed only when needed (to recognise one we handed back, or
        # to hand one back)
        digest: str | tuple[Any, bytes] = (properties, body)
        if self._returning:
            digest = _digest(properties, body)
            # one we handed back: already examined, passed over again
            if self._returning[digest] > 0:
                self._returning[digest] -= 1
                if not self._returning[digest]:
                    del self._returning[digest]
                self._digests[tag] = digest
                self._passed[tag] = time.monotonic()
                return False
        if self._taken >= self._bound:  # arrived after we opened: not this run's, left in place
            self._digests[tag] = digest
            self._strays += 1
            self._passed[tag] = time.monotonic()
            return False
        if len(out) >= max_messages:
            # more than this call may hand out (handed-back messages did not come round): back in
            # place, unread, for the next call
            self.channel._impl.basic_nack(tag, multiple=False, requeue=True)
            return True
        self._digests[tag] = digest
        self._taken += 1
        out.append(_received(method, properties, body))
        return False

    def _more_to_read(self) -> bool:
        if self._taken < self._bound:
            return True
        waiting = sum(self._returning.values())
        return waiting > 0 and self._strays <= waiting

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        with self._io(f"ack on {self.queue!r}"):
            # pika's BlockingChannel reads the socket after every basic.ack (a poll per message):
            # the channel under it only writes them, and one push below sends them all
            send_ack = self.channel._impl.basic_ack
            for message in messages:
                send_ack(message.handle)
                self._digests.pop(message.handle, None)
            # basic.ack is only buffered by pika: push it onto the socket now, before the journal
            # forgets the message, or a crash right after would requeue (and replay
            # again) what was done
            self._link.connection().process_data_events(time_limit=0)

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Held, so that this run does not read them again; handed back in
        place within hold_seconds."""
        with self._link.lock:
            now = time.monotonic()
            for message in messages:
                self._passed.setdefault(message.handle, now)

    def _hand_back_if_due(self) -> None:
        """Requeue the passed-over messages before the oldest reaches hold_seconds
        (consumer_timeout)."""
        with self._link.lock:
            if (
                not self._passed
                or min(self._passed.values()) > time.monotonic() - self._hold_seconds
            ):
                return
            if not self.channel.is_open:
                return
            for tag in sorted(self._passed):
                # pushed below, all at once
                self.channel._impl.basic_nack(tag, multiple=False, requeue=True)
                digest = self._digests.pop(tag)
                self._returning[digest if isinstance(digest, str) else _digest(*digest)] += 1
            self._passed.clear()
            self._strays = 0
            self._link.connection().process_data_events(time_limit=0)

    def held_elsewhere(self) -> tuple[int, float | None] | None:
        """None: RabbitMQ cannot tell over AMQP. queue.declare-ok carries only the ready count and
        the number of consumers; how many messages other connections hold unacknowledged is known
        only to the management API or rabbitmqctl, which wfbus does not use. Nor is there an
        SQS-like window to report: a killed run's messages come back when its connection closes (at
        once when the process dies, within the heartbeat timeout when its host vanishes), and a live
        consumer holds its messages until it acks."""
        return None

    def close(self) -> None:
        self._link.on_tick = None
        try:
            if self.channel.is_open:
                with self._io(f"close channel on {self.queue!r}"):
                    # hand back everything still held, then one synchronous call on the same channel:
                    # the broker handles a channel's commands in order, so once it answers, the
                    # messages are back in the queue and a depth read right after counts them
                    # (a bare channel.close requeues them a moment after its answer)
                    self.channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
                    self.channel.queue_declare(self.queue, passive=True)
                    self.channel.close()
        finally:
            self._link.close()


def _certificate_error(exc: BaseException) -> str | None:
    """pika wraps the ssl error a few levels deep (AMQPConnectionError -> args ->
    SSLCertVerificationError)."""
    seen: list[BaseException] = [exc]
    while seen:
        current = seen.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        seen.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        seen.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


class _Float32(float):
    """A header value sent as a 32-bit float ('f'): written back as one."""


class _RawLongString(bytes):
    """A long string ('S') that is not UTF-8 (pika gives bytes): written back as a long
    string, not bytes."""


_codec_installed = False


def _install_codec() -> None:
    """Teach pika's field-table codec floats, so a header a Java or Node publisher sent as 0.25 is
    replayed as 0.25: pika reads 'f' and 'd' values as integers (0.25 -> 0) and refuses to write a
    float. Also keeps a non-UTF-8 long string a long string. pika looks both functions up
    at call time."""
    global _codec_installed
    if _codec_installed:
        return
    import struct

    from pika import data

    decode, encode = data.decode_value, data.encode_value

    def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
        kind = encoded[offset : offset + 1]
        if kind == b"f":
            return _Float32(struct.unpack_from(">f", encoded, offset + 1)[0]), offset + 5
        if kind == b"d":
            return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
        value, end = decode(encoded, offset)
        if kind == b"S" and isinstance(value, bytes):
            value = _RawLongString(value)
        return value, end

    def encode_value(pieces: list[bytes], value: Any) -> int:
        # the common case (every wfbus header): what pika writes, without its detours
        if type(value) is str:
            raw = value.encode("utf-8")
            pieces.append(struct.pack(">cI", b"S", len(raw)))
            pieces.append(raw)
            return 5 + len(raw)
        if isinstance(value, _Float32):
            pieces.append(struct.pack(">cf", b"f", value))
            return 5
        if isinstance(value, float):
            pieces.append(struct.pack(">cd", b"d", value))
            return 9
        if isinstance(value, _RawLongString):
            pieces.append(struct.pack(">cI", b"S", len(value)))
            pieces.append(bytes(value))
            return 5 + len(value)
        return encode(pieces, value)

    data.decode_value, data.encode_value = decode_value, encode_value
    _coalesce_plain_writes()
    _codec_installed = True


COALESCE_BYTES = 128 * 1024


def _coalesce_plain_writes() -> None:
    """One send() per burst of frames instead of one per frame.

    pika hands each frame (a publish is three: method, header, body) to the socket in its own
    send(): three system calls per message, the largest cost of a bulk publish. Joining the queued
    frames into chunks of up to 128 KiB before pika sends them writes the same bytes in the same
    order. Plain TCP only: an SSL write that must be retried has to be retried with the same buffer,
    so TLS is left as is.
    """
    from pika.adapters.utils import io_services_utils as io

    transport = io._AsyncPlaintextTransport
    if getattr(transport, "_wfbus_coalesced", False):
        return
    produce = io._AsyncTransportBase._produce

    def coalescing_produce(self) -> None:
        buffers = self._tx_buffers
        if len(buffers) > 1:
            joined, pieces, size = [], [], 0
            for chunk in buffers:
                pieces.append(chunk)
                size += len(chunk)
                if size >= COALESCE_BYTES:
                    joined.append(b"".join(pieces))
                    pieces, size = [], 0
            if pieces:
                joined.append(b"".join(pieces))
            buffers.clear()
            buffers.extend(joined)
        produce(self)

    transport._produce = coalescing_produce
    transport._wfbus_coalesced = True


def _digest(properties, body: bytes) -> str:
    """Names a message's content (body and every property): two reads of one
    message digest alike."""
    described = repr(sorted((k, v) for k, v in vars(properties).items() if v is not None))
    return hashlib.sha256(described.encode("utf-8", "surrogatepass") + b"\0" + body).hexdigest()


def _received(method, properties, body: bytes) -> ReceivedMessage:
    raw = dict(properties.headers or {})
    deaths = raw.get("x-death") or []
    publish_id = _text(raw.pop(PUBLISH_ID, "")) or None
    headers = {k: _text(v) for k, v in raw.items() if k not in DEATH_HEADERS}
    reason = routing_key = ""
    death_count = 0
    if deaths:
        first = deaths[0]
        reason = _text(first.get("reason", ""))
        keys = first.get("routing-keys") or []
        routing_key = _text(keys[0]) if keys else ""
        death_count = sum(int(d.get("count", 1)) for d in deaths)
        headers["death-count"] = str(death_count)
        headers["death-reason"] = reason
    return ReceivedMessage(
        body=body,
        headers=headers,
        handle=method.delivery_tag,
        message_id=properties.message_id or "",
        route=routing_key,
        dead_letter_reason=reason,
        redelivered=bool(method.redelivered),
        # a message shovelled back by hand keeps its publish id but dies once more: the count tells
        # them apart. Without a publish id the message has no journal key: its message_id is an
        # application's, not ours
        arrival_id=f"{publish_id}/{death_count}" if publish_id else None,
        origin=Origin(
            "rabbitmq",
            headers=tuple((properties.headers or {}).items()),
            properties={
                name: getattr(properties, name)
                for name in PROPERTY_NAMES
                if getattr(properties, name) is not None
            },
        ),
    )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

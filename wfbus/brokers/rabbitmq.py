"""RabbitMQ (pika): persistent, mandatory, pipelined-confirm emit; depth; in-place peek; DLQ replay.

Publishing keeps many messages in flight and counts confirms as they arrive (one round trip per
batch, not per message); a basic.return (unroutable, `mandatory`) or a nack fails that event.
Peek and replay hold messages unacknowledged and hand back what they do not take by closing the
channel, which RabbitMQ requeues in their original positions.
"""

from __future__ import annotations

import os
import ssl
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import Field

from ..errors import BrokerUnavailable, ConfigError
from ..redact import url_password, url_without_password
from .base import (
    Capabilities,
    Broker,
    BrokerSettings,
    DeadLetterReader,
    Delivery,
    OutgoingMessage,
    QueueDepth,
    ReceivedMessage,
)

PUBLISH_ID = "wfbus-publish-id"  # unique per publish: with the death count, names one arrival in a queue
DEATH_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                 "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


class RabbitMqSettings(BrokerSettings):
    type: str = "rabbitmq"
    url: str = "amqp://guest:guest@localhost:5672/%2F"
    exchange: str = "workflow-events"
    routing_key: str = "{topic}"
    queue: str | None = None
    dead_letter_queue: str | None = None
    declare: bool = False  # may wfbus declare the exchange? Off: never create topology in production silently
    heartbeat: int = Field(30, ge=0)
    timeout_seconds: float = Field(10, gt=0)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    def secret_values(self) -> list[str]:
        password = url_password(self.url)
        return [password] if password else []

    def target(self) -> str:
        return f"{url_without_password(self.url)} exchange {self.exchange}"

    def warnings(self) -> list[str]:
        if self.url.startswith("amqps://") and not self.verify:
            return ["verify: false turns off TLS certificate verification: anyone on the path can read and "
                    "change the traffic"]
        return []


class RabbitMqBroker(Broker):
    settings_model = RabbitMqSettings
    publish_batch_size = 2000
    implements = Capabilities(ordering="per-queue")
    settings: RabbitMqSettings

    def __init__(self, name, settings, base_dir) -> None:
        super().__init__(name, settings, base_dir)
        self._connection = None
        self._publish_channel = None
        self._exchange_checked = False
        self._lost: BrokerUnavailable | None = None
        self._run_id = os.urandom(8).hex()
        self._published = 0

    # -- connection --------------------------------------------------------------------------
    def _parameters(self):
        import pika

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
                context.load_cert_chain(self.resolve_path(s.cert_file), self.resolve_path(s.key_file))
            if not s.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            params.ssl_options = pika.SSLOptions(context, params.host)
        return params

    @property
    def connection(self):
        if self._connection is None or self._connection.is_closed:
            import pika

            with self._amqp("connect"):
                self._connection = pika.BlockingConnection(self._parameters())
        return self._connection

    @contextmanager
    def _amqp(self, what: str) -> Iterator[None]:
        import pika.exceptions as px

        where = url_without_password(self.settings.url)
        try:
            yield
        except px.ProbableAuthenticationError:
            raise BrokerUnavailable(f"{self.name}: {what}: authentication failed at {where}",
                                    hint="check the user and password in the url") from None
        except px.ProbableAccessDeniedError:
            raise BrokerUnavailable(f"{self.name}: {what}: access to the virtual host refused at {where}",
                                    hint="check the vhost in the url and the user's permissions") from None
        except px.ChannelClosedByBroker as exc:
            hint = {404: "create it, or fix its name in the config", 403: "the user lacks permission for it"}.get(
                exc.reply_code, "see the broker's log")
            raise BrokerUnavailable(f"{self.name}: {what}: {exc.reply_code} {exc.reply_text}", hint=hint) from None
        except (px.AMQPConnectionError, px.AMQPChannelError, px.StreamLostError, OSError) as exc:
            untrusted = _certificate_error(exc)
            if untrusted:
                raise BrokerUnavailable(f"{self.name}: {what}: the TLS certificate of {where} is not trusted: "
                                        f"{untrusted}",
                                        hint="set ca_file to the CA that signed the broker's certificate "
                                             "(verify: false turns the check off, and is unsafe)") from None
            raise BrokerUnavailable(f"{self.name}: {what}: cannot reach RabbitMQ at {where}: "
                                    f"{type(exc).__name__} {exc}".rstrip(),
                                    hint="check the url (host, port, amqp/amqps) and that the broker is up") from None

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real error
                pass
        self._connection = None
        self._publish_channel = None

    # -- publish -----------------------------------------------------------------------------
    def describe_destination(self, *, dead_letter: bool = False) -> str:
        if dead_letter:
            return f"queue {self._require_dlq()}"
        return f"exchange {self.settings.exchange}"

    def _require_dlq(self) -> str:
        if not self.settings.dead_letter_queue:
            raise ConfigError(f"{self.name}: no dead_letter_queue configured",
                              hint=f"set brokers.{self.name}.dead_letter_queue in the config")
        return self.settings.dead_letter_queue

    def _require_queue(self) -> str:
        if not self.settings.queue:
            raise ConfigError(f"{self.name}: no queue configured", hint=f"set brokers.{self.name}.queue in the config")
        return self.settings.queue

    def _channel_for_publish(self):
        if self._publish_channel is None or self._publish_channel.is_closed:
            with self._amqp("open channel"):
                channel = self.connection.channel()
            if not self._exchange_checked:
                with self._amqp(f"exchange {self.settings.exchange!r}"):
                    channel.exchange_declare(self.settings.exchange, "topic", durable=True,
                                             passive=not self.settings.declare)
                self._exchange_checked = True
            self._publish_channel = _ConfirmingChannel(channel)
        return self._publish_channel

    def publish(self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False) -> list[Delivery]:
        import pika

        channel = self._channel_for_publish()
        if dead_letter:
            exchange, queue = "", self._require_dlq()
            routes = [queue] * len(messages)
        else:
            exchange = self.settings.exchange
            routes = [m.route or self.settings.routing_key.format(topic=m.topic, urn=m.key) for m in messages]
        if self._lost is not None:
            raise self._lost
        published: list[int] = []
        try:
            with self._amqp(f"publish to {exchange or 'queue'}"):
                for message, route in zip(messages, routes):
                    self._published += 1
                    properties = pika.BasicProperties(
                        delivery_mode=2, content_type="application/json", message_id=message.event_id,
                        headers={**message.headers, PUBLISH_ID: f"{self._run_id}-{self._published}"},
                    )
                    published.append(channel.publish(exchange, route, message.body, properties))
                outcome = channel.wait(published, timeout=self.settings.timeout_seconds * 3)
        except BrokerUnavailable as exc:
            # The connection died mid-batch: what was confirmed stays confirmed, the rest failed;
            # the next batch is refused at once instead of waiting for timeouts.
            self._lost = exc
            settled = channel.settled
            if not any(tag in settled for tag in published):
                raise  # nothing of this batch was confirmed: the broker is gone or refuses us (exit 5)
            reason = f"not confirmed: {exc.message}"
            deliveries = []
            for index, message in enumerate(messages):
                tag = published[index] if index < len(published) else None
                confirmed = tag is not None and tag in settled
                deliveries.append(Delivery(message, settled.pop(tag) if confirmed else reason))
            return deliveries
        return [Delivery(m, outcome.get(tag)) for m, tag in zip(messages, published)]

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
        for queue, role in ((self.settings.queue, "main"), (self.settings.dead_letter_queue, "dead-letter")):
            if queue:
                ready, consumers = self._queue_state(queue)
                rows.append(QueueDepth(self.name, queue, role, ready=ready, consumers=consumers))
        if not rows:
            raise ConfigError(f"{self.name}: depth needs `queue` or `dead_letter_queue` in the config")
        return rows

    def peek(self, *, dead_letter: bool, limit: int | None, force: bool = False) -> list[ReceivedMessage]:
        queue = self._require_dlq() if dead_letter else self._require_queue()
        with RabbitQueueReader(self, queue) as reader:  # nothing acked: closing puts every message back in place
            return reader.take(limit)

    def dead_letter_reader(self) -> RabbitQueueReader:
        return RabbitQueueReader(self, self._require_dlq())


class _ConfirmingChannel:
    """Publisher confirms, pipelined: publish many, then wait once for all their acks/nacks.

    Uses the asynchronous channel under pika's BlockingChannel, because BlockingChannel's own
    confirm mode waits for each message's confirm before publishing the next.
    """

    def __init__(self, blocking_channel) -> None:
        self.blocking = blocking_channel
        self.impl = blocking_channel._impl
        self.connection = blocking_channel.connection
        self.next_tag = 1
        self.pending: dict[int, str | None] = {}  # published, unconfirmed -> failure seen in a basic.return
        self.settled: dict[int, str | None] = {}  # confirmed -> None (ok) or why it failed
        self.tags_by_id: dict[str, deque] = {}  # message_id -> its unconfirmed tags, to match returns
        self.closed_reason: Exception | None = None
        self.impl.confirm_delivery(self._on_confirm)
        self.impl.add_on_return_callback(self._on_return)
        self.impl.add_on_close_callback(self._on_close)
        self.connection.process_data_events(time_limit=0)

    @property
    def is_closed(self) -> bool:
        return self.blocking.is_closed

    def publish(self, exchange: str, routing_key: str, body: bytes, properties) -> int:
        tag = self.next_tag
        self.next_tag += 1
        self.pending[tag] = None
        self.tags_by_id.setdefault(properties.message_id, deque()).append(tag)
        self.impl.basic_publish(exchange, routing_key, body, properties=properties, mandatory=True)
        return tag

    def _on_return(self, _channel, method, properties, _body) -> None:
        """basic.return comes before the basic.ack of the same message."""
        for tag in self.tags_by_id.get(properties.message_id, ()):
            if tag in self.pending and self.pending[tag] is None:
                self.pending[tag] = (f"unroutable: {method.reply_code} {method.reply_text} "
                                     f"(no queue bound for routing key {method.routing_key!r})")
                return

    def _on_confirm(self, frame) -> None:
        method = frame.method
        failure = "nacked by the broker" if type(method).__name__ == "Nack" else None
        if method.multiple:
            tags = []
            for tag in self.pending:  # insertion order is tag order
                if tag > method.delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self.pending else []
        for tag in tags:
            self.settled[tag] = failure or self.pending.pop(tag)
            self.pending.pop(tag, None)

    def _on_close(self, _channel, reason: Exception) -> None:
        """The broker closed the channel (403 no write permission, 404 exchange deleted...)."""
        self.closed_reason = reason

    def wait(self, tags: list[int], timeout: float) -> dict[int, str | None]:
        deadline = time.monotonic() + timeout
        while any(tag in self.pending for tag in tags) and time.monotonic() < deadline:
            # pika's process_data_events blocks for its whole time_limit even when the confirms are in:
            # a short limit in a loop returns within a millisecond of the last confirm
            self.connection.process_data_events(time_limit=0.001)
            if self.closed_reason is not None:
                raise self.closed_reason  # no confirm will come on a closed channel: say why, now
        result = {tag: self.settled.pop(tag) if tag in self.settled else "no confirm from RabbitMQ before the timeout"
                  for tag in tags}
        for ids in self.tags_by_id.values():
            while ids and ids[0] in result:
                ids.popleft()
        self.tags_by_id = {k: v for k, v in self.tags_by_id.items() if v}
        return result


class RabbitQueueReader(DeadLetterReader):
    """basic.get up to the messages present at open; acks what was confirmed elsewhere and hands
    everything else back, in place, when it closes the channel."""

    def __init__(self, broker: RabbitMqBroker, queue: str) -> None:
        self.broker = broker
        self.queue = queue
        self.source_label = f"{broker.name}:{queue}"
        self._bound, _ = broker._queue_state(queue)
        self._taken = 0
        with broker._amqp(f"queue {queue!r}"):
            self.channel = broker.connection.channel()

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        out = []
        with self.broker._amqp(f"read {self.queue!r}"):
            while len(out) < max_messages and self._taken < self._bound:
                method, properties, body = self.channel.basic_get(self.queue, auto_ack=False)
                if method is None:
                    break
                self._taken += 1
                out.append(_received(method, properties, body))
        return out

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        with self.broker._amqp(f"ack on {self.queue!r}"):
            for message in messages:
                self.channel.basic_ack(message.handle)
            # basic.ack is only buffered by pika: push it onto the socket now, before the journal forgets
            # the message, or a crash right after would requeue (and replay again) what was done
            self.broker.connection.process_data_events(time_limit=0)

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Held unacked until close: closing the channel requeues them in their original place."""

    def close(self) -> None:
        if self.channel.is_open:
            with self.broker._amqp(f"close channel on {self.queue!r}"):
                self.channel.close()


def _certificate_error(exc: BaseException) -> str | None:
    """pika wraps the ssl error a few levels deep (AMQPConnectionError -> args -> SSLCertVerificationError)."""
    seen: list[BaseException] = [exc]
    while seen:
        current = seen.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        seen.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        seen.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


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
        body=body, headers=headers, handle=method.delivery_tag, message_id=properties.message_id or "",
        route=routing_key, dead_letter_reason=reason, redelivered=bool(method.redelivered),
        # a message shovelled back by hand keeps its publish id but dies once more: the count tells them apart
        arrival_id=f"{publish_id}/{death_count}" if publish_id else None,
    )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

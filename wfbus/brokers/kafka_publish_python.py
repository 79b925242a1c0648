"""Publishing with kafka-python (`driver: kafka-python`): the pure-Python fallback.

A batch is handed to the producer (`send` per record, which returns a future) and its answer is read
later from those futures only, so up to `KafkaBroker.pipeline_window` batches are in flight. Order
per partition across batches holds because the producer is idempotent (acks=all, at most 5 requests
in flight per connection): a retried batch can neither overtake nor duplicate an earlier one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BrokerUnavailable, ConfigError
from .base import Delivery, OutgoingMessage, PendingPublish
from .kafka_outcome import UNANSWERED, Outcome, deliveries_for

if TYPE_CHECKING:
    from .kafka import KafkaBroker

# measured on the project machine (issue 14): linger 20 ms and large batches make kafka-python send
# few, full requests; 512 KiB stays below a broker's default message.max.bytes (1 MiB + 12) with
# room for the batch header, so a full batch is never refused as too large
LINGER_MS = 20
BATCH_BYTES = 512 * 1024


class KafkaPythonPublisher:
    """The kafka-python producer of one broker, created at the first publish."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self._producer: Any = None
        self._known_topics: set[str] = set()
        self._limits: dict[str, int | None] = {}  # topic -> max.message.bytes set on the topic

    @property
    def producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            s = self.broker.settings
            try:
                self._producer = self._new_producer(KafkaProducer)
            except RuntimeError as exc:  # "Libraries for lz4 compression codec not found"
                raise ConfigError(
                    f"{self.broker.name}: compression_type {s.compression_type}: {exc}",
                    hint=f"install the codec's Python package or change brokers.{self.broker.name}"
                    ".compression_type",
                ) from None
        return self._producer

    def _new_producer(self, KafkaProducer: Any) -> Any:  # noqa: N803 - the driver's class
        broker, s = self.broker, self.broker.settings
        with broker._kafka("connect"):
            return KafkaProducer(
                **broker._common(),
                acks="all" if s.acks == "all" else int(s.acks),
                enable_idempotence=s.acks == "all",
                compression_type=s.compression_type,
                linger_ms=LINGER_MS,
                batch_size=min(BATCH_BYTES, s.max_request_size),
                max_request_size=s.max_request_size,
                max_in_flight_requests_per_connection=5,  # the most idempotence keeps in order
                max_block_ms=int(s.timeout_seconds * 1000),
                delivery_timeout_ms=int(broker._delivery_timeout() * 1000),
                retries=5,
            )

    def _check_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        import kafka.errors as kx

        broker = self.broker
        try:
            with broker._kafka(f"topic {topic}"):
                partitions = self.producer.partitions_for(topic)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"{broker.name}: topic {topic!r} is not available: {exc.message}",
                hint="create the topic or fix its name; check that the broker is up",
            ) from None
        except kx.KafkaError:
            partitions = None
        if not partitions:
            raise broker._no_topic(topic)
        self._known_topics.add(topic)
        self._limits[topic] = self._topic_limit(topic)

    def _topic_limit(self, topic: str) -> int | None:
        """The topic's max.message.bytes when set on the topic (None: the broker's default, which
        max_request_size already respects, or no permission to read it). kafka-python's idempotent
        producer takes a record the broker refuses as too large as fatal and fails every record
        after it, batches in flight included: such a record is refused here, alone, instead."""
        try:
            from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

            admin = KafkaAdminClient(**self.broker._common())
            try:
                answer = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            finally:
                admin.close()
            value = answer["topic"][topic]["max.message.bytes"]["value"]
            return int(value)
        except Exception:  # noqa: BLE001 - no DescribeConfigs permission, an old broker, a default
            return None

    def submit(self, messages: Sequence[OutgoingMessage], dead_letter: bool) -> PendingPublish:
        import kafka.errors as kx

        from .kafka import record_for

        producer = self.producer
        send = producer.send
        topic_for = self.broker.topic_for
        futures: list[Any] = []
        topics: list[str] = []  # each record's topic, every one checked before anything is sent:
        last_name: str | None = (
            None  # a missing topic mid-batch must not disown records already sent
        )
        for message in messages:
            if message.topic != last_name:  # one lookup per run of one event topic, not per record
                last_name, last_topic = message.topic, topic_for(message.topic, dead_letter)
                self._check_topic(last_topic)
            topics.append(last_topic)
        for message, topic in zip(messages, topics, strict=True):
            key, value, headers = record_for(message)
            limit = self._limits.get(topic)
            if limit is not None and _record_size(key, value, headers) > limit:
                futures.append(
                    kx.MessageSizeTooLargeError(
                        f"the record is larger than {topic}'s max.message.bytes"
                    )
                )
                continue
            try:
                futures.append(send(topic, key=key, value=value, headers=headers))
            except kx.KafkaTimeoutError as exc:
                # no metadata or no buffer space within max_block_ms: every further send would wait
                # as long again, so the rest of the batch is not sent at all
                futures.extend([exc] * (len(messages) - len(futures)))
                break
            except (kx.KafkaError, ValueError, TypeError) as exc:  # e.g. no key nor value: this one
                futures.append(exc)
        return _Pending(self, messages, futures)

    def failed(self) -> bool:
        """kafka-python's idempotent producer takes some refusals of one record
        (MessageSizeTooLarge) as fatal and fails every later record: the next batch then gets
        a fresh producer."""
        manager = getattr(self._producer, "_transaction_manager", None)
        has_fatal_error = getattr(manager, "has_fatal_error", None)
        return bool(has_fatal_error and has_fatal_error())

    def close(self) -> None:
        if self._producer is None:
            return
        import kafka.errors as kx

        producer, self._producer = self._producer, None
        try:
            producer.close(timeout=self.broker.settings.timeout_seconds)
        except kx.KafkaError:
            # kafka-python's close() raises when its flush times out (the broker is gone) and leaves
            # the sender running; what is still buffered was reported as not confirmed: drop it
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
            producer._closed = True  # its __del__ would otherwise try (and fail) to close again


class _Pending(PendingPublish):
    """One batch's futures; `result` waits on them only (later batches keep flowing meanwhile)."""

    def __init__(
        self,
        publisher: KafkaPythonPublisher,
        messages: Sequence[OutgoingMessage],
        futures: list[Any],
    ) -> None:
        super().__init__(messages)
        self.sent_at = time.monotonic()  # its records' delivery timeout runs from here
        self._publisher = publisher
        self._futures = futures
        self._deliveries: list[Delivery] | None = None

    def result(self) -> list[Delivery]:
        if self._deliveries is None:
            self._deliveries = self._read()
        return self._deliveries

    def _read(self) -> list[Delivery]:
        from .kafka import _refusal

        publisher = self._publisher
        broker = publisher.broker
        # measured from when this batch was sent, not from when its answer is read: batches in flight
        # behind one that timed out expire together with it instead of one full timeout after another
        deadline = self.sent_at + broker._delivery_timeout() + broker.settings.timeout_seconds
        if (
            broker._lost is not None
        ):  # an earlier batch found the broker gone: read what is answered
            deadline = min(deadline, time.monotonic() + 1.0)
        outcomes: list[Outcome] = []
        append = outcomes.append
        for future in self._futures:
            if isinstance(future, Exception):
                append((_refusal(future), bool(getattr(future, "retriable", False))))
                continue
            if not future.is_done:  # most are answered by now: wait only for those that are not
                try:
                    future.get(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - the future's own error, or the wait timing out
                    pass
            if not future.is_done:
                append(UNANSWERED)
            elif future.failed():
                error = future.exception
                append((_refusal(error), bool(getattr(error, "retriable", False))))
            else:
                append(None)
        deliveries, trouble = deliveries_for(broker, self.messages, outcomes)
        if not trouble and publisher.failed():
            publisher.close()
        return deliveries


RECORD_BATCH_FRAMING = 61 + 32  # a v2 record batch header, and a record's own varint framing


def _record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, Any]]) -> int:
    """At least the bytes a one-record batch of this record takes on the broker."""
    size = RECORD_BATCH_FRAMING + len(key or b"") + len(value or b"")
    for name, header in headers:
        size += len(name.encode()) + len(header or b"") + 4
    return size

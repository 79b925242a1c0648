"""Apache Kafka (kafka-python): keyed, acks=all idempotent emit; lag-based depth; dead-letter-topic replay.

A topic is a log, not a queue: a replay reads the dead-letter topic with the replay group up to
the end offsets taken when it starts, produces every selected message, waits for every delivery,
and only then commits.  Unselected messages are passed over (committed past), because a log
cannot keep them "in the queue"; a message whose delivery failed blocks the commit of its
partition, so the next replay starts again at it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import BrokerUnavailable, ConfigError
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


class KafkaSettings(BrokerSettings):
    type: str = "kafka"
    bootstrap_servers: list[str]
    topic: str | None = None
    topic_template: str | None = None  # e.g. "wf.{topic}": route by event topic
    dead_letter_topic: str | None = None
    consumer_group: str | None = None  # the application's group whose lag `depth` reports
    replay_group: str = "wfbus-replay"
    acks: Literal["all", "1", "0"] = "all"
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    client_id: str = "wfbus"
    max_request_size: int = Field(1_048_576, gt=0)
    timeout_seconds: float = Field(10, gt=0)

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _one_topic(self) -> KafkaSettings:
        if bool(self.topic) == bool(self.topic_template):
            raise ValueError("give exactly one of topic or topic_template")
        return self

    def secret_values(self) -> list[str]:
        return [self.sasl_password] if self.sasl_password else []

    def target(self) -> str:
        return f"{','.join(self.bootstrap_servers)} topic {self.topic or self.topic_template}"

    def warnings(self) -> list[str]:
        out = []
        if self.security_protocol in ("SSL", "SASL_SSL") and not self.ssl_check_hostname:
            out.append("ssl_check_hostname: false: the broker's certificate is not matched to its host name")
        if self.security_protocol == "SASL_PLAINTEXT" and self.sasl_mechanism in (None, "PLAIN"):
            out.append("SASL PLAIN over PLAINTEXT sends the password unencrypted; use SASL_SSL")
        return out


class KafkaBroker(Broker):
    settings_model = KafkaSettings
    publish_batch_size = 5000
    implements = Capabilities(ordering="per-key", keeps_unselected=False)
    settings: KafkaSettings

    def __init__(self, name, settings, base_dir) -> None:
        super().__init__(name, settings, base_dir)
        self._producer = None
        self._known_topics: set[str] = set()
        self._lost: BrokerUnavailable | None = None  # publishing stopped for the broker's sake

    def _common(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "bootstrap_servers": s.bootstrap_servers,
            "client_id": s.client_id,
            "security_protocol": s.security_protocol,
            "request_timeout_ms": int(s.timeout_seconds * 1000),
            "bootstrap_timeout_ms": int(s.timeout_seconds * 1000),
            "reconnect_backoff_max_ms": 1000,
        }
        if s.security_protocol in ("SSL", "SASL_SSL"):
            config.update(ssl_cafile=self.resolve_path(s.ssl_cafile), ssl_certfile=self.resolve_path(s.ssl_certfile),
                          ssl_keyfile=self.resolve_path(s.ssl_keyfile), ssl_check_hostname=s.ssl_check_hostname)
        if s.security_protocol.startswith("SASL"):
            config.update(sasl_mechanism=s.sasl_mechanism or "PLAIN", sasl_plain_username=s.sasl_username,
                          sasl_plain_password=s.sasl_password)
        return config

    @contextmanager
    def _kafka(self, what: str) -> Iterator[None]:
        import kafka.errors as kx

        unreachable = tuple(getattr(kx, n) for n in ("NoBrokersAvailable", "KafkaConnectionError") if hasattr(kx, n))
        try:
            yield
        except unreachable:
            raise self._unreachable(what) from None
        except (kx.SaslAuthenticationFailedError, kx.AuthorizationError, kx.TopicAuthorizationFailedError,
                kx.GroupAuthorizationFailedError) as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: not allowed: {exc}",
                                    hint="check sasl_username / sasl_password and the ACLs") from None
        except kx.KafkaTimeoutError as exc:
            if "bootstrap" in str(exc):
                raise self._unreachable(what) from None
            raise BrokerUnavailable(f"{self.name}: {what}: timed out: {exc}",
                                    hint="is the broker up, and does the topic exist?") from None
        except kx.CommitFailedError as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: {_refusal(exc)}",
                                    hint="the replay group lost this member (a broker restart or a long pause); "
                                         "run the replay again: what was not committed is read again") from None
        except kx.KafkaError as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: {_refusal(exc)}") from None

    def _unreachable(self, what: str) -> BrokerUnavailable:
        hint = "check bootstrap_servers, the network and security_protocol"
        if self.settings.security_protocol in ("SSL", "SASL_SSL"):
            hint += ("; with TLS, that the broker's certificate is signed by ssl_cafile (or a system CA) "
                     "and names the host")
        return BrokerUnavailable(f"{self.name}: {what}: no Kafka broker reachable at "
                                 f"{','.join(self.settings.bootstrap_servers)}", hint=hint)

    # -- topics ------------------------------------------------------------------------------
    def topic_for(self, topic: str, dead_letter: bool) -> str:
        if dead_letter:
            return self._dead_letter_topic()
        return self.settings.topic or self.settings.topic_template.format(topic=topic)

    def _dead_letter_topic(self) -> str:
        if not self.settings.dead_letter_topic:
            raise ConfigError(f"{self.name}: no dead_letter_topic configured",
                              hint=f"set brokers.{self.name}.dead_letter_topic in the config")
        return self.settings.dead_letter_topic

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        return self._dead_letter_topic() if dead_letter else (self.settings.topic or self.settings.topic_template)

    def message_size_limit(self) -> int | None:
        return self.settings.max_request_size - 512  # record overhead: key, headers, batch header

    def _partitions(self, consumer, topic: str) -> list:
        from kafka import TopicPartition

        with self._kafka(f"topic {topic}"):
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerUnavailable(f"{self.name}: topic {topic!r} does not exist",
                                    hint="create it (kafka-topics.sh --create) or fix the topic name in the config")
        return [TopicPartition(topic, p) for p in sorted(partitions)]

    # -- publish -----------------------------------------------------------------------------
    @property
    def producer(self):
        if self._producer is None:
            from kafka import KafkaProducer

            s = self.settings
            with self._kafka("connect"):
                self._producer = KafkaProducer(
                    **self._common(),
                    acks="all" if s.acks == "all" else int(s.acks),
                    enable_idempotence=s.acks == "all",
                    compression_type=s.compression_type,
                    linger_ms=5,
                    batch_size=256 * 1024,
                    max_request_size=s.max_request_size,
                    max_block_ms=int(s.timeout_seconds * 1000),
                    delivery_timeout_ms=int(self._delivery_timeout() * 1000),
                    retries=5,
                )
        return self._producer

    def _delivery_timeout(self) -> float:
        """Seconds a record may take, retries included, before it counts as not delivered."""
        return self.settings.timeout_seconds * 3 + 5

    def _check_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        import kafka.errors as kx

        try:
            with self._kafka(f"topic {topic}"):
                partitions = self.producer.partitions_for(topic)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"{self.name}: topic {topic!r} is not available: {exc.message}",
                                    hint="create the topic or fix its name; check that the broker is up") from None
        except kx.KafkaError:
            partitions = None
        if not partitions:
            raise BrokerUnavailable(f"{self.name}: topic {topic!r} does not exist",
                                    hint="create it (kafka-topics.sh --create) or fix the topic name in the config")
        self._known_topics.add(topic)

    def publish(self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False) -> list[Delivery]:
        import kafka.errors as kx

        if self._lost is not None:
            raise self._lost
        producer = self.producer
        futures: list[Any] = []
        for message in messages:
            topic = self.topic_for(message.topic, dead_letter)
            self._check_topic(topic)
            try:
                futures.append(producer.send(
                    topic, key=message.key.encode("utf-8"), value=message.body,
                    headers=[(k, v.encode("utf-8")) for k, v in message.headers.items()],
                ))
            except kx.KafkaTimeoutError as exc:
                # no metadata or no buffer space within max_block_ms: every further send would wait
                # as long again, so the rest of the batch is not sent at all
                futures.extend([exc] * (len(messages) - len(futures)))
                break
            except kx.KafkaError as exc:
                futures.append(exc)
        try:
            with self._kafka("flush"):
                producer.flush(timeout=self._delivery_timeout() + self.settings.timeout_seconds)
        except BrokerUnavailable:
            pass  # flush gave up waiting: the futures still say which records were acknowledged
        deliveries = []
        broker_trouble = False  # a connection or timeout failure, as opposed to one event's own fault
        for message, future in zip(messages, futures):
            error = future if isinstance(future, Exception) else None
            if error is None and not future.is_done:
                broker_trouble = True
                deliveries.append(Delivery(message, "no acknowledgement from Kafka before the timeout"))
                continue
            if error is None and future.failed():
                error = future.exception
            if error is None:
                deliveries.append(Delivery(message))
            else:
                broker_trouble = broker_trouble or bool(getattr(error, "retriable", False))
                deliveries.append(Delivery(message, _refusal(error)))
        if broker_trouble:
            # the producer retried for the whole delivery timeout and the broker still did not take
            # these records: stop (exit 5, or 1 after a partial success) instead of waiting out the
            # same timeout batch after batch
            trouble = next(d.error for d in deliveries if not d.ok)
            self._lost = BrokerUnavailable(f"{self.name}: publish: {trouble}",
                                           hint="check that the Kafka broker is up and reachable; rerun with "
                                                "--failed-out to resend what was not confirmed")
            if not any(d.ok for d in deliveries):
                raise self._lost
        return deliveries

    # -- reading -----------------------------------------------------------------------------
    def consumer(self, group: str | None):
        from kafka import KafkaConsumer

        with self._kafka("connect"):
            return KafkaConsumer(
                **self._common(), group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                consumer_timeout_ms=int(self.settings.timeout_seconds * 1000),
                # a killed replay holds its partitions until its session times out: keep that short
                # (6 s is the brokers' default group.min.session.timeout.ms)
                session_timeout_ms=6000, heartbeat_interval_ms=2000,
            )

    def _offsets(self, consumer, partitions: list) -> tuple[dict, dict]:
        with self._kafka("offsets"):
            return consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)

    def _committed(self, consumer, partitions: list) -> dict:
        with self._kafka("committed offsets"):
            return {tp: consumer.committed(tp) for tp in partitions}

    def depth(self) -> list[QueueDepth]:
        rows = []
        if self.settings.topic:
            rows.append(self._lag_row(self.settings.topic, self.settings.consumer_group, "main"))
        if self.settings.dead_letter_topic:
            rows.append(self._lag_row(self.settings.dead_letter_topic, self.settings.replay_group, "dead-letter"))
        return rows

    def _lag_row(self, topic: str, group: str | None, role) -> QueueDepth:
        consumer = self.consumer(group)
        try:
            partitions = self._partitions(consumer, topic)
            begin, end = self._offsets(consumer, partitions)
            committed = self._committed(consumer, partitions) if group else {}
        finally:
            consumer.close()
        per_partition = {}
        for tp in partitions:
            start = committed.get(tp)
            start = begin[tp] if start is None else max(start, begin[tp])
            per_partition[tp.partition] = end[tp] - start
        waiting = sum(per_partition.values())
        return QueueDepth(
            self.name, topic, role, ready=waiting, lag=waiting if group else None,
            detail={"group": group, "end_offsets": {tp.partition: end[tp] for tp in partitions},
                    "lag_by_partition": per_partition},
        )

    def peek(self, *, dead_letter: bool, limit: int | None, force: bool = False) -> list[ReceivedMessage]:
        """Read from the group's position (replay group for the DLQ) without committing."""
        topic = self._dead_letter_topic() if dead_letter else self.describe_destination()
        group = self.settings.replay_group if dead_letter else self.settings.consumer_group
        with KafkaTopicReader(self, topic, group, commit=False) as reader:
            return reader.take(limit, step=500)

    def dead_letter_reader(self) -> KafkaGroupReader:
        return KafkaGroupReader(self, self._dead_letter_topic(), self.settings.replay_group)

    def close(self) -> None:
        if self._producer is not None:
            import kafka.errors as kx

            producer, self._producer = self._producer, None
            try:
                producer.close(timeout=self.settings.timeout_seconds)
            except kx.KafkaError:
                # kafka-python's close() raises when its flush times out (the broker is gone) and leaves
                # the sender running; what is still buffered was reported as not confirmed: drop it
                sender = getattr(producer, "_sender", None)
                if sender is not None:
                    sender.force_close()
                producer._closed = True  # its __del__ would otherwise try (and fail) to close again


_REFUSALS = {  # what the user can act on, for the refusals a producer meets most
    "MessageSizeTooLargeError": "the record is larger than the topic's max.message.bytes",
    "RecordTooLargeError": "the record is larger than the topic's max.message.bytes",
    "InvalidRecordError": "the broker refused the record as invalid (e.g. no key on a compacted topic)",
    "TopicAuthorizationFailedError": "not allowed to write to this topic",
}


def _refusal(error: Exception) -> str:
    """kafka-python's str() of an error the broker answered is only `[Error 10] MessageSizeTooLargeError`."""
    name = type(error).__name__
    if name in _REFUSALS:
        return f"{name}: {_REFUSALS[name]}"
    text = str(error)
    if text.endswith(name) or text.endswith("None"):
        text = (getattr(error, "description", "") or "").split(". ")[0]
    return f"{name}: {text.removeprefix(name + ': ')}".rstrip(": ")


class KafkaTopicReader(DeadLetterReader):
    """Reads every partition of a topic from the group's committed offsets to the end offsets
    taken at open; commits (when asked) only offsets whose messages are all settled."""

    def __init__(self, broker: KafkaBroker, topic: str, group: str | None, *, commit: bool) -> None:
        partitions, begin = self._open(broker, topic, group, commit)
        committed = broker._committed(self.consumer, partitions) if group else {}
        with broker._kafka("assign"):
            self.consumer.assign(partitions)
            for tp in partitions:
                start = committed.get(tp)
                self.consumer.seek(tp, begin[tp] if start is None else max(start, begin[tp]))
        self.remaining = {tp for tp in partitions if self.consumer.position(tp) < self.end[tp]}

    def _open(self, broker: KafkaBroker, topic: str, group: str | None, commit: bool) -> tuple[list, dict]:
        """What every reader starts with: a consumer, the partitions, and the end offsets as of now."""
        self.broker = broker
        self.topic = topic
        self.commit_enabled = commit
        self.source_label = f"{broker.name}:{topic}"
        self.consumer = broker.consumer(group)
        partitions = broker._partitions(self.consumer, topic)
        begin, self.end = broker._offsets(self.consumer, partitions)
        self._buffer: deque = deque()
        self._pending: dict[Any, deque] = {tp: deque() for tp in partitions}  # offsets in order, with state
        self._state: dict[tuple, str] = {}
        self._next: dict[Any, int] = {}  # per partition: the offset after the last record handed out
        return partitions, begin

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        idle_polls = 0
        while len(out) < max_messages and (self._buffer or self.remaining):
            if not self._buffer:
                with self.broker._kafka(f"read {self.topic}"):
                    polled = self.consumer.poll(timeout_ms=500, max_records=max(max_messages, 500))
                for tp, records in polled.items():
                    for record in records:
                        if record.offset < self.end[tp]:
                            self._buffer.append((tp, record))
                    if self.consumer.position(tp) >= self.end[tp]:
                        self.remaining.discard(tp)
                if not polled:
                    idle_polls += 1
                    if idle_polls * 0.5 > self.broker.settings.timeout_seconds:
                        raise BrokerUnavailable(f"{self.broker.name}: no data from {self.topic} before the timeout")
                continue
            tp, record = self._buffer.popleft()
            out.append(self._hold(tp, record))
        return out

    def _hold(self, tp, record) -> ReceivedMessage:
        self._next[tp] = record.offset + 1
        self._pending[tp].append(record.offset)
        self._state[(tp, record.offset)] = "held"
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or [])}
        return ReceivedMessage(
            body=record.value or b"", headers=headers, handle=(tp, record.offset),
            message_id=f"{tp.topic}/{tp.partition}/{record.offset}",
            position_id=f"{tp.topic}/{tp.partition}/{record.offset}",
            extra={"key": (record.key or b"").decode("utf-8", "replace"), "topic": tp.topic},
        )

    def _settle(self, messages: Sequence[ReceivedMessage], state: str) -> None:
        for message in messages:
            self._state[message.handle] = state
        if self.commit_enabled:
            self._commit()

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        self._settle(messages, "done")

    def skip(self, messages: Sequence[ReceivedMessage]) -> None:
        """Not selected: passed over, a log cannot keep them aside."""
        self._settle(messages, "done")

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Failed: block the commit at this offset so the next replay reads it again."""
        self._settle(messages, "blocked")

    def _commit(self, only: Any = None) -> None:
        from kafka.structs import OffsetAndMetadata

        offsets = {}
        for tp, queue in self._pending.items():
            if only is not None and tp not in only:
                continue
            last = None
            while queue and self._state.get((tp, queue[0])) == "done":
                last = queue.popleft()
                self._state.pop((tp, last), None)
            if last is not None:
                offsets[tp] = OffsetAndMetadata(last + 1, "", -1)
        if offsets:
            with self.broker._kafka("commit"):
                self.consumer.commit(offsets)

    def close(self) -> None:
        self.consumer.close(autocommit=False)


class KafkaGroupReader(KafkaTopicReader):
    """The replay reader: a member of the replay group, so several `wfbus replay` processes share
    the dead-letter topic's partitions (the broker is the distributed engine).

    Each member reads its assigned partitions up to the end offsets taken when it started and
    commits only settled offsets; a partition taken away in a rebalance first gets its settled
    offsets committed, and its unsettled messages are read again by the new owner (at worst a
    duplicate, which the replay journal recognises on the same machine).
    """

    IDLE_SECONDS = 6.0  # no partition assigned for this long: the other members hold them all

    def __init__(self, broker: KafkaBroker, topic: str, group: str) -> None:
        from kafka import ConsumerRebalanceListener

        self._open(broker, topic, group, commit=True)
        reader = self

        class _OnRebalance(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):  # noqa: D401 - kafka-python callback
                reader._revoked(set(revoked))

            def on_partitions_assigned(self, assigned):
                pass

        with broker._kafka("join the replay group"):
            self.consumer.subscribe([topic], listener=_OnRebalance())

    def _revoked(self, revoked: set) -> None:
        """Commit what is settled; keep the rest of our bookkeeping, because the partitions often come
        straight back (a single member rejoining after a metadata change). Records handed out already
        are never handed out twice (see `_next`); unsettled ones of a partition that went to another
        member are read again there: a duplicate at worst, never a loss."""
        try:
            self._commit(only=revoked)
        except BrokerUnavailable:
            pass
        self._buffer = deque(item for item in self._buffer if item[0] not in revoked)

    def _unfinished(self) -> set:
        assigned = self.consumer.assignment()
        return {tp for tp in assigned if self.consumer.position(tp) < self.end.get(tp, 0)}

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        idle_since = time.monotonic()
        while len(out) < max_messages:
            if self._buffer:
                tp, record = self._buffer.popleft()
                out.append(self._hold(tp, record))
                continue
            with self.broker._kafka(f"read {self.topic}"):
                polled = self.consumer.poll(timeout_ms=300, max_records=max(max_messages, 500))
                for tp, records in polled.items():
                    handed_out = self._next.get(tp, -1)
                    self._buffer.extend((tp, r) for r in records
                                        if handed_out <= r.offset < self.end.get(tp, 0))
                if self._buffer:
                    idle_since = time.monotonic()
                    continue
                assigned = self.consumer.assignment()
                if assigned and not self._unfinished():
                    break  # every partition of ours is read up to where the DLQ ended at the start
            if not assigned and time.monotonic() - idle_since > self.IDLE_SECONDS:
                break
        return out

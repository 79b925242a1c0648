"""Apache Kafka: keyed, acks=all idempotent emit; lag-based depth; dead-letter-topic replay.

Two drivers (`driver:` in the settings): librdkafka through confluent-kafka
(`kafka_publish_librdkafka`; what `auto`, the default, picks when confluent-kafka is installed) and
kafka-python (`kafka_publish_python`). The driver decides how records are published; reading (peek,
depth, replay, purge) is done with kafka-python for both drivers, so the replay group's commit point
and the replayed-offset ranges in its commit metadata are read and written by one implementation.

A topic is a log, not a queue: a replay reads the dead-letter topic (read_committed) with the replay
group up to the end offsets taken when it starts, produces every selected message, waits for every
delivery, and only then commits.  What a replay does not move (not selected, or failed) stays
dead-lettered: the commit stops at it, and the offsets replayed above it are recorded in the
commit's metadata so that no later replay takes them again (see `KafkaTopicReader`).

Order: per key within a partition. The producer is idempotent (acks=all), so a retried batch
cannot overtake or duplicate an earlier one, and a replay republishes the original record key, so
a key's records land in one partition in their dead-letter order.
"""

from __future__ import annotations

import bisect
import importlib.util
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import BrokerUnavailable, ConfigError, DeliveryFailed
from .base import (
    HEADER_REPLAYED_FROM,
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
)

# the Python package kafka-python needs for each codec (any one of them), and the name to install
_CODECS = {
    "snappy": (("snappy",), "python-snappy"),
    "lz4": (("lz4.frame", "lz4f", "lz4framed"), "lz4"),
    "zstd": (("zstandard",), "zstandard"),
}


def _importable(module: str) -> bool:
    """True when `module` can be imported; nothing is imported (the driver stays unloaded at start-up)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent package is missing
        return False


DRIVERS = ("auto", "librdkafka", "kafka-python")


def librdkafka_installed() -> bool:
    return _importable("confluent_kafka")


class KafkaSettings(BrokerSettings):
    type: str = "kafka"
    # auto: librdkafka (confluent-kafka) when it is installed, else kafka-python
    driver: Literal["auto", "librdkafka", "kafka-python"] = "auto"
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
    # every call to the broker (metadata, offsets, commit, position) waits at most this long; a read
    # that gets no record for this long while records remain below the end offsets taken at
    # the start fails
    timeout_seconds: float = Field(10, gt=0)
    # the first connection to any bootstrap server: bounded apart from delivery and request
    # timeouts, so an unreachable cluster is said in seconds (like SQS and RabbitMQ),
    # not after timeout_seconds
    connect_timeout_seconds: float = Field(2, gt=0)
    # how long a replay waits for the replay group to give it partitions: a rerun right after a
    # killed run waits for the killed member's session to expire (session_timeout_seconds) and the
    # group to rebalance
    join_timeout_seconds: float = Field(60, gt=0)
    # a killed replay holds its partitions this long (the broker's
    # group.min.session.timeout.ms is 6 s)
    session_timeout_seconds: float = Field(6, ge=1)
    # the broker's offset.metadata.max.bytes (default 4096): the room for the replayed-offset ranges
    commit_metadata_max_bytes: int = Field(4096, ge=32)

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        )

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("driver")
    @classmethod
    def _driver_installed(cls, value: str) -> str:
        if value == "librdkafka" and not librdkafka_installed():
            raise ValueError(
                "driver librdkafka needs the Python package confluent-kafka, which is not installed: "
                "`pip install confluent-kafka`, or set driver: kafka-python (or auto)"
            )
        return value

    def resolved_driver(self) -> str:
        """The driver that publishes: `auto` is librdkafka when confluent-kafka is installed."""
        if self.driver == "auto":
            return "librdkafka" if librdkafka_installed() else "kafka-python"
        return self.driver

    @field_validator("compression_type")
    @classmethod
    def _codec_installed(cls, value: str | None) -> str | None:
        """A codec whose library is missing would only fail when the first record is sent (exit 70).
        Also with librdkafka (which brings its own codecs): peek and replay read with kafka-python."""
        if value in _CODECS:
            modules, package = _CODECS[value]
            if not any(_importable(m) for m in modules):
                raise ValueError(
                    f"{value} compression needs the Python package {package}, which is not installed: "
                    f"`pip install {package}`, or use gzip or no compression_type"
                )
        return value

    @model_validator(mode="after")
    def _one_topic(self) -> KafkaSettings:
        if bool(self.topic) == bool(self.topic_template):
            raise ValueError("give exactly one of topic or topic_template")
        if self.topic_template:
            try:
                self.topic_template.format(topic="t")
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ValueError(
                    f"topic_template {self.topic_template!r}: only {{topic}} can be used ({exc!r})"
                ) from None
        return self

    def secret_values(self) -> list[str]:
        return [self.sasl_password] if self.sasl_password else []

    def target(self) -> str:
        return (
            f"{','.join(self.bootstrap_servers)} topic {self.topic or self.topic_template} "
            f"(driver {self.resolved_driver()})"
        )

    def warnings(self) -> list[str]:
        out = []
        if self.security_protocol in ("SSL", "SASL_SSL") and not self.ssl_check_hostname:
            out.append(
                "ssl_check_hostname: false: the broker's certificate is not matched to its host name"
            )
        if self.security_protocol == "SASL_PLAINTEXT" and self.sasl_mechanism in (None, "PLAIN"):
            out.append("SASL PLAIN over PLAINTEXT sends the password unencrypted; use SASL_SSL")
        return out


class KafkaBroker(Broker):
    settings_model = KafkaSettings
    publish_batch_size = 5000
    # batches in flight: the idempotent producer keeps order per partition across
    # them (both drivers)
    pipeline_window = 4
    implements = Capabilities(ordering="per-key", keeps_unselected=True)
    settings: KafkaSettings

    def __init__(self, name, settings, base_dir) -> None:
        super().__init__(name, settings, base_dir)
        self._publisher: Any = None
        self._lost: BrokerUnavailable | None = None  # publishing stopped for the broker's sake

    def _common(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "bootstrap_servers": s.bootstrap_servers,
            "client_id": s.client_id,
            "security_protocol": s.security_protocol,
            "request_timeout_ms": int(s.timeout_seconds * 1000),
            "bootstrap_timeout_ms": int(min(s.connect_timeout_seconds, s.timeout_seconds) * 1000),
            "reconnect_backoff_max_ms": 1000,
        }
        if s.security_protocol in ("SSL", "SASL_SSL"):
            config.update(
                ssl_cafile=self.resolve_path(s.ssl_cafile),
                ssl_certfile=self.resolve_path(s.ssl_certfile),
                ssl_keyfile=self.resolve_path(s.ssl_keyfile),
                ssl_check_hostname=s.ssl_check_hostname,
            )
        if s.security_protocol.startswith("SASL"):
            config.update(
                sasl_mechanism=s.sasl_mechanism or "PLAIN",
                sasl_plain_username=s.sasl_username,
                sasl_plain_password=s.sasl_password,
            )
        return config

    @contextmanager
    def _kafka(self, what: str) -> Iterator[None]:
        import kafka.errors as kx

        unreachable = tuple(
            getattr(kx, n) for n in ("NoBrokersAvailable", "KafkaConnectionError") if hasattr(kx, n)
        )
        try:
            yield
        except unreachable:
            raise self._unreachable(what) from None
        except (
            kx.SaslAuthenticationFailedError,
            kx.AuthorizationError,
            kx.TopicAuthorizationFailedError,
            kx.GroupAuthorizationFailedError,
        ) as exc:
            raise BrokerUnavailable(
                f"{self.name}: {what}: not allowed: {exc}",
                hint="check sasl_username / sasl_password and the ACLs",
            ) from None
        except kx.KafkaTimeoutError as exc:
            if "bootstrap" in str(exc):
                raise self._unreachable(what) from None
            raise BrokerUnavailable(
                f"{self.name}: {what}: timed out: {exc}",
                hint="is the broker up, and does the topic exist?",
            ) from None
        except kx.CommitFailedError as exc:
            raise BrokerUnavailable(
                f"{self.name}: {what}: {_refusal(exc)}",
                hint="the replay group lost this member (a broker restart or a long pause); "
                "run the replay again: what was not committed is read again",
            ) from None
        except kx.KafkaError as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: {_refusal(exc)}") from None

    def _unreachable(self, what: str) -> BrokerUnavailable:
        hint = "check bootstrap_servers, the network and security_protocol"
        if self.settings.security_protocol in ("SSL", "SASL_SSL"):
            hint += (
                "; with TLS, that the broker's certificate is signed by ssl_cafile (or a system CA) "
                "and names the host"
            )
        return BrokerUnavailable(
            f"{self.name}: {what}: no Kafka broker reachable at "
            f"{','.join(self.settings.bootstrap_servers)}",
            hint=hint,
        )

    # -- topics ------------------------------------------------------------------------------
    def topic_for(self, topic: str, dead_letter: bool) -> str:
        if dead_letter:
            return self._dead_letter_topic()
        template = self.settings.topic_template
        assert self.settings.topic or template  # the settings model requires one of the two
        return self.settings.topic or str(template).format(topic=topic)

    def _dead_letter_topic(self) -> str:
        if not self.settings.dead_letter_topic:
            raise ConfigError(
                f"{self.name}: no dead_letter_topic configured",
                hint=f"set brokers.{self.name}.dead_letter_topic in the config",
            )
        return self.settings.dead_letter_topic

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        return (
            self._dead_letter_topic()
            if dead_letter
            else str(self.settings.topic or self.settings.topic_template)
        )

    def destination_identity(self, *, dead_letter: bool = False) -> str:
        """Cluster id and topic id: a recreated topic (same name, new id) is another destination."""
        topic = self.describe_destination(dead_letter=dead_letter)
        fixed = dead_letter or bool(self.settings.topic)
        if self.driver == "librdkafka":  # the publishing client answers: no second client
            cluster_id, topic_id = self.publisher.identity(topic if fixed else None)
            return self._identity_text(cluster_id, topic, topic_id)
        consumer = self.consumer(None)
        try:
            if fixed:
                self._partitions(consumer, topic)  # loads the topic's metadata, its id included
            return self._identity(consumer, topic)
        finally:
            consumer.close()

    def prepare_to_publish(self, *, dead_letter: bool = False) -> None:
        if self.driver == "librdkafka" and (dead_letter or self.settings.topic):
            self.publisher.prepare(self.describe_destination(dead_letter=dead_letter))

    def message_size_limit(self) -> int | None:
        return self.settings.max_request_size - 512  # record overhead: key, headers, batch header

    def _partitions(self, consumer, topic: str) -> list:
        from kafka import TopicPartition

        with self._kafka(f"topic {topic}"):
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerUnavailable(
                f"{self.name}: topic {topic!r} does not exist",
                hint="create it (kafka-topics.sh --create) or fix the topic name in the config",
            )
        return [TopicPartition(topic, p) for p in sorted(partitions)]

    # -- publish -----------------------------------------------------------------------------
    @property
    def driver(self) -> str:
        """The driver that publishes: "librdkafka" or "kafka-python" (`driver: auto` resolved)."""
        return self.settings.resolved_driver()

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            if self.driver == "librdkafka":
                from .kafka_publish_librdkafka import LibrdkafkaPublisher

                self._publisher = LibrdkafkaPublisher(self)
            else:
                from .kafka_publish_python import KafkaPythonPublisher

                self._publisher = KafkaPythonPublisher(self)
        return self._publisher

    def _delivery_timeout(self) -> float:
        """Seconds a record may take, retries included, before it counts as not delivered."""
        return self.settings.timeout_seconds * 3 + 5

    def _no_topic(self, topic: str) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"{self.name}: topic {topic!r} does not exist",
            hint="create it (kafka-topics.sh --create) or fix the topic name in the config",
        )

    def submit(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> PendingPublish:
        """Hand the batch to the driver; its answer comes from that batch's delivery reports only."""
        if self._lost is not None:
            raise self._lost
        if not messages:
            return PendingPublish.answered(messages, [])
        return self.publisher.submit(messages, dead_letter)

    def publish(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> list[Delivery]:
        return self.submit(messages, dead_letter=dead_letter).result()

    # -- reading -----------------------------------------------------------------------------
    def consumer(self, group: str | None, **extra: Any):
        from kafka import KafkaConsumer

        session_ms = int(self.settings.session_timeout_seconds * 1000)
        with self._kafka("connect"):
            return KafkaConsumer(
                **self._common(),
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                consumer_timeout_ms=int(self.settings.timeout_seconds * 1000),
                # records of aborted transactions are not dead letters, and end offsets stop at the
                # last stable offset, so a replay never waits for an open transaction
                isolation_level="read_committed",
                # a killed replay holds its partitions until its session times out: keep that short
                session_timeout_ms=session_ms,
                heartbeat_interval_ms=max(session_ms // 3, 500),
                **extra,
            )

    @property
    def _timeout_ms(self) -> int:
        return int(self.settings.timeout_seconds * 1000)

    def _offsets(self, consumer, partitions: list) -> tuple[dict, dict]:
        with self._kafka("offsets"):
            return (
                consumer.beginning_offsets(partitions, timeout_ms=self._timeout_ms),
                consumer.end_offsets(partitions, timeout_ms=self._timeout_ms),
            )

    def _committed(self, consumer, partitions: list) -> dict:
        """Per partition: the group's committed OffsetAndMetadata, or None."""
        with self._kafka("committed offsets"):
            return {
                tp: consumer.committed(tp, metadata=True, timeout_ms=self._timeout_ms)
                for tp in partitions
            }

    def _identity(self, consumer, topic: str) -> str:
        """The cluster id and the topic's id (a recreated topic gets a new one): keys the replay journal."""
        cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
        cluster_id = getattr(cluster, "cluster_id", None)
        topic_id = (
            cluster.topic_id(topic)
            if cluster is not None and hasattr(cluster, "topic_id")
            else None
        )
        return self._identity_text(cluster_id, topic, topic_id and str(topic_id))

    def _identity_text(self, cluster_id: str | None, topic: str, topic_id: str | None) -> str:
        cluster = cluster_id or ",".join(self.settings.bootstrap_servers)
        return f"kafka:{cluster}:{topic}" + (f":{topic_id}" if topic_id else "")

    def depth(self) -> list[QueueDepth]:
        rows = []
        if self.settings.topic:
            rows.append(self._lag_row(self.settings.topic, self.settings.consumer_group, "main"))
        if self.settings.dead_letter_topic:
            rows.append(
                self._lag_row(
                    self.settings.dead_letter_topic, self.settings.replay_group, "dead-letter"
                )
            )
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
            state = _PartitionState.load(committed.get(tp), begin[tp], end[tp])
            per_partition[tp.partition] = max(
                0, end[tp] - state.base - state.replayed.count_below(end[tp])
            )
        waiting = sum(per_partition.values())
        return QueueDepth(
            self.name,
            topic,
            role,
            ready=waiting,
            lag=waiting if group else None,
            detail={
                "group": group,
                "end_offsets": {tp.partition: end[tp] for tp in partitions},
                "lag_by_partition": per_partition,
            },
        )

    def purge(self, *, dead_letter: bool = False) -> int | None:
        """A log cannot be emptied for one reader: the group that reads it (the replay group for the
        dead-letter topic, `consumer_group` for the main one) is moved to the end, which is what
        `depth` measures; the records stay for other groups."""
        from kafka.structs import OffsetAndMetadata

        from ..errors import UsageError

        topic = self._dead_letter_topic() if dead_letter else self.describe_destination()
        group = self.settings.replay_group if dead_letter else self.settings.consumer_group
        if not group:
            raise UsageError(
                f"{self.name}: purge of the main topic needs `consumer_group` in the config",
                hint="it moves that group to the end of the topic",
            )
        before = self._lag_row(topic, group, "dead-letter" if dead_letter else "main").ready or 0
        consumer = self.consumer(group)
        try:
            partitions = self._partitions(consumer, topic)
            _, end = self._offsets(consumer, partitions)
            with self._kafka(f"commit {group}"):
                consumer.commit({tp: OffsetAndMetadata(end[tp], "", -1) for tp in partitions})
        finally:
            consumer.close()
        return before

    def peek(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> list[ReceivedMessage]:
        """Read from the group's position (replay group for the DLQ) without committing."""
        topic = self._dead_letter_topic() if dead_letter else self.describe_destination()
        group = self.settings.replay_group if dead_letter else self.settings.consumer_group
        with KafkaTopicReader(self, topic, group, commit=False) as reader:
            return reader.take(limit, step=500)

    def dead_letter_reader(self) -> KafkaGroupReader:
        """The replay reader; see KafkaTopicReader for what it commits."""
        return KafkaGroupReader(self, self._dead_letter_topic(), self.settings.replay_group)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


_REFUSALS = {  # what the user can act on, for the refusals a producer meets most
    "MessageSizeTooLargeError": "the record is larger than the topic's max.message.bytes",
    "RecordTooLargeError": "the record is larger than the topic's max.message.bytes",
    "InvalidRecordError": "the broker refused the record as invalid (e.g. no key on a compacted topic)",
    "TopicAuthorizationFailedError": "not allowed to write to this topic",
}


def _refusal_text(name: str, text: str) -> str:
    """A refusal the user can act on, named as kafka-python names it (whichever driver met it)."""
    return f"{name}: {_REFUSALS[name]}" if name in _REFUSALS else f"{name}: {text}"


def _refusal(error: Exception) -> str:
    """kafka-python's str() of an error the broker answered is only `[Error 10] MessageSizeTooLargeError`."""
    name = type(error).__name__
    if name in _REFUSALS:
        return _refusal_text(name, "")
    text = str(error)
    if text.endswith(name) or text.endswith("None"):
        text = (getattr(error, "description", "") or "").split(". ")[0]
    return f"{name}: {text.removeprefix(name + ': ')}".rstrip(": ")


# -- the record as it was --------------------------------------------------------------------------


def record_for(
    message: OutgoingMessage,
    *,
    null_headers: bool = False,
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """The key, value and headers to produce for a message.

    A message read from Kafka (a replay from a Kafka dead-letter topic) is republished as it was:
    its own key (None stays None, so a foreign record keeps its partitioning), a null value stays
    null (a tombstone), and every header with its bytes, repeats and order. wfbus adds
    `replayed-from` (or rewrites an earlier one in place) and rewrites `attempt` / `event-id` in
    place where an attempt policy gave them new values; the headers an emit sets but the record
    never had are not added, so the record stays the one that was dead-lettered. A null header value
    stays null with `null_headers` (librdkafka); kafka-python cannot send one: it is sent empty.
    Anything else (an emit, a replay from another broker type) is keyed by the urn, or by the
    ordering key a foreign message came with.
    """
    origin = message.origin
    if origin is not None and origin.broker_type == "kafka":
        value = None if origin.null_value and not message.body else message.body
        return origin.key, value, _merged_headers(origin.headers, message.headers, null_headers)
    key = message.key or message.ordering_key or ""
    return (
        key.encode("utf-8"),
        message.body,
        [(k, v.encode("utf-8")) for k, v in message.headers.items()],
    )


def _header_text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _header_view(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    """Headers as text, for selection and display (the last of a repeated key wins); the bytes stay in the origin."""
    return {key: _header_text(value) for key, value in headers}


def _merged_headers(
    original: Sequence[tuple[str, bytes | None]], wanted: dict[str, str], null_headers: bool = False
) -> list[tuple[str, bytes | None]]:
    from .base import HEADER_ATTEMPT, HEADER_EVENT_ID

    headers: list[tuple[str, bytes | None]] = (
        list(original)
        if null_headers
        else [(key, b"" if value is None else value) for key, value in original]
    )
    view = _header_view(original)
    for name in (HEADER_ATTEMPT, HEADER_EVENT_ID, HEADER_REPLAYED_FROM):
        new = wanted.get(name)
        if new is None or view.get(name) == new:
            continue
        if name in view and (
            view[name] or name == HEADER_REPLAYED_FROM
        ):  # changed: rewritten where it was
            last = max(i for i, (key, _) in enumerate(headers) if key == name)
            headers[last] = (name, new.encode("utf-8"))
        elif name == HEADER_REPLAYED_FROM:
            headers.append((name, new.encode("utf-8")))
    return headers


# -- what a replay leaves behind: the commit point and the replayed offsets above it ---------------

_REPLAYED = (
    "wfbus-replayed:"  # commit metadata: replayed offsets above the committed one, relative to it
)


class _Ranges:
    """Offsets as sorted, disjoint, inclusive [first, last] ranges."""

    def __init__(self) -> None:
        self.items: list[list[int]] = []

    def _index(self, offset: int) -> int:
        return bisect.bisect_right(self.items, offset, key=lambda r: r[0]) - 1

    def __contains__(self, offset: int) -> bool:
        i = self._index(offset)
        return i >= 0 and self.items[i][1] >= offset

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, offset: int) -> None:
        items, i = self.items, self._index(offset)
        if i >= 0 and items[i][1] >= offset:
            return
        joins_left = i >= 0 and items[i][1] == offset - 1
        joins_right = i + 1 < len(items) and items[i + 1][0] == offset + 1
        if joins_left and joins_right:
            items[i][1] = items.pop(i + 1)[1]
        elif joins_left:
            items[i][1] = offset
        elif joins_right:
            items[i + 1][0] = offset
        else:
            items.insert(i + 1, [offset, offset])

    def past(self, offset: int) -> int:
        """`offset`, or the offset after the range that holds it."""
        i = self._index(offset)
        return self.items[i][1] + 1 if i >= 0 and self.items[i][1] >= offset else offset

    def drop_below(self, offset: int) -> None:
        keep = [r for r in self.items if r[1] >= offset]
        if keep and keep[0][0] < offset:
            keep[0] = [offset, keep[0][1]]
        self.items = keep

    def count_below(self, end: int) -> int:
        return sum(min(last, end - 1) - first + 1 for first, last in self.items if first < end)

    def encode(self, base: int) -> str:
        if not self.items:
            return ""
        return _REPLAYED + ",".join(
            str(first - base) if first == last else f"{first - base}-{last - base}"
            for first, last in self.items
        )

    @classmethod
    def decode(cls, metadata: str | None, base: int) -> _Ranges:
        """What `encode` wrote; anything else (another tool's metadata, none) means nothing recorded."""
        ranges = cls()
        if not metadata or not metadata.startswith(_REPLAYED):
            return ranges
        items: list[list[int]] = []
        try:
            for text in metadata[len(_REPLAYED) :].split(","):
                head, _, tail = text.partition("-")
                low, high = int(head), int(tail or head)
                if low < 0 or high < low:
                    raise ValueError(text)
                items.append([base + low, base + high])
        except ValueError:
            return (
                ranges  # unreadable: nothing is known replayed (a duplicate at worst, never a loss)
            )
        for first, last in sorted(items):
            if ranges.items and first <= ranges.items[-1][1] + 1:
                ranges.items[-1][1] = max(ranges.items[-1][1], last)
            else:
                ranges.items.append([first, last])
        return ranges


@dataclass
class _PartitionState:
    """What a reader knows of one partition of the topic it reads."""

    # the commit point: every offset below it is settled (replayed, or before the log start)
    base: int
    end: int  # the end offset taken when the reader opened: read no further
    replayed: _Ranges = field(
        default_factory=_Ranges
    )  # offsets >= base replayed already (earlier runs, this one)
    committed: tuple[int, str] | None = None  # what the group holds for this partition now
    taken: dict[int, str] = field(
        default_factory=dict
    )  # handed out, in offset order: held / done / kept
    held: int = 0  # handed out and not settled
    open: int = (
        0  # handed out and not replayed (held or kept): what a replayed offset may end up above
    )
    reserved: dict[int, int] = field(
        default_factory=dict
    )  # held offset -> metadata bytes it may add
    reserved_total: int = 0
    metadata_length: int = 0
    seen: int = 0  # the offset after the last record taken (handed out, or passed over as replayed)
    finished: bool = False  # read up to `end`
    over_budget: bool = (
        False  # what it replayed would no longer fit in the commit metadata: stopped
    )

    @classmethod
    def load(cls, committed: Any, begin: int, end: int) -> _PartitionState:
        offset = getattr(committed, "offset", None)
        if offset is None or offset < 0:
            state = cls(begin, end)
        else:
            metadata = getattr(committed, "metadata", "") or ""
            state = cls(offset, end, _Ranges.decode(metadata, offset), committed=(offset, metadata))
        state.advance_to(max(state.base, begin))
        state.finished = state.base >= end
        state.metadata_length = len(state.replayed.encode(state.base))
        return state

    def advance_to(self, offset: int) -> None:
        """Move the commit point to `offset`, and on past the replayed offsets that follow it."""
        self.base = max(self.base, self.replayed.past(offset))
        self.replayed.drop_below(self.base)
        self.seen = max(
            self.seen, self.base
        )  # below the commit point there is nothing left to read

    def cost(self, offset: int) -> int:
        """Metadata bytes `offset` may add once replayed: none when nothing before it can stay behind
        (the commit point then passes it); else at most its relative offset and a separator."""
        if not self.open:
            return 0
        prefix = 0 if self.replayed or self.reserved_total else len(_REPLAYED)
        return prefix + len(str(offset - self.base)) + 1

    def hand_out(self, offset: int, cost: int) -> None:
        self.taken[offset] = "held"
        self.held += 1
        self.open += 1
        self.seen = offset + 1
        if cost:
            self.reserved[offset] = cost
            self.reserved_total += cost

    def settle(self, offset: int, replayed: bool) -> None:
        self.taken[offset] = "done" if replayed else "kept"
        self.held -= 1
        self.reserved_total -= self.reserved.pop(offset, 0)
        if replayed:
            self.open -= 1
            self.replayed.add(offset)

    def next_commit(self) -> tuple[int, str]:
        """The offset to commit (the first that stays, or how far it was read) and the metadata naming
        the replayed offsets above it."""
        point = max(self.seen, self.end) if self.finished else self.seen
        for offset in list(self.taken):
            if self.taken[offset] != "done":
                point = offset
                break
            del self.taken[offset]
        self.advance_to(point)
        metadata = self.replayed.encode(self.base)
        self.metadata_length = len(metadata)
        return self.base, metadata


class KafkaTopicReader(DeadLetterReader):
    """Reads every partition of a topic from the group's commit point to the end offsets taken at
    open (read_committed: records of aborted transactions are never read); commits when asked.

    What stays dead-lettered, and how a later replay knows what was replayed: a partition's
    committed offset stops at the first message this replay did not move (not selected, failed,
    beyond `--limit`) or has not settled yet; the messages replayed above it are recorded in the
    same commit's metadata string as compact ranges relative to the committed offset
    (``wfbus-replayed:1-40,43,47-90``). A reader skips those offsets: they are neither examined nor
    replayed again, and `depth` does not count them. Once the messages that stayed are replayed too,
    the commit point moves past the ranges and the metadata empties. (Kafka keeps commit metadata
    with the offset; rewinding the group with kafka-consumer-groups.sh clears it, so a rewound group
    replays everything from there, on purpose.)

    The broker refuses metadata over offset.metadata.max.bytes (4096 by default:
    `commit_metadata_max_bytes`). Before handing a message out, the reader reserves the most it
    could add to the metadata; when it could not fit even alone, that partition is not read further
    and the run ends with an error after the other partitions: nothing is lost and nothing is
    replayed twice, and replaying the messages that stay (which moves the commit point)
    makes room again.
    """

    def __init__(self, broker: KafkaBroker, topic: str, group: str | None, *, commit: bool) -> None:
        partitions = self._open(broker, topic, group, commit)
        committed = broker._committed(self.consumer, partitions) if group else {}
        with broker._kafka("assign"):
            self.consumer.assign(partitions)
            for tp in partitions:
                self._parts[tp] = state = _PartitionState.load(
                    committed.get(tp), self.begin[tp], self.end[tp]
                )
                self.consumer.seek(tp, state.base)

    def _open(self, broker: KafkaBroker, topic: str, group: str | None, commit: bool) -> list:
        """What every reader starts with: a consumer, the partitions, and the offsets as of now."""
        self.broker = broker
        self.topic = topic
        self.group = group
        self.commit_enabled = commit
        self.source_label = f"{broker.name}:{topic}"
        self.consumer = broker.consumer(group)
        self._buffer: deque = deque()
        self._parts: dict[Any, _PartitionState] = {}
        self._settled_any = False
        try:
            partitions = broker._partitions(self.consumer, topic)
            self.begin, self.end = broker._offsets(self.consumer, partitions)
            self.identity = broker._identity(self.consumer, topic)
        except BaseException:
            self.consumer.close(autocommit=False, timeout_ms=broker._timeout_ms)
            raise
        return partitions

    # -- reading ----------------------------------------------------------------------------
    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        """Up to `max_messages`; [] once every partition is read to its end offset. Waits at most
        `timeout_seconds` without a record while records remain below the end offsets: then it fails
        (a stalled read is never taken for "the dead-letter topic is empty")."""
        out: list[ReceivedMessage] = []
        in_call: dict[Any, int] = {}
        timeout = self.broker.settings.timeout_seconds
        quiet_since, last_positions = time.monotonic(), None
        while len(out) < max_messages:
            if self._buffer:
                tp, record = self._buffer.popleft()
                verdict = self._offer(tp, record, in_call)
                if verdict == "later":  # the metadata has room only once this batch is settled
                    self._buffer.appendleft((tp, record))
                    break
                if isinstance(verdict, ReceivedMessage):
                    out.append(verdict)
                    in_call[tp] = in_call.get(tp, 0) + 1
                continue
            positions = self._unfinished()
            if positions is not None and not positions:
                break  # every partition read up to the end offsets taken at the start
            if positions != last_positions:
                quiet_since, last_positions = time.monotonic(), positions
            if self._poll(max_messages - len(out)):
                quiet_since = time.monotonic()
            elif positions is not None and time.monotonic() - quiet_since > timeout:
                if out:
                    break
                raise self._stalled(positions)
        if not out and any(p.over_budget for p in self._parts.values()):
            raise self._over_budget()
        return out

    def _assigned(self) -> set:
        return set(self._parts)

    def _unfinished(self) -> dict | None:
        """Partitions of ours still to be read, with their positions (None: we have none yet)."""
        positions: dict[Any, int | None] = {}
        for tp in self._assigned():
            state = self._parts.get(tp)
            if state is None:
                positions[tp] = None  # not loaded yet: certainly not read
                continue
            if state.over_budget:
                continue
            if not state.finished:
                with self.broker._kafka(f"read {self.topic}"):
                    position = self.consumer.position(tp, timeout_ms=self.broker._timeout_ms)
                state.finished = position is not None and position >= state.end
                if not state.finished:
                    positions[tp] = position
        return positions

    def _poll(self, wanted: int) -> bool:
        """Poll for at most `wanted` records (the driver keeps what it fetched beyond them): a member polls
        again for every batch, so a rebalance that gives joining members partitions never waits for
        a read-ahead to drain."""
        with self.broker._kafka(f"read {self.topic}"):
            polled = self.consumer.poll(timeout_ms=300, max_records=max(wanted, 1))
        self._after_poll()
        got = False
        for tp, records in polled.items():
            state = self._parts.get(tp)
            if state is None or state.over_budget:
                continue
            for record in records:
                if state.seen <= record.offset < state.end:
                    self._buffer.append((tp, record))
                    got = True
        return got

    def _after_poll(self) -> None:
        pass

    def _offer(self, tp, record, in_call: dict) -> ReceivedMessage | str | None:
        """The record as a message to hand out; None when it is passed over; "later" when it must wait."""
        state = self._parts.get(tp)
        if state is None or state.over_budget or record.offset < state.seen:
            return None
        if (
            record.offset in state.replayed
        ):  # replayed by an earlier run: neither examined nor replayed
            state.seen = record.offset + 1
            return None
        cost = 0
        if self.commit_enabled:
            cost = state.cost(record.offset)
            budget = self.broker.settings.commit_metadata_max_bytes
            if state.metadata_length + state.reserved_total + cost > budget:
                if in_call.get(tp):
                    return "later"
                if not state.held:  # even alone it may not fit: read no further in this partition
                    state.over_budget = True
                    with self.broker._kafka("pause"):
                        self.consumer.pause(tp)
                    return None
                # held since an earlier call and never settled: a dry run, which commits nothing
                cost = 0
        state.hand_out(record.offset, cost)
        return self._message(tp, record)

    def _message(self, tp, record) -> ReceivedMessage:
        position = f"{tp.topic}/{tp.partition}/{record.offset}"
        headers = tuple(record.headers or ())
        key = record.key
        return ReceivedMessage(
            body=record.value or b"",
            headers=_header_view(headers),
            handle=(tp, record.offset),
            message_id=position,
            position_id=position,
            ordering_key=None if key is None else key.decode("utf-8", "replace"),
            origin=Origin(
                "kafka",
                key=key,
                headers=headers,
                null_value=record.value is None,
                properties={"timestamp": record.timestamp, "timestamp_type": record.timestamp_type},
            ),
            extra={"topic": tp.topic, "partition": tp.partition, "offset": record.offset},
        )

    def _stalled(self, positions: dict) -> BrokerUnavailable:
        remaining = sum(
            self._parts[tp].end - (position or self._parts[tp].seen)
            for tp, position in positions.items()
        )
        which = ", ".join(str(tp.partition) for tp in sorted(positions))
        timeout = self.broker.settings.timeout_seconds
        return BrokerUnavailable(
            f"{self.broker.name}: read {self.topic}: no record from partition(s) {which} for {timeout:g} s although "
            f"{remaining} offset(s) remain below the end offsets taken at the start; nothing was committed past them",
            hint="check the partitions' leaders (kafka-topics.sh --describe) and run again; "
            "raise timeout_seconds for a slow broker",
        )

    def _over_budget(self) -> DeliveryFailed:
        which = ", ".join(
            str(tp.partition) for tp, s in sorted(self._parts.items()) if s.over_budget
        )
        return DeliveryFailed(
            f"{self.broker.name}: {self.topic} partition(s) {which}: the offsets replayed between messages that "
            f"stay dead-lettered (not selected, or failed) would no longer fit in the replay group's commit metadata "
            f"(commit_metadata_max_bytes: {self.broker.settings.commit_metadata_max_bytes}); the rest of these "
            f"partitions was not read",
            hint="nothing was lost or replayed twice: replay the messages that stay first (without filters, or with "
            "filters that select them), then run this replay again",
        )

    # -- settling -----------------------------------------------------------------------------
    def _settle(self, messages: Sequence[ReceivedMessage], replayed: bool) -> None:
        for message in messages:
            tp, offset = message.handle
            state = self._parts.get(tp)
            if (
                state is not None and state.taken.get(offset) == "held"
            ):  # else: the partition went to another member
                state.settle(offset, replayed)
                self._settled_any = True
        if self.commit_enabled:
            self._commit()

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        self._settle(messages, True)

    def skip(self, messages: Sequence[ReceivedMessage]) -> None:
        """Not selected: stays dead-lettered (the commit point stops at it) for a later replay."""
        self._settle(messages, False)

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Failed, or beyond the limit: stays dead-lettered; the next replay reads it again."""
        self._settle(messages, False)

    def _owns(self, tp) -> bool:
        return True

    def _commit(self) -> None:
        from kafka.structs import OffsetAndMetadata

        offsets = {}
        for tp, state in self._parts.items():
            if not self._owns(tp):
                continue
            offset, metadata = state.next_commit()
            if state.committed != (offset, metadata):
                offsets[tp] = OffsetAndMetadata(offset, metadata, -1)
        if offsets:
            with self.broker._kafka("commit"):
                self.consumer.commit(offsets, timeout_ms=self.broker._timeout_ms)
            for tp, value in offsets.items():
                self._parts[tp].committed = (value.offset, value.metadata)

    def close(self) -> None:
        try:
            if self.commit_enabled and self._settled_any:
                # partitions read to their end: past the transaction markers there too
                self._commit()
        except BrokerUnavailable:
            pass  # what was settled was committed with each batch already
        finally:
            self.consumer.close(autocommit=False, timeout_ms=self.broker._timeout_ms)


class KafkaGroupReader(KafkaTopicReader):
    """The replay reader: a member of the replay group, so several `wfbus replay` processes share
    the dead-letter topic's partitions (the broker is the distributed engine).

    Each member reads its assigned partitions up to the end offsets taken when it started and
    commits as KafkaTopicReader does (after every settled batch). When a partition taken away in a
    rebalance comes back and nobody committed in between, the member's own bookkeeping goes on
    (records handed out are never handed out twice), else it starts from the new commit point, and
    the unsettled messages it had are read again by their new owner (at worst a
    duplicate, never a loss).

    Waiting is bounded: for partitions, `join_timeout_seconds` (a rerun right after a killed run
    waits for the killed member's session to expire and the group to rebalance: never "nothing to
    replay" while the group is still joining); for records, `timeout_seconds` without any while
    records remain below the end offsets.
    """

    def __init__(self, broker: KafkaBroker, topic: str, group: str) -> None:
        self._open(broker, topic, group, commit=True)
        self._generation: Any = (
            None  # the group generation whose assignment the bookkeeping reflects
        )
        self._seen_assignment: set = set()
        self._join_deadline = time.monotonic() + broker.settings.join_timeout_seconds
        with broker._kafka("join the replay group"):
            self.consumer.subscribe([topic])

    def _after_poll(self) -> None:
        """After a rebalance (only poll() rebalances): drop what was read ahead of partitions no longer
        ours, and load the commit point of each assigned partition. A partition that stayed ours (or
        came back) keeps our bookkeeping when nobody committed it since; else it starts afresh. (No
        rebalance listener: kafka-python runs those on its I/O thread, where nothing may block, and
        every settled batch was committed already.)"""
        generation = getattr(self.consumer.group_metadata(), "generation_id", None)
        assigned = set(self.consumer.assignment())
        if generation == self._generation and assigned == self._seen_assignment:
            return
        self._buffer = deque(item for item in self._buffer if item[0] in assigned)
        committed = self.broker._committed(self.consumer, sorted(assigned)) if assigned else {}
        self._generation, self._seen_assignment = generation, assigned
        for tp in assigned:
            loaded = _PartitionState.load(
                committed.get(tp), self.begin.get(tp, 0), self.end.get(tp, 0)
            )
            mine = self._parts.get(tp)
            if mine is None or mine.committed != loaded.committed:  # another member moved it on
                self._parts[tp] = loaded
            elif mine.over_budget:
                with self.broker._kafka("pause"):
                    self.consumer.pause(tp)

    def _assigned(self) -> set:
        return set(self.consumer.assignment())

    def _owns(self, tp) -> bool:
        return tp in self.consumer.assignment()

    def _unfinished(self) -> dict | None:
        self._after_poll()
        if not self.consumer.assignment():
            if time.monotonic() > self._join_deadline:
                raise self._no_partitions()
            return None
        self._join_deadline = time.monotonic() + self.broker.settings.join_timeout_seconds
        return super()._unfinished()

    def _no_partitions(self) -> BrokerUnavailable:
        s = self.broker.settings
        state = str(getattr(self.consumer.group_metadata(), "state", ""))
        if "stable" in state:
            return BrokerUnavailable(
                f"{self.broker.name}: replay group {self.group!r}: other members hold every partition of "
                f"{self.topic}; this run got none within {s.join_timeout_seconds:g} s",
                hint="another `wfbus replay` of this dead-letter topic is running: let it finish (see "
                "`wfbus depth`), or raise join_timeout_seconds",
            )
        return BrokerUnavailable(
            f"{self.broker.name}: replay group {self.group!r} gave this run no partition of {self.topic} within "
            f"{s.join_timeout_seconds:g} s",
            hint=f"a killed replay holds its partitions until its session expires ({s.session_timeout_seconds:g} s): "
            "run the replay again, or raise join_timeout_seconds",
        )

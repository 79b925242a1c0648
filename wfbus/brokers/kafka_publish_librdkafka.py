"""Publishing with librdkafka (confluent-kafka): `driver: librdkafka`, what `auto` picks first.

Every record gets a delivery callback, and a Delivery comes only from that report: confirmed when
librdkafka says the broker acknowledged it (acks=all, idempotent producer), failed with the
broker's or librdkafka's reason otherwise, and "no acknowledgement" when no report came within the
delivery timeout. A batch is handed over with `produce` (librdkafka batches and sends in its own
threads) and its answer is read by polling until that batch's reports are in, so several batches
are in flight (`KafkaBroker.pipeline_window`). Order per partition across them holds because the
producer is idempotent (at most 5 requests in flight, librdkafka's own limit for idempotence).

Nothing is printed: librdkafka's log lines go to a silent logger, its errors to `error_cb`, which
keeps the last ones so an unreachable cluster or a refused login is reported as such (secrets never
appear in them: librdkafka does not log passwords).

Reading (peek, depth, replay, purge) stays on kafka-python for both drivers (see KafkaBroker).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import interrupts
from ..errors import BrokerUnavailable, ConfigError
from .base import Delivery, OutgoingMessage, PendingPublish
from .kafka_outcome import UNANSWERED, Outcome, deliveries_for

if TYPE_CHECKING:
    from .kafka import KafkaBroker

LINGER_MS = 5
BATCH_MESSAGES = 10_000
BATCH_BYTES = 1_000_000  # librdkafka's default batch.size, below the default max.message.bytes
BATCH_FRAMING = 200  # record batch header and per-record framing kept free below max.message.bytes

# librdkafka's names for refusals kafka-python names otherwise: the user reads one text either way
_NAMES = {
    "MSG_SIZE_TOO_LARGE": "MessageSizeTooLargeError",
    "INVALID_RECORD": "InvalidRecordError",
    "TOPIC_AUTHORIZATION_FAILED": "TopicAuthorizationFailedError",
}

_SILENT = logging.getLogger("wfbus.librdkafka")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def librdkafka_config(broker: KafkaBroker) -> dict[str, Any]:
    """The KafkaSettings as librdkafka configuration (connection, TLS, SASL): one mapping, shared by
    every librdkafka client wfbus makes."""
    s = broker.settings
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(s.bootstrap_servers),
        "client.id": s.client_id,
        "security.protocol": s.security_protocol,
        "socket.connection.setup.timeout.ms": int(
            min(s.connect_timeout_seconds, s.timeout_seconds) * 1000
        ),
        "reconnect.backoff.max.ms": 1000,
        "logger": _SILENT,
    }
    if s.security_protocol in ("SSL", "SASL_SSL"):
        for key, value in (
            ("ssl.ca.location", s.ssl_cafile),
            ("ssl.certificate.location", s.ssl_certfile),
            ("ssl.key.location", s.ssl_keyfile),
        ):
            if value:
                config[key] = broker.resolve_path(value)
        verify_host = "https" if s.ssl_check_hostname else "none"
        config["ssl.endpoint.identification.algorithm"] = verify_host
    if s.security_protocol.startswith("SASL"):
        config.update(
            {
                "sasl.mechanism": s.sasl_mechanism or "PLAIN",
                "sasl.username": s.sasl_username or "",
                "sasl.password": s.sasl_password or "",
            }
        )
    return config


def refusal(error: Any) -> str:
    """A KafkaError as the user reads it (named as kafka-python names it, where known)."""
    name = error.name()
    known = _NAMES.get(name.lstrip("_"))
    if known:
        from .kafka import _refusal_text

        return _refusal_text(known, error.str())
    return f"{name}: {error.str()}"


class LibrdkafkaPublisher:
    """The confluent-kafka producer of one broker, created at the first publish."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self._producer: Any = None
        self._admin: Any = None
        self._batch_bytes = BATCH_BYTES
        self._known_topics: set[str] = set()
        self._errors: deque[Any] = deque(maxlen=50)  # the last errors error_cb reported

    # -- the producer --------------------------------------------------------------------------
    @property
    def admin(self) -> Any:
        """Topic metadata and configs (the first call is the connection check)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            config = librdkafka_config(self.broker)
            config["error_cb"] = self._errors.append
            self._admin = AdminClient(config)
        return self._admin

    @property
    def producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import KafkaException, Producer

            s = self.broker.settings
            config = librdkafka_config(self.broker)
            config.update(
                {
                    "acks": "all" if s.acks == "all" else s.acks,
                    "enable.idempotence": s.acks == "all",
                    "max.in.flight.requests.per.connection": 5,
                    "linger.ms": LINGER_MS,
                    "batch.num.messages": BATCH_MESSAGES,
                    "batch.size": self._batch_bytes,
                    "message.max.bytes": s.max_request_size,
                    # a key's partition is the one the Java client and kafka-python pick (murmur2):
                    # its records stay in one partition, in order, whichever driver or
                    # client sent them
                    "partitioner": "murmur2_random",
                    "request.timeout.ms": int(s.timeout_seconds * 1000),
                    "message.timeout.ms": int(self.broker._delivery_timeout() * 1000),
                    "queue.buffering.max.messages": 1_000_000,
                    # a mistyped topic is an error, not a new one
                    "allow.auto.create.topics": False,
                    "error_cb": self._errors.append,
                }
            )
            if s.compression_type:
                config["compression.type"] = s.compression_type
            try:
                self._producer = Producer(config)
            except (KafkaException, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"{self.broker.name}: librdkafka refused the settings: {exc}",
                    hint=f"check brokers.{self.broker.name} (or use driver: kafka-python)",
                ) from None
        return self._producer

    def _check_topic(self, topic: str) -> None:
        """The topic exists (else librdkafka would hold its records until the delivery timeout).
        The first call is the connection: bounded by connect_timeout_seconds."""
        if topic in self._known_topics:
            return
        from confluent_kafka import KafkaError, KafkaException

        broker, s = self.broker, self.broker.settings
        first = not self._known_topics
        wait = min(s.connect_timeout_seconds, s.timeout_seconds) if first else s.timeout_seconds
        try:
            metadata = self.admin.list_topics(topic, timeout=wait)
        except KafkaException:
            raise self._connection_failed(f"topic {topic}") from None
        found = metadata.topics.get(topic)
        error = getattr(found, "error", None)
        if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise BrokerUnavailable(
                f"{broker.name}: topic {topic}: not allowed: {error.str()}",
                hint="check sasl_username / sasl_password and the ACLs",
            )
        if found is None or error is not None or not found.partitions:
            raise broker._no_topic(topic)
        self._fit_batches(self._topic_limit(topic))
        self._known_topics.add(topic)

    def identity(self, topic: str | None) -> tuple[str | None, str | None]:
        """The cluster id and, for a fixed topic, the topic's id, through this driver's own admin
        client: no kafka-python client is made (its import and bootstrap cost an emit ~0.25 s).
        The topic id is written as kafka-python writes it (a UUID), so an emit's resume key is the
        same whichever driver ran before."""
        from confluent_kafka import KafkaException, TopicCollection

        s = self.broker.settings
        first = not self._known_topics
        wait = min(s.connect_timeout_seconds, s.timeout_seconds) if first else s.timeout_seconds
        what = "cluster metadata" if topic is None else f"topic {topic}"
        try:
            if topic is None:
                return self.admin.list_topics(timeout=wait).cluster_id, None
            self._check_topic(topic)  # the connection, the topic's existence, batches that fit
            cluster_id = self.admin.list_topics(topic, timeout=s.timeout_seconds).cluster_id
            request_timeout = s.timeout_seconds
            future = self.admin.describe_topics(
                TopicCollection([topic]), request_timeout=request_timeout
            )[topic]
            found = future.result(timeout=request_timeout + 1)
        except (KafkaException, TimeoutError):  # TimeoutError: no answer within the timeout
            raise self._connection_failed(what) from None
        uid = getattr(found, "topic_id", None)
        high = uid.get_most_significant_bits() & (2**64 - 1) if uid is not None else 0
        low = uid.get_least_significant_bits() & (2**64 - 1) if uid is not None else 0
        if not high and not low:  # a cluster without topic ids
            return cluster_id, None
        return cluster_id, str(uuid.UUID(int=(high << 64) | low))

    def prepare(self, topic: str) -> None:
        """Made before the first batch: the idempotent producer acquires its id (about 0.5 s on a
        fresh connection when produce follows creation at once) while emit records its progress;
        a one-event emit took 0.97 s before, 0.31 s after."""
        self._check_topic(topic)  # batch.size fits the topic before the producer is made
        self.producer  # noqa: B018 - made now: its id is acquired while the caller prepares

    def _topic_limit(self, topic: str) -> int | None:
        """The topic's max.message.bytes (None: not allowed to read it, or no answer)."""
        from confluent_kafka.admin import ConfigResource

        try:
            future = self.admin.describe_configs([ConfigResource("topic", topic)])
            answer = next(iter(future.values()))
            entries = answer.result(timeout=self.broker.settings.timeout_seconds)
            return int(entries["max.message.bytes"].value)
        except Exception:  # noqa: BLE001 - no DescribeConfigs permission, an old broker
            return None

    def _fit_batches(self, limit: int | None) -> None:
        """The broker refuses a whole record batch larger than the topic's max.message.bytes, and
        librdkafka (unlike kafka-python) does not split it: every record of it would fail. Batches
        are kept below the smallest limit of the topics written: a too-large record fails alone."""
        if limit is None or limit - BATCH_FRAMING >= self._batch_bytes:
            return
        self._batch_bytes = max(1, limit - BATCH_FRAMING)
        if self._producer is not None:  # a later topic (topic_template) with a smaller limit
            broker = self.broker
            with interrupts.closing():  # a client destroyed mid-stop: see interrupts.closing
                self._producer.flush(broker._delivery_timeout() + broker.settings.timeout_seconds)
                self._producer = None  # the batches in flight keep theirs; the next is made to fit

    def _connection_failed(self, what: str) -> BrokerUnavailable:
        from confluent_kafka import KafkaError

        broker = self.broker
        self.admin.poll(0)  # collects the error callbacks of the failed attempt
        codes = {e.code() for e in self._errors if hasattr(e, "code")}
        if any("mechanism handshake failed" in e.str() for e in self._errors if hasattr(e, "str")):
            # librdkafka files a listener that does not speak SASL (a PLAINTEXT port) under
            # authentication too; no credential can fix that, so it is not called one
            return BrokerUnavailable(
                f"{broker.name}: {what}: no Kafka broker reachable with SASL: the listener refused"
                " the SASL handshake",
                hint="check that bootstrap_servers name a SASL listener and that "
                "security_protocol and sasl_mechanism match it",
            )
        if codes & {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}:
            return BrokerUnavailable(
                f"{broker.name}: {what}: not allowed: authentication failed",
                hint="check sasl_username / sasl_password and the ACLs",
            )
        return broker._unreachable(what)

    # -- publishing ----------------------------------------------------------------------------
    def submit(self, messages: Sequence[OutgoingMessage], dead_letter: bool) -> PendingPublish:
        from confluent_kafka import KafkaException

        from .kafka import record_for

        topics = self._topics(messages, dead_letter)  # before the producer is made (batch.size)
        producer = self.producer
        produce, poll = producer.produce, producer.poll
        pending = _Pending(self, messages)
        report = pending.reporter
        block_until = time.monotonic() + self.broker.settings.timeout_seconds
        for index, message in enumerate(messages):
            key: Any
            value: Any
            headers: Any
            if message.origin is None:  # an emit: urn as key, text headers (written as UTF-8)
                key = message.key or message.ordering_key or ""
                value, headers = message.body, message.headers
            else:  # a replay: the record as it was (see record_for)
                key, value, headers = record_for(message, null_headers=True)
            while True:
                try:
                    produce(topics[index], value, key, headers=headers, on_delivery=report(index))
                    break
                except BufferError:  # librdkafka's queue is full: serve reports until there is room
                    if time.monotonic() > block_until:
                        pending.refuse_rest(index, ("librdkafka's send queue stayed full", True))
                        return pending
                    poll(0.05)
                except KafkaException as exc:  # this record only (larger than message.max.bytes)
                    pending.refuse(index, (refusal(exc.args[0]), False))
                    break
                except (TypeError, ValueError) as exc:
                    pending.refuse(index, (f"{type(exc).__name__}: {exc}", False))
                    break
        poll(0)
        return pending

    def _topics(self, messages: Sequence[OutgoingMessage], dead_letter: bool) -> list[str]:
        """Each message's topic, every one checked (one lookup per run of one event topic)."""
        topic_for = self.broker.topic_for
        out: list[str] = []
        last_name: str | None = None
        last_topic = ""
        for message in messages:
            if message.topic != last_name:
                last_name, last_topic = message.topic, topic_for(message.topic, dead_letter)
                self._check_topic(last_topic)
            out.append(last_topic)
        return out

    def wait(self, pending: _Pending, deadline: float) -> None:
        """Serve delivery reports (of any batch) until all of `pending`'s are in, or `deadline`."""
        poll = pending.producer.poll
        while pending.waiting and time.monotonic() < deadline:
            poll(min(0.2, max(0.0, deadline - time.monotonic())))

    def fatal(self) -> bool:
        """librdkafka raised a fatal error (idempotence state lost): this producer sends no more."""
        return any(getattr(e, "fatal", lambda: False)() for e in self._errors)

    def close(self) -> None:
        self._admin = None  # destroyed here, where a stop waits (see interrupts.closing)
        if self._producer is None:
            return
        producer, self._producer = self._producer, None
        self._known_topics.clear()
        self._admin = None
        self._errors.clear()  # a fatal error of this producer says nothing about the next one
        # what is still queued was reported as not confirmed (or will be read by nobody): drop it
        producer.flush(min(self.broker.settings.timeout_seconds, 5))
        producer.purge()
        producer.poll(0)


class _Pending(PendingPublish):
    """One batch: a slot per record filled by its delivery report."""

    def __init__(self, publisher: LibrdkafkaPublisher, messages: Sequence[OutgoingMessage]) -> None:
        super().__init__(messages)
        self._publisher = publisher
        self.producer = publisher.producer  # the one its records went to (a failed one is replaced)
        self._outcomes: list[Outcome] = [UNANSWERED] * len(messages)
        self.waiting = len(messages)
        self.sent_at = time.monotonic()  # its records' delivery timeout runs from here
        self._deliveries: list[Delivery] | None = None

    def reporter(self, index: int):
        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                self._outcomes[index] = self._failure(error)
            else:
                self._outcomes[index] = None
            self.waiting -= 1

        return on_delivery

    @staticmethod
    def _failure(error: Any) -> Outcome:
        from confluent_kafka import KafkaError

        trouble = error.retriable() or error.code() in (
            KafkaError._MSG_TIMED_OUT,
            KafkaError._TRANSPORT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._TIMED_OUT,
            KafkaError._PURGE_QUEUE,
            KafkaError._PURGE_INFLIGHT,
        )
        return refusal(error), trouble

    def refuse(self, index: int, outcome: Outcome) -> None:
        self._outcomes[index] = outcome
        self.waiting -= 1

    def refuse_rest(self, index: int, outcome: Outcome) -> None:
        for i in range(index, len(self._outcomes)):
            self.refuse(i, outcome)

    def result(self) -> list[Delivery]:
        if self._deliveries is None:
            publisher = self._publisher
            broker = publisher.broker
            if self.waiting:
                wait = broker._delivery_timeout() + broker.settings.timeout_seconds
                publisher.wait(self, self.sent_at + wait)  # batches in flight expire together
            deliveries, trouble = deliveries_for(broker, self.messages, self._outcomes)
            if not trouble and publisher.fatal():
                publisher.close()  # the next batch gets a fresh producer
            self._deliveries = deliveries
        return self._deliveries

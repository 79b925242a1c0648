"""AWS SQS (boto3): batched, threaded emit; depth; peek; no-loss dead-letter redrive.

boto3 is imported only when a broker of this type is used.  Every botocore error that means
"cannot reach / not allowed / no such queue" becomes BrokerUnavailable naming the queue and the fix.

Publishing keeps SQS's rules on this side of the wire, so one bad message never takes others down:
each message is checked first (UTF-8 text of characters SQS accepts, the attribute rules, the size
limit counted with attributes) and one SQS refuses fails alone; every SendMessageBatch request is
accounted by its own answer; an entry SQS did not answer is a failure.  Up to `pipeline_window`
batches are in flight at once (submit): their requests share one thread pool.  On a FIFO queue the
messages of one message group go out in order (groups in parallel, each group's requests one after
the other, across the batches in flight too), and a group whose message could not be confirmed
sends no later message for the rest of the run.
One case stays out of reach: SQS answers a request entry by entry, so when it reports a server-side
failure for one entry (rare: InternalError/ServiceUnavailable per entry) and accepts a later entry
of the same group in that same request, the retried entry lands after it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import BrokerUnavailable, ConfigError, IncompleteRead, UsageError
from .base import (
    HEADER_ATTEMPT,
    HEADER_EVENT_ID,
    HEADER_REPLAYED_FROM,
    HEADER_TOPIC,
    HEADER_URN,
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

BATCH_ENTRIES = 10
# SendMessageBatch: the sum of all entries (a queue allowing larger messages allows as much)
BATCH_BYTES = 262_144
MESSAGE_BYTES = 262_144  # a queue that does not report MaximumMessageSize
MAX_ATTRIBUTES = 10
RETRIES = 4
NO_ANSWER = "no answer from SQS for this message (neither Successful nor Failed): not confirmed"
FOLDED_HEADERS = "wfbus-headers"  # headers SQS cannot carry one by one, as one JSON object
TEMPLATE_FIELDS = ("urn", "topic")

# SQS accepts these characters in bodies and String attribute values (#x9 #xA #xD #x20-#xD7FF
# #xE000-#xFFFD #x10000-#x10FFFF); anything else makes it refuse the message
_REFUSED_CHARACTER = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATA_TYPE = re.compile(r"^(String|Number|Binary)(\.[A-Za-z0-9_.-]+)?$")
_GROUP_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # alphanumeric and punctuation
# the headers wfbus itself writes, most important first: the ones a cross-type replay keeps first
_OWN_HEADERS = (HEADER_TOPIC, HEADER_URN, HEADER_ATTEMPT, HEADER_EVENT_ID, HEADER_REPLAYED_FROM)
# what a same-type replay adds to the message as it was, most important first
_ADDITIONS = (HEADER_REPLAYED_FROM, HEADER_EVENT_ID, HEADER_TOPIC, HEADER_URN, HEADER_ATTEMPT)
# a whole request refused for what it carries (not for the queue's or the network's sake): resend
# one by one
_CONTENT_ERRORS = (
    "InvalidParameterValue",
    "InvalidAttributeValue",
    "InvalidAttributeName",
    "InvalidMessageContents",
    "MessageTooLong",
    "BatchRequestTooLong",
    "MissingParameter",
    "BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId",
    "TooManyEntriesInBatchRequest",
    "ParamValidation",
)


class SqsSettings(BrokerSettings):
    type: str = "sqs"
    queue_url: str | None = None
    queue_name: str | None = None
    dead_letter_queue_url: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None  # prefer the normal AWS credential chain
    aws_secret_access_key: str | None = None
    message_group_id: str = "{urn}"
    deduplication: Literal["event-id", "content", "random"] = "event-id"
    max_workers: int = Field(8, ge=1, le=64)
    receive_wait_seconds: int = Field(1, ge=0, le=20)
    visibility_timeout: int = Field(60, ge=2, le=43200)
    timeout_seconds: float = Field(10, gt=0)

    @field_validator("message_group_id")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return check_event_template(value, TEMPLATE_FIELDS)

    @model_validator(mode="after")
    def _one_queue(self) -> SqsSettings:
        if bool(self.queue_url) == bool(self.queue_name):
            raise ValueError("give exactly one of queue_url or queue_name")
        return self

    def secret_values(self) -> list[str]:
        return [v for v in (self.aws_secret_access_key, self.aws_access_key_id) if v]

    def target(self) -> str:
        return self.queue_url or f"queue {self.queue_name}"


class _Refused(Exception):
    """One message SQS would refuse (or did): it fails alone, the others go on."""


@dataclass(slots=True)
class _Entry:
    """One message ready for SendMessageBatch (without its Id), with what ordering and sizing need."""

    index: int
    request: dict[str, Any]
    size: int
    group: str | None
    tries: int = 0
    alone: bool = (
        False  # its request was refused as a whole: it goes out on its own to learn its own answer
    )


@dataclass(slots=True)
class _Answer:
    """One SendMessageBatch response read entry by entry (every Id gets exactly one outcome)."""

    confirmed: list[str]
    refused: dict[str, str]  # the sender's fault: resending the same message cannot help
    retry: dict[str, str]  # the server's fault: worth another try
    missing: list[str]  # neither Successful nor Failed: a missing answer is a failure


def read_answer(ids: Sequence[str], response: dict[str, Any]) -> _Answer:
    """Sort a SendMessageBatch response by entry; an entry SQS did not mention is not confirmed."""
    answer = _Answer([], {}, {}, [])
    wanted = set(ids)
    for ok in response.get("Successful") or []:
        if ok.get("Id") in wanted:
            answer.confirmed.append(ok["Id"])
            wanted.discard(ok["Id"])
    for failed in response.get("Failed") or []:
        entry_id = failed.get("Id")
        if entry_id not in wanted:
            continue
        wanted.discard(entry_id)
        reason = f"{failed.get('Code')}: {failed.get('Message', '')}".strip()
        (answer.refused if failed.get("SenderFault") else answer.retry)[entry_id] = reason
    answer.missing = [entry_id for entry_id in ids if entry_id in wanted]
    return answer


class _Halt:
    """Shared by the batches in flight: the first request that failed for the queue's or the network's
    sake stops every request of them not sent yet (they fail "not sent", naming this error)."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BrokerUnavailable | None = None


class SqsPending(PendingPublish):
    """A batch whose requests run on the broker's thread pool; `result()` waits for them and answers
    every message exactly as publish() does."""

    def __init__(
        self,
        broker: SqsBroker,
        messages: Sequence[OutgoingMessage],
        answers: dict[int, str | None],
        futures: list[Future],
    ) -> None:
        super().__init__(messages)
        self._broker = broker
        self._answers = answers
        self._futures = futures
        self._deliveries: list[Delivery] | None = None
        self._error: BrokerUnavailable | None = None

    def result(self) -> list[Delivery]:
        if self._deliveries is None and self._error is None:
            self._deliveries, self._error = self._broker._collect(
                self.messages, self._answers, self._futures
            )
        if self._error is not None:
            raise self._error
        assert self._deliveries is not None
        return self._deliveries


class SqsBroker(Broker):
    settings_model = SqsSettings
    # 100 messages = 10 SendMessageBatch requests; 4 batches in flight keep the thread pool busy
    # across batch boundaries, and a kill can leave at most 400 events unrecorded (the
    # --resume duplicates bound)
    publish_batch_size = 100
    pipeline_window = 4
    implements = Capabilities(ordering="none", native_move=True, exact_depth=False)
    settings: SqsSettings

    def __init__(self, name, settings, base_dir) -> None:
        super().__init__(name, settings, base_dir)
        self._client = None
        self._queue_url: str | None = settings.queue_url
        self._dlq_url: str | None = settings.dead_letter_queue_url
        self._dlq_resolved = bool(settings.dead_letter_queue_url)
        self._attributes: dict[str, str] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._blocked_groups: dict[
            str, str
        ] = {}  # FIFO groups that must send nothing more: see _send_lane
        self._broken: BrokerUnavailable | None = (
            None  # a request failed for the queue's or network's sake
        )
        # pipelining: batches handed over and not yet answered share one _Halt; on a FIFO queue the
        # last lane (future) that sends each message group, so a later batch's lane waits for it
        self._lock = threading.Lock()
        self._in_flight = 0
        self._halt = _Halt()
        self._group_tail: dict[str, Future] = {}

    @classmethod
    def capabilities_for(cls, settings: BrokerSettings) -> Capabilities:
        """A FIFO queue keeps order per message group and drops a resend carrying a seen dedup id
        (not with `deduplication: random`, where every send gets a new one)."""
        assert isinstance(settings, SqsSettings)
        if (settings.queue_url or settings.queue_name or "").endswith(".fifo"):
            return Capabilities(
                ordering="per-group",
                dedup_on_resend=settings.deduplication != "random",
                native_move=True,
                exact_depth=False,
            )
        return cls.implements

    # -- connection --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            session = (
                boto3.session.Session(profile_name=s.profile)
                if s.profile
                else boto3.session.Session()
            )
            self._client = session.client(
                "sqs",
                region_name=s.region
                or _region_from(s.queue_url)
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or "us-east-1",
                endpoint_url=s.endpoint_url,
                aws_access_key_id=s.aws_access_key_id,
                aws_secret_access_key=s.aws_secret_access_key,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=s.timeout_seconds,
                    read_timeout=s.timeout_seconds + s.receive_wait_seconds,
                    max_pool_connections=max(10, s.max_workers * 2),
                    # every entry is checked against SQS's rules before it is sent (_prepare), and a
                    # request the server refuses for its content is resent entry by entry:
                    # botocore's own check of every parameter only costs CPU (a fifth of a
                    # SendMessageBatch with attributes)
                    parameter_validation=False,
                ),
            )
        return self._client

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _aws(self, what: str) -> Iterator[None]:
        """Turn botocore's errors into wfbus errors that say what to do."""
        import botocore.exceptions as bx

        try:
            yield
        except bx.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                raise BrokerUnavailable(
                    f"{self.name}: {what}: queue does not exist",
                    hint=f"check queue_url / queue_name and the region of broker {self.name!r}",
                ) from None
            if code in (
                "AccessDenied",
                "AccessDeniedException",
                "InvalidClientTokenId",
                "SignatureDoesNotMatch",
                "UnrecognizedClientException",
                "ExpiredToken",
            ):
                raise BrokerUnavailable(
                    f"{self.name}: {what}: {code}: {message}",
                    hint="check the AWS credentials and the queue's access policy",
                ) from None
            raise BrokerUnavailable(f"{self.name}: {what}: {code}: {message}") from None
        except bx.NoCredentialsError:
            raise BrokerUnavailable(
                f"{self.name}: {what}: no AWS credentials found",
                hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or `profile:` "
                "in the config",
            ) from None
        except (
            bx.EndpointConnectionError,
            bx.ConnectTimeoutError,
            bx.ReadTimeoutError,
            bx.ConnectionClosedError,
        ) as exc:
            raise BrokerUnavailable(
                f"{self.name}: {what}: cannot reach SQS: {exc}",
                hint="check endpoint_url / region and the network",
            ) from None
        except bx.BotoCoreError as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: {exc}") from None

    # -- queues ------------------------------------------------------------------------------
    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            with self._aws(f"queue {self.settings.queue_name}"):
                self._queue_url = self.client.get_queue_url(QueueName=self.settings.queue_name)[
                    "QueueUrl"
                ]
        return self._queue_url

    @property
    def attributes(self) -> dict[str, str]:
        if self._attributes is None:
            with self._aws(self.queue_url):
                self._attributes = self.client.get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["All"]
                )["Attributes"]
        return self._attributes

    @property
    def dead_letter_url(self) -> str | None:
        """From the config, else from the queue's RedrivePolicy (deadLetterTargetArn)."""
        if not self._dlq_resolved:
            self._dlq_resolved = True
            policy = self.attributes.get("RedrivePolicy")
            if policy:
                import json

                arn = json.loads(policy).get("deadLetterTargetArn", "")
                name = arn.rsplit(":", 1)[-1]
                if name:
                    with self._aws(f"dead-letter queue {name}"):
                        self._dlq_url = self.client.get_queue_url(QueueName=name)["QueueUrl"]
        return self._dlq_url

    def _require_dlq(self) -> str:
        url = self.dead_letter_url
        if not url:
            raise ConfigError(
                f"{self.name}: the queue has no dead-letter queue",
                hint="set dead_letter_queue_url, or give the queue a RedrivePolicy",
            )
        return url

    def _url(self, dead_letter: bool) -> str:
        return self._require_dlq() if dead_letter else self.queue_url

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        return self._url(dead_letter)

    def purge(self, *, dead_letter: bool = False) -> int | None:
        """PurgeQueue: SQS removes the messages within about a minute and allows one purge a minute."""
        url = self._url(dead_letter)
        row = self._depth_row(url, "dead-letter" if dead_letter else "main")
        with self._aws(url):
            self.client.purge_queue(QueueUrl=url)
        return (row.ready or 0) + (row.in_flight or 0) + (row.delayed or 0)

    def destination_identity(self, *, dead_letter: bool = False) -> str:
        url = self._url(dead_letter)
        return self._queue_arn(url) or url

    def message_size_limit(self) -> int | None:
        return int(self.attributes.get("MaximumMessageSize", 262144))

    # -- publish -----------------------------------------------------------------------------
    def publish(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> list[Delivery]:
        """Send a batch and wait for its answer: `submit(...).result()`."""
        return self.submit(messages, dead_letter=dead_letter).result()

    def submit(
        self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False
    ) -> PendingPublish:
        """Hand a batch to the thread pool; every message gets its own answer (see the module docstring).

        Several batches may be in flight (`pipeline_window`): their requests share the pool, oldest
        first. On a standard queue each request (up to 10 entries) is a task. On a FIFO queue a
        batch's message groups are split into lanes, each sent in order by one thread, and a lane
        starts only once the lanes of earlier batches that send any of its groups are done: two
        requests of one group are never in flight together, and a group blocked by an earlier
        failure (see _send_lane) sends nothing more.

        A request that failed for the queue's or the network's sake fails its own entries and stops
        every entry of the batches in flight not yet sent; the others keep their answers. When
        nothing at all of a batch was confirmed the error is raised by its result() (the caller
        stops at once); otherwise it is raised by the next submit.
        """
        if self._broken is not None:
            raise self._broken
        url = self._url(dead_letter)
        fifo = url.endswith(".fifo")
        limit = self.message_size_limit() or MESSAGE_BYTES
        answers: dict[int, str | None] = {}
        entries: list[_Entry] = []
        for index, message in enumerate(messages):
            try:
                entries.append(self._prepare(index, message, fifo, limit))
            except _Refused as refused:
                answers[index] = str(refused)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.max_workers, thread_name_prefix="wfbus-sqs"
            )
        with self._lock:
            if self._in_flight == 0 and self._halt.error is not None:
                self._halt = _Halt()  # every earlier batch was answered: a new start (wfbus serve)
            self._in_flight += 1
            halt = self._halt
        futures: list[Future] = []
        if fifo:
            for lane in _fifo_lanes(entries, self.settings.max_workers):
                groups: set[str] = {entry.group for entry in lane if entry.group is not None}
                with self._lock:
                    earlier = {self._group_tail[g] for g in groups if g in self._group_tail}
                    future = self._pool.submit(self._send_after, earlier, url, lane, limit, halt)
                    for group in groups:
                        self._group_tail[group] = future
                future.add_done_callback(partial(self._untail, groups=groups))
                futures.append(future)
        else:
            for request in _sub_batches(entries, max(BATCH_BYTES, limit)):
                futures.append(self._pool.submit(self._send_lane, url, request, limit, halt))
        return SqsPending(self, messages, answers, futures)

    def _send_after(
        self, earlier: set[Future], url: str, lane: list[_Entry], limit: int, halt: _Halt
    ) -> tuple[dict[int, str | None], BrokerUnavailable | None]:
        """A FIFO lane: first wait for the earlier batches' lanes of its groups. They were submitted
        before it and the pool takes tasks in order, so they are running or done: no deadlock."""
        if earlier:
            futures_wait(earlier)
        return self._send_lane(url, lane, limit, halt)

    def _untail(self, done: Future, *, groups: set[str]) -> None:
        with self._lock:
            for group in groups:
                if self._group_tail.get(group) is done:
                    del self._group_tail[group]

    def _collect(
        self,
        messages: Sequence[OutgoingMessage],
        answers: dict[int, str | None],
        futures: list[Future],
    ) -> tuple[list[Delivery], BrokerUnavailable | None]:
        """Wait for a batch's requests and turn their answers into one Delivery per message."""
        errors: list[BrokerUnavailable] = []
        try:
            for future in futures:
                lane_answers, error = future.result()
                answers.update(lane_answers)
                if error is not None:
                    errors.append(error)
        finally:
            with self._lock:
                self._in_flight -= 1
        deliveries = [
            Delivery(m, None)
            if i in answers and answers[i] is None
            else Delivery(m, answers.get(i, NO_ANSWER))
            for i, m in enumerate(messages)
        ]
        if errors:
            if not any(d.ok for d in deliveries):
                return deliveries, errors[0]
            self._broken = errors[0]
        return deliveries, None

    def _send_lane(
        self, url: str, lane: list[_Entry], limit: int, halt: _Halt
    ) -> tuple[dict[int, str | None], BrokerUnavailable | None]:
        """Send entries in their order, one request at a time; retried entries go before the rest.

        In a FIFO lane a group whose entry ends unconfirmed (no answer, retries spent, failed
        request) sends no later entry for the rest of this broker's use (this emit or replay, across
        publishes): those fail as "not sent" and so stay behind it, in --failed-out or the
        dead-letter queue, in order. A message SQS refuses for what it is fails alone (it can never
        be sent as it is).
        """
        answers: dict[int, str | None] = {}
        pending = deque(lane)
        blocked = (
            self._blocked_groups
        )  # shared by the lanes (each group is in one lane) and later publishes
        error: BrokerUnavailable | None = None
        while pending:
            if (
                halt.error is not None
            ):  # this lane's own request, or another batch's in flight, failed
                error = error or halt.error
                reason = f"not sent: {halt.error.message}"
                answers.update((entry.index, reason) for entry in pending)
                for entry in pending:
                    _block(blocked, entry, halt.error.message)
                break
            batch = _take(pending, blocked, answers, max(BATCH_BYTES, limit))
            if not batch:
                continue
            try:
                response = self._request(url, batch)
            except _Refused as refused:  # the request as a whole: learn each entry's own answer
                if len(batch) == 1:
                    answers[batch[0].index] = str(refused)
                else:
                    for entry in reversed(batch):
                        entry.alone = True
                        pending.appendleft(entry)
                continue
            except BrokerUnavailable as exc:
                error = exc
                with self._lock:
                    halt.error = halt.error or exc
                for entry in batch:
                    answers[entry.index] = f"not confirmed: {exc.message}"
                    _block(blocked, entry, exc.message)
                continue
            answer = read_answer([str(n) for n in range(len(batch))], response)
            for entry_id in answer.confirmed:
                answers[batch[int(entry_id)].index] = None
            for entry_id, reason in answer.refused.items():
                answers[batch[int(entry_id)].index] = reason
            for entry_id in answer.missing:
                answers[batch[int(entry_id)].index] = NO_ANSWER
                _block(blocked, batch[int(entry_id)], NO_ANSWER)
            again = []
            for entry_id, reason in answer.retry.items():
                entry = batch[int(entry_id)]
                entry.tries += 1
                if entry.tries >= RETRIES:
                    answers[entry.index] = f"not confirmed after {RETRIES} tries: {reason}"
                    _block(blocked, entry, reason)
                else:
                    again.append(entry)
            if again:
                time.sleep(0.1 * 2 ** max(e.tries for e in again))
                pending.extendleft(reversed(again))
        return answers, error

    def _request(self, url: str, batch: list[_Entry]) -> dict[str, Any]:
        """One SendMessageBatch; a request refused for its content raises _Refused,
        anything else BrokerUnavailable."""
        import botocore.exceptions as bx

        entries = [{"Id": str(n), **entry.request} for n, entry in enumerate(batch)]
        with self._aws(url):
            try:
                return self.client.send_message_batch(QueueUrl=url, Entries=entries)
            except bx.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 400 and any(c in code for c in _CONTENT_ERRORS):
                    message = exc.response.get("Error", {}).get("Message", "")
                    raise _Refused(f"{code}: {message}".strip()) from None
                raise
            except bx.ParamValidationError as exc:
                raise _Refused(f"ParamValidation: {exc}") from None

    def _prepare(self, index: int, message: OutgoingMessage, fifo: bool, limit: int) -> _Entry:
        """The SendMessageBatch entry of one message, checked against SQS's rules; _Refused if it breaks one."""
        try:
            body = message.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(
                f"the body is not UTF-8 text (byte {exc.start}): SQS carries text only"
            ) from None
        if not body:
            raise _Refused("the body is empty: SQS refuses an empty message")
        bad = _REFUSED_CHARACTER.search(body)
        if bad:
            raise _Refused(
                f"the body holds U+{ord(bad.group()):04X} at character {bad.start()}, "
                "which SQS refuses in a message"
            )
        attributes, droppable = message_attributes(message)
        size = len(message.body) + sum(_attribute_size(n, a) for n, a in attributes.items())
        while size > limit and droppable:  # wfbus's own additions give way to the message as it was
            name = droppable.pop()
            size -= _attribute_size(name, attributes.pop(name))
        if size > limit:
            raise _Refused(
                f"the message is {size:,} bytes with its attributes, over the queue's "
                f"{limit:,}-byte limit"
            )
        request: dict[str, Any] = {"MessageBody": body}
        if attributes:
            request["MessageAttributes"] = attributes
        group = None
        if fifo:
            group = message.ordering_key or self.settings.message_group_id.format(
                urn=message.key, topic=message.topic
            )
            if not _GROUP_ID.match(group):
                raise _Refused(
                    f"message group id {group!r}: SQS takes 1 to 128 letters, digits and punctuation"
                )
            request["MessageGroupId"] = group
            dedup = message.dedup_id or self._dedup_id(message)
            if dedup:
                request["MessageDeduplicationId"] = dedup
        return _Entry(index, request, size, group)

    def _dedup_id(self, message: OutgoingMessage) -> str | None:
        """On emit, by the configured mode. A replay always brings its own (OutgoingMessage.dedup_id):
        with `content` a replay of an unchanged body inside SQS's 5 minutes would be dropped as a repeat."""
        mode = self.settings.deduplication
        if mode == "event-id":
            return message.event_id
        if mode == "random":
            return uuid.uuid4().hex
        return None

    # -- depth and peek ----------------------------------------------------------------------
    def depth(self) -> list[QueueDepth]:
        rows = [self._depth_row(self.queue_url, "main")]
        if self.dead_letter_url:
            rows.append(self._depth_row(self.dead_letter_url, "dead-letter"))
        return rows

    def _depth_row(self, url: str, role) -> QueueDepth:
        with self._aws(url):
            a = self.client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        return QueueDepth(
            self.name,
            url.rsplit("/", 1)[-1],
            role,
            ready=int(a.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(a.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(a.get("ApproximateNumberOfMessagesDelayed", 0)),
            approximate=True,
            detail={"queue_url": url},
        )

    def peek(
        self, *, dead_letter: bool, limit: int | None, force: bool = False
    ) -> list[ReceivedMessage]:
        """Receive (holding them invisible, with a heartbeat, each MessageId once), then make all visible again.

        A FIFO queue whose groups hide messages behind the ones read raises IncompleteRead rather
        than return a partial list as if it were all (see SqsDeadLetterReader).
        """
        url = self._url(dead_letter)
        if not force and self._has_redrive_policy(url):
            raise UsageError(
                f"{self.name}: peeking {url} counts as a receive, and the queue has a redrive policy: "
                "peeking can push messages toward its dead-letter queue",
                hint="pass --force to peek anyway",
            )
        with SqsDeadLetterReader(self, url) as reader:
            return reader.take(limit, step=BATCH_ENTRIES * 10)

    def _has_redrive_policy(self, url: str) -> bool:
        if url == self.queue_url:
            return "RedrivePolicy" in self.attributes
        with self._aws(url):
            return "RedrivePolicy" in self.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})

    def _receive(
        self, url: str, count: int, visibility: int, wait: int | None = None
    ) -> list[ReceivedMessage]:
        with self._aws(url):
            response = self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=self.settings.receive_wait_seconds if wait is None else wait,
                VisibilityTimeout=visibility,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        return [_received(m) for m in response.get("Messages", [])]

    def _queue_arn(self, url: str) -> str | None:
        """The queue's ARN (its identity across URLs and endpoints), None where the server gives none."""
        with self._aws(url):
            return (
                self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
                .get("Attributes", {})
                .get("QueueArn")
            )

    def _change_visibility(
        self, url: str, messages: Sequence[ReceivedMessage], seconds: int
    ) -> None:
        for start in range(0, len(messages), BATCH_ENTRIES):
            chunk = messages[start : start + BATCH_ENTRIES]
            with self._aws(url):
                self.client.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.handle, "VisibilityTimeout": seconds}
                        for i, m in enumerate(chunk)
                    ],
                )

    def _delete(self, url: str, messages: Sequence[ReceivedMessage]) -> None:
        for start in range(0, len(messages), BATCH_ENTRIES):
            chunk = messages[start : start + BATCH_ENTRIES]
            with self._aws(url):
                response = self.client.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.handle} for i, m in enumerate(chunk)
                    ],
                )
            if response.get("Failed"):
                failed = response["Failed"][0]
                raise BrokerUnavailable(
                    f"{self.name}: could not delete replayed messages from {url}: {failed.get('Code')}: "
                    f"{failed.get('Message', '')}",
                    hint="they were published; they will reappear in the dead-letter queue and may be replayed twice",
                )

    def dead_letter_reader(self) -> SqsDeadLetterReader:
        return SqsDeadLetterReader(self)

    def native_move(self, progress=None, poll_seconds: float = 0.5) -> dict[str, Any]:
        """Redrive with the server's own StartMessageMoveTask (DLQ -> this queue), waiting for the end."""
        dlq = self._require_dlq()
        arns = {}
        for url in (dlq, self.queue_url):
            with self._aws(url):
                arns[url] = self.client.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["QueueArn"]
                )["Attributes"]["QueueArn"]
        try:
            with self._aws("StartMessageMoveTask"):
                self.client.start_message_move_task(
                    SourceArn=arns[dlq], DestinationArn=arns[self.queue_url]
                )
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"{exc.message} (the server may not implement message move tasks)",
                hint="replay without --native: wfbus then moves the messages itself",
            ) from None
        while True:
            with self._aws("ListMessageMoveTasks"):
                tasks = self.client.list_message_move_tasks(SourceArn=arns[dlq], MaxResults=1).get(
                    "Results", []
                )
            task = tasks[0] if tasks else {}
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            total = task.get("ApproximateNumberOfMessagesToMove")
            if progress:
                progress(moved, int(total) if total is not None else None)
            if task.get("Status") in ("COMPLETED", "FAILED", "CANCELLED"):
                return {
                    "status": task["Status"],
                    "moved": moved,
                    "to_move": total,
                    "failure_reason": task.get("FailureReason"),
                }
            time.sleep(poll_seconds)


class SqsDeadLetterReader(DeadLetterReader):
    """Receives a queue (the DLQ for replay; any queue for peek) up to the count it held at the start.

    A heartbeat thread extends the visibility of every held message while the work goes on, so no
    other consumer sees them and none comes back to be read twice (a message that does come back,
    its visibility lapsed, is recognised by its MessageId and not returned again). Unselected
    messages are held until the end and then made visible again at once, so each message
    is examined once.

    On a FIFO queue SQS hands out no further message of a message group while one of the group is
    held. A replay removes what it replayed, so its groups move on; but a group whose head stays
    (not selected, not confirmed, or a dry run / peek that removes nothing) hides the rest of that
    group. That cannot be worked around without removing messages, so the reader says so:
    IncompleteRead (exit 1) naming how many messages it could not examine, instead of ending as if
    it had seen everything.
    """

    def __init__(self, broker: SqsBroker, url: str | None = None) -> None:
        self.broker = broker
        self.url = url or broker._require_dlq()
        self.fifo = self.url.endswith(".fifo")
        # a standard queue keeps handing out visible messages while we hold some; a FIFO queue hides
        # a held group's later messages (a receive ahead would end the replay early): one
        # batch at a time
        self.receive_ahead = not self.fifo
        self.source_label = f"{broker.name}:{self.url.rsplit('/', 1)[-1]}"
        self.identity = broker._queue_arn(self.url) or self.url
        self._bound = broker._depth_row(self.url, "dead-letter").ready or 0
        self._seen: set[str] = set()
        self._held: dict[str, ReceivedMessage] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._keep_invisible, daemon=True, name="wfbus-sqs-visibility"
        )
        self._heartbeat.start()

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        while len(out) < max_messages and len(self._seen) < self._bound:
            want = min(BATCH_ENTRIES, max_messages - len(out), self._bound - len(self._seen))
            # long-poll only while there is nothing to hand back: a FIFO group we hold
            # answers empty at once
            batch = self.broker._receive(
                self.url, want, self.broker.settings.visibility_timeout, wait=None if not out else 0
            )
            if not batch:
                break
            for message in batch:
                with self._lock:
                    self._held[message.handle] = message
                if message.message_id in self._seen:
                    continue  # its visibility lapsed and it came back: it is already being handled
                self._seen.add(message.message_id)
                out.append(message)
        if not out and self.fifo:
            self._check_complete()
        return out

    def _check_complete(self) -> None:
        """Raise IncompleteRead when visible messages remain behind group heads this reader holds."""
        with self._lock:
            held = len(self._held)
        if not held or len(self._seen) >= self._bound:
            return
        visible = self.broker._depth_row(self.url, "dead-letter").ready or 0
        if visible <= 0:
            return
        raise IncompleteRead(
            f"{self.broker.name}: {visible} message(s) of the FIFO queue {self.url.rsplit('/', 1)[-1]} were not "
            f"examined: SQS hands out no further message of a message group while one of the group is held, "
            f"and {held} message(s) at the head of their groups stay in the queue (not selected, not "
            "replayed, or only looked at)",
            hint="replay without filters (each group then moves on as it is replayed), or replay the whole "
            "queue to a local broker (`replay --to <local broker>`) and look at it there",
        )

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        self.broker._delete(self.url, messages)
        self._forget(messages)

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Held until close: released now, they would be received again by this very run."""

    def held_elsewhere(self) -> tuple[int, float | None] | None:
        """Messages in flight at the source that this reader does not hold (a killed run, another
        consumer), and an upper bound of the seconds until they return: the longer of the queue's
        VisibilityTimeout and wfbus's own (a killed wfbus run held them for that long at most)."""
        with self.broker._aws(self.url):
            attributes = self.broker.client.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=["ApproximateNumberOfMessagesNotVisible", "VisibilityTimeout"],
            )["Attributes"]
        with self._lock:
            mine = len(self._held)
        count = max(0, int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)) - mine)
        if not count:
            return 0, None
        return count, float(
            max(
                int(attributes.get("VisibilityTimeout", 30)),
                self.broker.settings.visibility_timeout,
            )
        )

    def close(self) -> None:
        self._stop.set()
        self._heartbeat.join(timeout=5)
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        if held:
            self.broker._change_visibility(self.url, held, 0)

    def _forget(self, messages: Sequence[ReceivedMessage]) -> None:
        with self._lock:
            for message in messages:
                self._held.pop(message.handle, None)

    def _keep_invisible(self) -> None:
        period = max(1.0, self.broker.settings.visibility_timeout / 3)
        while not self._stop.wait(period):
            with self._lock:
                held = list(self._held.values())
            try:
                self.broker._change_visibility(
                    self.url, held, self.broker.settings.visibility_timeout
                )
            # noqa: BLE001 - a missed heartbeat only risks a redelivery, never a loss
            except Exception:
                continue


# -- message attributes ----------------------------------------------------------------------------
def message_attributes(message: OutgoingMessage) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The SQS message attributes of a message, within SQS's rules, and which of them may give way.

    Same broker type (origin "sqs"): every attribute of the message as it was, type for type (Binary
    stays Binary, a custom `Number.x` stays so); a value the replay changed (`attempt`, `event-id`
    under `--attempt increment`) keeps its DataType. wfbus's additions (replayed-from, event-id,
    topic, urn, attempt, in that order) follow while fewer than 10 attributes are set; the ones that
    do not fit are dropped (the message as it was comes first; the body names the event anyway).

    Other sources (RabbitMQ, Kafka, local, emit): wfbus's own headers first (topic, urn, attempt,
    event-id, replayed-from), then the others in their order. A header SQS cannot carry as an
    attribute (a name SQS refuses, an empty value, a character SQS refuses) and those beyond the
    tenth are folded into one String attribute `wfbus-headers`, a JSON object (ASCII-escaped), which
    then takes the tenth place: nothing is dropped. `attempt` is a Number only when its
    value is a number.

    Returns the attributes and the names that may be dropped, least important last, when the message
    with its attributes is over the size limit (wfbus's additions, the fold); nothing
    else is dropped.
    """
    origin = message.origin
    if origin is not None and origin.broker_type == "sqs":
        return _same_type_attributes(message, origin)
    return _foreign_attributes(message.headers)


def _same_type_attributes(
    message: OutgoingMessage, origin: Origin
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    kept: dict[str, dict[str, Any]] = {}
    for name, attribute in (origin.properties.get("MessageAttributes") or {}).items():
        attribute = {
            k: v for k, v in attribute.items() if k in ("DataType", "StringValue", "BinaryValue")
        }
        changed = message.headers.get(name)
        if (
            changed is not None
            and "StringValue" in attribute
            and changed != attribute["StringValue"]
        ):
            attribute = _typed(name, changed, attribute["DataType"])
        kept[name] = attribute
    droppable: list[str] = []
    extra = [n for n in message.headers if n not in kept]
    extra.sort(key=lambda n: _ADDITIONS.index(n) if n in _ADDITIONS else len(_ADDITIONS))
    for name in extra:
        value = message.headers[name]
        if len(kept) < MAX_ATTRIBUTES and _valid_name(name) and _valid_text(value):
            kept[name] = _typed(name, value)
            droppable.append(name)  # most important first: the last one gives way first
    return kept, droppable


def _foreign_attributes(headers: dict[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    names = [n for n in _OWN_HEADERS if n in headers] + [
        n for n in headers if n not in _OWN_HEADERS
    ]
    fit = [n for n in names if _valid_name(n) and _valid_text(headers[n])]
    unfit = [n for n in names if n not in fit]
    if len(fit) > MAX_ATTRIBUTES or unfit:
        room = MAX_ATTRIBUTES - 1
        folded = [n for n in names if n in unfit or n in fit[room:]]
        fit = fit[:room]
    else:
        folded = []
    attributes = {n: _typed(n, headers[n]) for n in fit}
    if folded:
        attributes[FOLDED_HEADERS] = {
            "DataType": "String",
            "StringValue": json.dumps(
                {n: headers[n] for n in folded}, ensure_ascii=True, separators=(",", ":")
            ),
        }
    # wfbus's own may give way to the size limit (the last one first), the source's headers never
    return attributes, [n for n in _OWN_HEADERS if n in attributes]


def _valid_name(name: str) -> bool:
    """SQS: letters, digits, `_ - .`, up to 256; no leading/trailing/double period; not `AWS.`/`Amazon.`."""
    return (
        bool(_ATTRIBUTE_NAME.match(name))
        and not name.startswith(".")
        and not name.endswith(".")
        and ".." not in name
        and not name.lower().startswith(("aws.", "amazon."))
    )


def _valid_text(value: str) -> bool:
    return bool(value) and _REFUSED_CHARACTER.search(value) is None


def _typed(name: str, value: str, data_type: str | None = None) -> dict[str, Any]:
    """A String attribute, or a Number where the value is one and its type (or the name `attempt`) says so."""
    numeric = (
        bool(_NUMBER.match(value))
        and sum(c.isdigit() for c in value.split("e")[0].split("E")[0]) <= 38
    )
    if data_type and _DATA_TYPE.match(data_type) and not data_type.startswith("Binary"):
        if data_type.startswith("String") or numeric:
            return {"DataType": data_type, "StringValue": value}
    if numeric and (name == HEADER_ATTEMPT or (data_type or "").startswith("Number")):
        return {"DataType": "Number", "StringValue": value}
    return {"DataType": "String", "StringValue": value}


def _attribute_size(name: str, attribute: dict[str, Any]) -> int:
    """What SQS counts toward the message size: name, type and value."""
    value = attribute.get("StringValue")
    value_size = (
        len(value.encode("utf-8"))
        if value is not None
        else len(attribute.get("BinaryValue") or b"")
    )
    return len(name.encode("utf-8")) + len(attribute["DataType"].encode("utf-8")) + value_size


# -- batching --------------------------------------------------------------------------------------
def _sub_batches(entries: Sequence[_Entry], max_bytes: int) -> Iterator[list[_Entry]]:
    """Consecutive entries, at most 10 and `max_bytes` together, per request."""
    batch: list[_Entry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == BATCH_ENTRIES or size + entry.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def _fifo_lanes(entries: Sequence[_Entry], workers: int) -> list[list[_Entry]]:
    """Split by message group into at most `workers` lanes, each sent in order by one thread.

    A group lives in one lane, so its messages leave in input order; the largest groups are spread
    first over the least loaded lanes, so the lanes finish together.
    """
    groups: dict[str | None, list[_Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.group, []).append(entry)
    count = min(workers, len(groups))
    if count == 0:
        return []
    load = [0] * count
    lane_of: dict[str | None, int] = {}
    for group, members in sorted(groups.items(), key=lambda item: -len(item[1])):
        lane = load.index(min(load))
        lane_of[group] = lane
        load[lane] += len(members)
    lanes: list[list[_Entry]] = [[] for _ in range(count)]
    for entry in entries:  # input order within each lane
        lanes[lane_of[entry.group]].append(entry)
    return [lane for lane in lanes if lane]


def _take(
    pending: deque[_Entry], blocked: dict[str, str], answers: dict[int, str | None], max_bytes: int
) -> list[_Entry]:
    """The next request's entries from the front of a lane; entries of a blocked group fail unsent."""
    batch: list[_Entry] = []
    size = 0
    while pending and len(batch) < BATCH_ENTRIES:
        entry = pending[0]
        if entry.group is not None and entry.group in blocked:
            pending.popleft()
            answers[entry.index] = (
                f"not sent: an earlier message of its message group failed ({blocked[entry.group]})"
            )
            continue
        if batch and (entry.alone or batch[0].alone or size + entry.size > max_bytes):
            break
        batch.append(pending.popleft())
        size += entry.size
    return batch


def _block(blocked: dict[str, str], entry: _Entry, reason: str) -> None:
    if entry.group is not None:
        blocked.setdefault(entry.group, reason)


def _received(message: dict[str, Any]) -> ReceivedMessage:
    """A received SQS message: text attributes as headers (Binary ones only in the origin), the typed
    attributes and the message group in the origin, so a replay into SQS re-sends them type for type."""
    attributes = message.get("Attributes", {})
    typed = message.get("MessageAttributes", {})
    group = attributes.get("MessageGroupId")
    properties: dict[str, Any] = {"MessageAttributes": typed}
    if group is not None:
        properties["MessageGroupId"] = group
    return ReceivedMessage(
        body=message["Body"].encode("utf-8"),
        headers={k: v["StringValue"] for k, v in typed.items() if "StringValue" in v},
        handle=message["ReceiptHandle"],
        message_id=message["MessageId"],
        arrival_id=message[
            "MessageId"
        ],  # one send: a deleted message never comes back under this id
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)) or None,
        ordering_key=group,
        origin=Origin("sqs", properties=properties),
    )


def _region_from(url: str | None) -> str | None:
    match = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com", url or "")
    return match.group(1) if match else None

"""AWS SQS (boto3): batched, threaded emit; depth; peek; no-loss dead-letter redrive.

boto3 is imported only when a broker of this type is used.  Every botocore error that means
"cannot reach / not allowed / no such queue" becomes BrokerUnavailable naming the queue and the fix.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, model_validator

from ..errors import BrokerUnavailable, ConfigError, UsageError
from .base import (
    Capabilities,
    HEADER_ATTEMPT,
    Broker,
    BrokerSettings,
    DeadLetterReader,
    Delivery,
    OutgoingMessage,
    QueueDepth,
    ReceivedMessage,
)

BATCH_ENTRIES = 10
BATCH_BYTES = 262_144  # SendMessageBatch: the sum of all entries
RETRIES = 4


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

    @model_validator(mode="after")
    def _one_queue(self) -> SqsSettings:
        if bool(self.queue_url) == bool(self.queue_name):
            raise ValueError("give exactly one of queue_url or queue_name")
        return self

    def secret_values(self) -> list[str]:
        return [v for v in (self.aws_secret_access_key, self.aws_access_key_id) if v]

    def target(self) -> str:
        return self.queue_url or f"queue {self.queue_name}"


class SqsBroker(Broker):
    settings_model = SqsSettings
    publish_batch_size = 500
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

    @classmethod
    def capabilities_for(cls, settings: SqsSettings) -> Capabilities:
        """A FIFO queue keeps order per message group and drops a resend carrying a seen dedup id."""
        if (settings.queue_url or settings.queue_name or "").endswith(".fifo"):
            return Capabilities(ordering="per-group", dedup_on_resend=True, native_move=True, exact_depth=False)
        return cls.implements

    # -- connection --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            session = boto3.session.Session(profile_name=s.profile) if s.profile else boto3.session.Session()
            self._client = session.client(
                "sqs",
                region_name=s.region or _region_from(s.queue_url) or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                endpoint_url=s.endpoint_url,
                aws_access_key_id=s.aws_access_key_id,
                aws_secret_access_key=s.aws_secret_access_key,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=s.timeout_seconds,
                    read_timeout=s.timeout_seconds + s.receive_wait_seconds,
                    max_pool_connections=max(10, s.max_workers * 2),
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
                raise BrokerUnavailable(f"{self.name}: {what}: queue does not exist",
                                        hint="check queue_url / queue_name and the region of broker "
                                             f"{self.name!r}") from None
            if code in ("AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                        "UnrecognizedClientException", "ExpiredToken"):
                raise BrokerUnavailable(f"{self.name}: {what}: {code}: {message}",
                                        hint="check the AWS credentials and the queue's access policy") from None
            raise BrokerUnavailable(f"{self.name}: {what}: {code}: {message}") from None
        except bx.NoCredentialsError:
            raise BrokerUnavailable(f"{self.name}: {what}: no AWS credentials found",
                                    hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or `profile:` "
                                         "in the config") from None
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                bx.ConnectionClosedError) as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: cannot reach SQS: {exc}",
                                    hint="check endpoint_url / region and the network") from None
        except bx.BotoCoreError as exc:
            raise BrokerUnavailable(f"{self.name}: {what}: {exc}") from None

    # -- queues ------------------------------------------------------------------------------
    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            with self._aws(f"queue {self.settings.queue_name}"):
                self._queue_url = self.client.get_queue_url(QueueName=self.settings.queue_name)["QueueUrl"]
        return self._queue_url

    @property
    def attributes(self) -> dict[str, str]:
        if self._attributes is None:
            with self._aws(self.queue_url):
                self._attributes = self.client.get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
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
            raise ConfigError(f"{self.name}: the queue has no dead-letter queue",
                              hint="set dead_letter_queue_url, or give the queue a RedrivePolicy")
        return url

    def _url(self, dead_letter: bool) -> str:
        return self._require_dlq() if dead_letter else self.queue_url

    def describe_destination(self, *, dead_letter: bool = False) -> str:
        return self._url(dead_letter)

    def message_size_limit(self) -> int | None:
        return int(self.attributes.get("MaximumMessageSize", 262144))

    # -- publish -----------------------------------------------------------------------------
    def publish(self, messages: Sequence[OutgoingMessage], *, dead_letter: bool = False) -> list[Delivery]:
        url = self._url(dead_letter)
        fifo = url.endswith(".fifo")
        batches = list(_batches(messages))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.max_workers, thread_name_prefix="wfbus-sqs")
        results: dict[int, str | None] = {}
        for outcome in self._pool.map(lambda batch: self._send_batch(url, fifo, batch), batches):
            results.update(outcome)
        return [Delivery(m, results.get(i, "no answer from SQS")) if results.get(i) else Delivery(m)
                for i, m in enumerate(messages)]

    def _send_batch(self, url: str, fifo: bool, batch: list[tuple[int, OutgoingMessage]]) -> dict[int, str | None]:
        pending = {str(i): m for i, m in batch}
        outcome: dict[int, str | None] = {}
        for attempt in range(RETRIES):
            entries = [self._entry(entry_id, m, fifo) for entry_id, m in pending.items()]
            with self._aws(url):
                response = self.client.send_message_batch(QueueUrl=url, Entries=entries)
            for ok in response.get("Successful", []):
                outcome[int(ok["Id"])] = None
                pending.pop(ok["Id"], None)
            retry: dict[str, OutgoingMessage] = {}
            for failed in response.get("Failed", []):
                reason = f"{failed.get('Code')}: {failed.get('Message', '')}".strip()
                if failed.get("SenderFault"):
                    outcome[int(failed["Id"])] = reason
                else:
                    retry[failed["Id"]] = pending[failed["Id"]]
                    outcome[int(failed["Id"])] = reason
            pending = retry
            if not pending:
                break
            time.sleep(0.1 * 2**attempt)
        return outcome

    def _entry(self, entry_id: str, message: OutgoingMessage, fifo: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": entry_id,
            "MessageBody": message.body.decode("utf-8"),
            "MessageAttributes": {
                name: {"DataType": "Number" if name == HEADER_ATTEMPT else "String", "StringValue": value}
                for name, value in message.headers.items()
            },
        }
        if fifo:
            entry["MessageGroupId"] = message.ordering_key or self.settings.message_group_id.format(
                urn=message.key, topic=message.topic)
            mode = self.settings.deduplication
            if mode == "event-id":
                entry["MessageDeduplicationId"] = message.dedup_id or message.event_id
            elif mode == "random":
                entry["MessageDeduplicationId"] = uuid.uuid4().hex
        return entry

    # -- depth and peek ----------------------------------------------------------------------
    def depth(self) -> list[QueueDepth]:
        rows = [self._depth_row(self.queue_url, "main")]
        if self.dead_letter_url:
            rows.append(self._depth_row(self.dead_letter_url, "dead-letter"))
        return rows

    def _depth_row(self, url: str, role) -> QueueDepth:
        with self._aws(url):
            a = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return QueueDepth(self.name, url.rsplit("/", 1)[-1], role,
                          ready=int(a.get("ApproximateNumberOfMessages", 0)),
                          in_flight=int(a.get("ApproximateNumberOfMessagesNotVisible", 0)),
                          delayed=int(a.get("ApproximateNumberOfMessagesDelayed", 0)),
                          approximate=True, detail={"queue_url": url})

    def peek(self, *, dead_letter: bool, limit: int | None, force: bool = False) -> list[ReceivedMessage]:
        """Receive (holding them invisible so each is seen once), then make all visible again."""
        url = self._url(dead_letter)
        if not force and self._has_redrive_policy(url):
            raise UsageError(
                f"{self.name}: peeking {url} counts as a receive, and the queue has a redrive policy: "
                "peeking can push messages toward its dead-letter queue",
                hint="pass --force to peek anyway",
            )
        held: list[ReceivedMessage] = []
        try:
            while limit is None or len(held) < limit:
                batch = self._receive(url, BATCH_ENTRIES if limit is None else min(BATCH_ENTRIES, limit - len(held)),
                                      visibility=max(30, self.settings.visibility_timeout))
                if not batch:
                    break
                held.extend(batch)
        finally:
            self._change_visibility(url, held, 0)
        return held

    def _has_redrive_policy(self, url: str) -> bool:
        if url == self.queue_url:
            return "RedrivePolicy" in self.attributes
        with self._aws(url):
            return "RedrivePolicy" in self.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})

    def _receive(self, url: str, count: int, visibility: int) -> list[ReceivedMessage]:
        with self._aws(url):
            response = self.client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=self.settings.receive_wait_seconds,
                VisibilityTimeout=visibility, AttributeNames=["All"], MessageAttributeNames=["All"],
            )
        return [_received(m) for m in response.get("Messages", [])]

    def _change_visibility(self, url: str, messages: Sequence[ReceivedMessage], seconds: int) -> None:
        for start in range(0, len(messages), BATCH_ENTRIES):
            chunk = messages[start:start + BATCH_ENTRIES]
            with self._aws(url):
                self.client.change_message_visibility_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m.handle, "VisibilityTimeout": seconds}
                    for i, m in enumerate(chunk)])

    def _delete(self, url: str, messages: Sequence[ReceivedMessage]) -> None:
        for start in range(0, len(messages), BATCH_ENTRIES):
            chunk = messages[start:start + BATCH_ENTRIES]
            with self._aws(url):
                response = self.client.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m.handle} for i, m in enumerate(chunk)])
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
                arns[url] = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                    "Attributes"]["QueueArn"]
        try:
            with self._aws("StartMessageMoveTask"):
                self.client.start_message_move_task(SourceArn=arns[dlq], DestinationArn=arns[self.queue_url])
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"{exc.message} (the server may not implement message move tasks)",
                                    hint="replay without --native: wfbus then moves the messages itself") from None
        while True:
            with self._aws("ListMessageMoveTasks"):
                tasks = self.client.list_message_move_tasks(SourceArn=arns[dlq], MaxResults=1).get("Results", [])
            task = tasks[0] if tasks else {}
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            total = task.get("ApproximateNumberOfMessagesToMove")
            if progress:
                progress(moved, int(total) if total is not None else None)
            if task.get("Status") in ("COMPLETED", "FAILED", "CANCELLED"):
                return {"status": task["Status"], "moved": moved, "to_move": total,
                        "failure_reason": task.get("FailureReason")}
            time.sleep(poll_seconds)


class SqsDeadLetterReader(DeadLetterReader):
    """Receives the DLQ up to the count it held at the start, keeping what it holds invisible.

    A heartbeat thread extends the visibility of every held message while the replay works, so no
    other consumer sees them; unselected messages are held until the end and then made visible again
    at once, so each message is examined once and the replay ends.
    """

    def __init__(self, broker: SqsBroker) -> None:
        self.broker = broker
        self.url = broker._require_dlq()
        self.source_label = f"{broker.name}:{self.url.rsplit('/', 1)[-1]}"
        self._bound = broker._depth_row(self.url, "dead-letter").ready or 0
        self._seen: set[str] = set()
        self._held: dict[str, ReceivedMessage] = {}
        self._deferred: list[ReceivedMessage] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._keep_invisible, daemon=True, name="wfbus-sqs-visibility")
        self._heartbeat.start()

    def receive(self, max_messages: int) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        while len(out) < max_messages and len(self._seen) < self._bound:
            want = min(BATCH_ENTRIES, max_messages - len(out), self._bound - len(self._seen))
            batch = self.broker._receive(self.url, want, self.broker.settings.visibility_timeout)
            if not batch:
                break
            for message in batch:
                with self._lock:
                    self._held[message.handle] = message
                if message.message_id in self._seen:
                    continue  # its visibility lapsed and it came back: it is already being handled
                self._seen.add(message.message_id)
                out.append(message)
        return out

    def ack(self, messages: Sequence[ReceivedMessage]) -> None:
        self.broker._delete(self.url, messages)
        self._forget(messages)

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        self._deferred.extend(messages)

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
                self.broker._change_visibility(self.url, held, self.broker.settings.visibility_timeout)
            except Exception:  # noqa: BLE001 - a missed heartbeat only risks a redelivery, never a loss
                continue


def _batches(messages: Sequence[OutgoingMessage]) -> Iterator[list[tuple[int, OutgoingMessage]]]:
    batch: list[tuple[int, OutgoingMessage]] = []
    size = 0
    for index, message in enumerate(messages):
        entry_size = len(message.body) + sum(len(k) + len(v) + 6 for k, v in message.headers.items())
        if batch and (len(batch) == BATCH_ENTRIES or size + entry_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((index, message))
        size += entry_size
    if batch:
        yield batch


def _received(message: dict[str, Any]) -> ReceivedMessage:
    attributes = message.get("Attributes", {})
    return ReceivedMessage(
        body=message["Body"].encode("utf-8"),
        headers={k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()},
        handle=message["ReceiptHandle"],
        message_id=message["MessageId"],
        arrival_id=message["MessageId"],  # one send: a deleted message never comes back under this id
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)) or None,
        ordering_key=attributes.get("MessageGroupId"),
    )


def _region_from(url: str | None) -> str | None:
    match = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com", url or "")
    return match.group(1) if match else None

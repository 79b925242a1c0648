"""Broker-agnostic redrive: receive from a dead-letter queue, publish (confirmed), then ack.

The order is the whole point: a message is removed from its source only after the destination
confirmed it, so a crash can at worst duplicate a message, never lose one.  Where the source and
destination can do it atomically (the local broker into the same file), the reader's
`transfer` moves publish and ack into one transaction.

Pipelining: where the reader may receive ahead of its acks (`DeadLetterReader.receive_ahead`), up to
the destination's `pipeline_window` batches are published and unsettled at once; each is settled
(answer read, journal, ack, release) oldest first, and a stop or an abort settles every batch still
in flight before the run ends. A kill can leave the batches in flight published but not journaled:
a rerun may repeat at most those (window x --batch), as before it could repeat the one on the wire.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .brokers.base import (
    HEADER_ATTEMPT,
    HEADER_EVENT_ID,
    HEADER_REPLAYED_FROM,
    HEADER_TOPIC,
    HEADER_URN,
    Broker,
    Delivery,
    OutgoingMessage,
    PendingPublish,
    ReceivedMessage,
)
from .errors import ExitStatus, WfbusError
from .event import WireFormat
from .interrupts import deferred, signal_of
from .journal import Journal
from .redact import redact
from .selection import Parsed, Selection, parse_message

ProgressCallback = Callable[[int, int | None], None]
FAILED_SAMPLE_SIZE = 1000  # failures kept in the report; the rest are counted


AttemptPolicy = Literal["keep", "increment", "reset"]


@dataclass
class FailedReplay:
    message_id: str
    event_id: str
    topic: str
    error: str


@dataclass
class ReplayReport:
    source: str
    destination: str
    dry_run: bool
    examined: int = 0
    selected: int = 0
    replayed: int = 0
    failed: list[FailedReplay] = field(default_factory=list)  # the first FAILED_SAMPLE_SIZE
    failed_count: int = 0
    by_topic: Counter = field(default_factory=Counter)  # examined
    selected_by_topic: Counter = field(default_factory=Counter)
    by_attempt: Counter = field(default_factory=Counter)
    by_reason: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)
    passed_over: bool = False  # Kafka: unselected messages are skipped, not kept in the queue
    aborted: str | None = None
    abort_hint: str | None = None
    abort_status: int = (
        ExitStatus.BROKER_UNAVAILABLE
    )  # the error's own exit code when nothing was replayed
    stopped_by: int | None = (
        None  # the signal that stopped the run (2 Ctrl-C, 15 SIGTERM, 1 SIGHUP)
    )
    resumed: int = (
        0  # confirmed by a killed earlier run; this run only removed them from the source
    )
    crossed_types: int = (
        0  # replayed into another broker type: headers as text, properties as headers
    )
    held_elsewhere: int = (
        0  # at the source but invisible to this run (held by a killed run or a consumer)
    )
    held_return_seconds: float | None = None  # when they become visible again, at the latest
    dead_letter_after: dict | None = (
        None  # the source's dead-letter depth after the run, as `depth` shows it
    )

    @property
    def interrupted(self) -> bool:
        return self.stopped_by is not None

    @property
    def left(self) -> int:
        """Examined and still at the source: not selected, failed, or not moved before a stop."""
        return self.examined - self.replayed

    @property
    def exit_status(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        if self.aborted and self.replayed == 0:
            return self.abort_status
        if self.failed_count or self.aborted or self.held_elsewhere:
            return ExitStatus.DELIVERY_FAILED  # not drained: held messages were never examined
        return ExitStatus.OK


def outgoing_for(
    parsed: Parsed,
    source_label: str,
    policy: AttemptPolicy = "keep",
    wire: WireFormat = "topic",
    destination_type: str | None = None,
) -> OutgoingMessage:
    """The message to publish: same body and headers, plus where it was replayed from.

    With an attempt policy other than `keep`, the body is re-encoded with the new attempt (and so
    gets a new event id); a body that is not a workflow event is always forwarded as it is. Into the
    same broker type the destination republishes the typed origin exactly; into another type the
    headers travel as text, and the source's message properties (AMQP correlation_id, reply_to, ...)
    as text headers named `<type>-<property>`, so nothing the destination can carry is dropped.
    """
    message = parsed.message
    headers = dict(
        message.headers
    )  # the user's headers; brokers already left out their own bookkeeping
    origin = message.origin
    if (
        origin is not None
        and destination_type is not None
        and origin.broker_type != destination_type
    ):
        for name, value in origin.properties.items():
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                headers.setdefault(f"{origin.broker_type}-{name}", str(value))
    body = message.body
    event = parsed.event
    if event is not None and policy != "keep":
        event = event.with_attempt(event.attempt + 1 if policy == "increment" else 0)
        body = event.encode(wire)
        headers[HEADER_ATTEMPT] = str(event.attempt)
        headers[HEADER_EVENT_ID] = event.event_id
    event_id = headers.get(HEADER_EVENT_ID) or (event.event_id if event else message.message_id)
    headers.setdefault(HEADER_TOPIC, parsed.topic)
    headers.setdefault(HEADER_URN, parsed.urn)
    if parsed.attempt is not None:
        headers.setdefault(HEADER_ATTEMPT, str(parsed.attempt))
    headers[HEADER_EVENT_ID] = event_id
    headers[HEADER_REPLAYED_FROM] = source_label
    return OutgoingMessage(
        body=body,
        topic=parsed.topic,
        key=parsed.urn,
        event_id=event_id,
        headers=headers,
        place=message.message_id,
        dedup_id=_dedup_id(source_label, message.arrival_id)
        if message.arrival_id
        else uuid.uuid4().hex,
        ordering_key=message.ordering_key,
        route=message.route or None,
        origin=message.origin,
    )


def _dedup_id(source_label: str, arrival_id: str) -> str:
    """The SQS FIFO deduplication id of a replayed message.

    SQS FIFO drops a message whose dedup id it saw in the last 5 minutes. Not the event id (the
    original publish used it: a replay soon after would be dropped), but the dead-lettered message's
    arrival id: a replay killed after SQS took the message and rerun sends the same id again, and
    SQS drops that duplicate. Without an arrival id, a fresh id every time.
    """
    return hashlib.sha256(f"{source_label}\0{arrival_id}".encode()).hexdigest()


@dataclass
class ReplayOptions:
    selection: Selection = field(default_factory=Selection)
    dry_run: bool = False
    attempt: AttemptPolicy = "keep"
    batch_size: int = 100
    rate: float | None = None  # events per second, smooth
    sample_size: int = 5


def replay(
    source: Broker,
    destination: Broker,
    options: ReplayOptions,
    *,
    journal: Journal | None = None,
    progress: ProgressCallback | None = None,
) -> ReplayReport:
    selection = options.selection
    report = ReplayReport(
        source=f"{source.name} (dead-letter)",
        destination=redact(f"{destination.name}: {destination.describe_destination()}"),
        dry_run=options.dry_run,
        passed_over=not source.capabilities.keeps_unselected,
    )
    batch_size = options.batch_size
    rate = options.rate
    pacer = _Pacer(rate) if rate else None
    if rate:  # small steps: a smooth rate, not bursts
        batch_size = max(1, min(batch_size, int(rate / 5)))
    reader = source.dead_letter_reader()
    if journal is not None:
        journal.bind(reader.identity or f"{source.name}:{reader.source_label}")
    # batches published and not yet settled (answer read, journal, ack/release), oldest first; more
    # than one only where the reader may receive ahead of its
    # acks (see DeadLetterReader.receive_ahead)
    # A paced replay (--rate) keeps one: its batches are spaced wider than a publish takes, so a
    # window would only hold received messages unsettled longer (and invisible
    # to concurrent replays).
    window = max(1, destination.pipeline_window) if reader.receive_ahead and pacer is None else 1
    mover = _Mover(
        reader,
        destination,
        report,
        options.attempt,
        journal,
        atomic=source.capabilities.atomic_transfer,
    )
    try:
        while selection.limit is None or report.selected < selection.limit:
            received = reader.receive(batch_size)
            if not received:
                break
            chosen: list[Parsed] = []
            skipped: list[ReceivedMessage] = []  # examined, not selected by the filters
            beyond_limit: list[ReceivedMessage] = []  # not examined: left for the next replay
            for message in received:
                if selection.limit is not None and report.selected >= selection.limit:
                    beyond_limit.append(message)
                    continue
                parsed = parse_message(message)
                report.examined += 1
                report.by_topic[parsed.topic] += 1
                report.by_attempt[parsed.attempt] += 1
                if message.dead_letter_reason:
                    report.by_reason[message.dead_letter_reason] += 1
                if selection.accepts(parsed):
                    report.selected += 1
                    report.selected_by_topic[parsed.topic] += 1
                    chosen.append(parsed)
                    if len(report.samples) < options.sample_size:
                        report.samples.append(_sample(parsed))
                else:
                    skipped.append(message)
            if options.dry_run:
                continue  # touch nothing: closing the reader hands everything back unchanged
            if skipped:
                reader.skip(skipped)
            if beyond_limit:
                reader.release(beyond_limit)
            if chosen:
                if pacer:
                    pacer.wait(len(chosen))
                mover.start(chosen)
                while len(mover.in_flight) >= window:
                    mover.settle_oldest()
                    if progress:
                        progress(report.replayed, selection.limit)
            elif progress:
                progress(report.replayed, selection.limit)
        while mover.in_flight:
            mover.settle_oldest()
        if progress:
            progress(report.replayed, selection.limit)
    except KeyboardInterrupt as stop:
        report.stopped_by = signal_of(stop)
    except WfbusError as exc:
        _abort(report, exc)
    finally:
        # a stop or an abort: every batch on the wire is still answered and settled exactly
        _settle_all(mover, report)
        _finish_reading(reader, report, ask_held=selection.limit is None)
    report.dead_letter_after = _dead_letter_depth(source)
    return report


def _settle_all(mover: _Mover, report: ReplayReport) -> None:
    """Read the answer of every batch still in flight and settle it (journal, ack, release), each
    whole; an error settling one is the run's abort reason and the next ones are still settled. A
    second stop signal is held until all are settled: each is bounded by the broker's timeouts."""
    while mover.in_flight:
        try:
            mover.settle_oldest()
        except KeyboardInterrupt as stop:
            report.stopped_by = report.stopped_by or signal_of(stop)
        except WfbusError as exc:
            _abort(report, exc)


def _finish_reading(reader, report: ReplayReport, *, ask_held: bool) -> None:
    """Ask what others hold, and close the reader, without losing the report: a broker lost at this
    point (its connection reset while closing) is said as the reason the replay stopped; what it did
    not confirm removing stays at the source (the journal recognises it on the next run)."""
    try:
        if ask_held and not report.aborted and not report.interrupted:
            held = reader.held_elsewhere()
            if held:
                report.held_elsewhere, report.held_return_seconds = held
    except WfbusError as exc:
        _abort(report, exc)
    try:
        reader.close()
    except WfbusError as exc:
        _abort(report, exc)


def _abort(report: ReplayReport, exc: WfbusError) -> None:
    if report.aborted is None:
        report.aborted = redact(exc.message)
        report.abort_hint = exc.hint or (
            "run the replay again: a message whose removal was not confirmed is "
            "recognised and only removed"
        )
        report.abort_status = exc.exit_status


def _dead_letter_depth(source: Broker) -> dict | None:
    """What `wfbus depth` shows for the source's dead-letter queue now, so the report can be checked
    against the broker (None when the broker cannot be asked: it is down)."""
    try:
        rows = [row for row in source.depth() if row.role == "dead-letter"]
    except (WfbusError, OSError):
        return None
    if not rows:
        return None
    row = rows[0]
    return {
        "ready": row.ready,
        "in_flight": row.in_flight,
        "lag": row.lag,
        "approximate": row.approximate,
    }


@dataclass
class _Moving:
    """A batch published to the destination whose answer has not been settled at the source yet."""

    pending: PendingPublish
    chosen: list[Parsed]


class _Mover:
    """Moves chosen messages: publish (submit) now, settle oldest first once the answer is read.

    Settling is the order that makes a replay safe: the destination's confirmation, then the journal
    entry, then the removal at the source; a message the destination did not confirm is released.
    """

    def __init__(
        self,
        reader,
        destination: Broker,
        report: ReplayReport,
        policy: AttemptPolicy,
        journal: Journal | None,
        *,
        atomic: bool,
    ) -> None:
        self.reader = reader
        self.destination = destination
        self.report = report
        self.policy = policy
        self.journal = journal
        self.in_flight: deque[_Moving] = deque()
        self.atomic = (
            atomic  # the source may publish and remove in one transaction (reader.transfer)
        )

    def start(self, chosen: list[Parsed]) -> None:
        """Finish what the journal knows was published, then hand the rest to the destination; inside
        deferred(), so a stop finds the batch either untouched or in flight."""
        with deferred():
            chosen = self._finish_journaled(chosen)
            if not chosen:
                return
            reader, destination, report = self.reader, self.destination, self.report
            outgoing = [
                outgoing_for(
                    p, reader.source_label, self.policy, destination.wire, destination.settings.type
                )
                for p in chosen
            ]
            report.crossed_types += sum(
                1
                for p in chosen
                if p.message.origin is not None
                and p.message.origin.broker_type != destination.settings.type
            )
            messages = [p.message for p in chosen]
            if self.in_flight and self.atomic:
                # a transfer publishes at once: never past a batch still in flight
                self._settle_all_now()
            deliveries = reader.transfer(messages, outgoing, destination)
            if deliveries is not None:
                self._count(chosen, deliveries)
                return
            try:
                pending = destination.submit(outgoing)
            except WfbusError:
                reader.release(messages)  # nothing of it was sent
                raise
            self.in_flight.append(_Moving(pending, chosen))

    def _settle_all_now(self) -> None:
        while self.in_flight:
            self._settle(self.in_flight[0])

    def settle_oldest(self) -> None:
        with deferred():
            self._settle(self.in_flight[0])

    def _settle(self, moving: _Moving) -> None:
        """Read one batch's answer; journal and remove what was confirmed, release the rest. The batch
        leaves the window whatever happens: an error here is the run's abort reason."""
        self.in_flight.popleft()
        reader, journal = self.reader, self.journal
        messages = [p.message for p in moving.chosen]
        try:
            deliveries = moving.pending.result()
        except WfbusError:
            reader.release(messages)  # not one of them was confirmed: they stay at the source
            raise
        confirmed = [m for m, d in zip(messages, deliveries, strict=False) if d.ok]
        if confirmed:
            if journal is not None:
                journal.mark_published(m.journal_key for m in confirmed)
            reader.ack(confirmed)
            if journal is not None:
                journal.forget(m.journal_key for m in confirmed if not m.arrival_id)
        rejected = [m for m, d in zip(messages, deliveries, strict=False) if not d.ok]
        if rejected:
            reader.release(rejected)
        self._count(moving.chosen, deliveries)

    def _finish_journaled(self, chosen: list[Parsed]) -> list[Parsed]:
        """A previous run was killed after the destination confirmed these (or the broker lost their
        removal in a crash): only finish removing them. Returns the others."""
        journal, reader, report = self.journal, self.reader, self.report
        if journal is None:
            return chosen
        candidates = [
            p.message.journal_key
            for p in chosen
            if p.message.journal_key
            and (p.message.arrival_id or p.message.redelivered is not False)
        ]
        done = journal.already_published(candidates)
        if not done:
            return chosen
        finished = [p.message for p in chosen if p.message.journal_key in done]
        reader.ack(finished)
        journal.forget(m.journal_key for m in finished if not m.arrival_id)
        report.replayed += len(finished)
        report.resumed += len(finished)
        return [p for p in chosen if p.message.journal_key not in done]

    def _count(self, chosen: Sequence[Parsed], deliveries: Sequence[Delivery]) -> None:
        report = self.report
        for parsed, delivery in zip(chosen, deliveries, strict=False):
            if delivery.taken_elsewhere:
                report.selected -= 1
                report.examined -= 1
            elif delivery.ok:
                report.replayed += 1
            else:
                report.failed_count += 1
                if len(report.failed) < FAILED_SAMPLE_SIZE:  # memory stays flat however many fail
                    report.failed.append(
                        FailedReplay(
                            parsed.message.message_id,
                            delivery.message.event_id,
                            parsed.topic,
                            redact(delivery.error or ""),
                        )
                    )


class _Pacer:
    """Spaces publishes evenly at `rate` events per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()

    def wait(self, count: int) -> None:
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + count * self.interval


def _sample(parsed: Parsed) -> dict:
    if parsed.event is not None:
        return parsed.event.to_dict()
    return {
        "body": parsed.message.body.decode("utf-8", "replace")[:200],
        "headers": parsed.message.headers,
    }

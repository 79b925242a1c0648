"""Emit: validate every event, then send them in batches and account for each one.

Two passes over the sources keep memory flat: the first validates everything (nothing is sent
if anything is invalid), the second streams batches to the broker.  Every event ends up either
confirmed, or listed as failed (and written to --failed-out so a rerun resumes exactly there).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .brokers.base import Broker, Delivery, OutgoingMessage
from .errors import ExitStatus, WfbusError
from .event import WorkflowEvent
from .interrupts import deferred
from .redact import redact
from .sources import EventSources
from .strictjson import dumps_compact

ProgressCallback = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True, slots=True)
class FailedEvent:
    place: str
    event_id: str
    topic: str
    urn: str | int
    error: str


@dataclass
class EmitReport:
    broker: str
    destination: str
    total: int
    dry_run: bool = False
    published: int = 0
    failed: list[FailedEvent] = field(default_factory=list)
    not_attempted: int = 0
    aborted: str | None = None  # the broker became unavailable part-way
    abort_hint: str | None = None  # what to do about it
    interrupted: bool = False
    samples: list[dict] = field(default_factory=list)

    @property
    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.aborted and self.published == 0:
            return ExitStatus.BROKER_UNAVAILABLE
        if self.failed or self.not_attempted or self.aborted:
            return ExitStatus.DELIVERY_FAILED
        return ExitStatus.OK


def emit(
    broker: Broker,
    sources: EventSources,
    *,
    dead_letter: bool = False,
    dry_run: bool = False,
    failed_out: Path | None = None,
    progress: ProgressCallback | None = None,
    sample_size: int = 5,
) -> EmitReport:
    size_limit = None if dry_run else broker.message_size_limit()
    scan = sources.scan(wire=broker.wire, size_limit=size_limit)
    scan.raise_if_invalid()
    report = EmitReport(broker.name, redact(broker.describe_destination(dead_letter=dead_letter)), scan.count, dry_run)
    if dry_run:
        for _, event in _first(sources.events(), sample_size):
            report.samples.append(event.to_dict(broker.wire))
        return report

    failed_file = _FailedOut(failed_out, broker)
    events = sources.events()
    batch: list[OutgoingMessage] = []  # read but not yet accounted: being built, or on the wire

    def send() -> None:
        nonlocal batch
        with deferred():
            try:
                deliveries = broker.publish(batch, dead_letter=dead_letter)
            except WfbusError as exc:
                report.aborted = redact(exc.message)
                report.abort_hint = exc.hint
                deliveries = [Delivery(m, f"not confirmed: {report.aborted}") for m in batch]
            _account(report, deliveries, failed_file)
            batch = []
        if progress:
            progress(report.published + len(report.failed), report.total)

    consumed = 0  # events taken from the sources; on an interrupt the rest is read again from there

    def rest():
        # a KeyboardInterrupt raised inside the reading generator ends it: read the sources anew
        return itertools.islice(sources.events(), consumed, None)

    try:
        for place, event in events:
            batch.append(OutgoingMessage.from_event(event, broker.wire, place))
            consumed += 1  # after the append: an interrupt in between can duplicate an event in --failed-out, not lose it
            if len(batch) >= broker.publish_batch_size:
                send()
                if report.aborted:
                    report.not_attempted = failed_file.write_rest(rest())
                    break
        if batch and not report.aborted:
            send()
    except KeyboardInterrupt:
        # Ctrl-C: the batch being built or on the wire is unconfirmed (it may or may not have arrived),
        # the rest unsent; both go to --failed-out: a rerun of that file can duplicate, never lose.
        report.interrupted = True
        _account(report, [Delivery(m, "not confirmed: interrupted") for m in batch], failed_file)
        report.not_attempted = failed_file.write_rest(rest())
    finally:
        failed_file.close()
    return report


def _account(report: EmitReport, deliveries: list[Delivery], failed_file: _FailedOut) -> None:
    for delivery in deliveries:
        if delivery.ok:
            report.published += 1
        else:
            message = delivery.message
            report.failed.append(
                FailedEvent(message.place, message.event_id, message.topic, message.key, redact(delivery.error or ""))
            )
            failed_file.write_body(message.body)


def _first(iterator: Iterator, count: int) -> Iterator:
    for index, item in enumerate(iterator):
        if index >= count:
            return
        yield item


class _FailedOut:
    """The --failed-out file: undelivered events as JSON lines that `wfbus emit` takes back."""

    def __init__(self, path: Path | None, broker: Broker) -> None:
        self.path = path
        self.broker = broker
        self._handle: IO[bytes] | None = None
        if path is not None:
            self._handle = path.open("wb")  # created (empty) even when all goes well: "nothing failed"

    def write_body(self, body: bytes) -> None:
        if self._handle is not None:
            self._handle.write(body + b"\n")

    def write_rest(self, events: Iterator[tuple[str, WorkflowEvent]]) -> int:
        count = 0
        for _, event in events:
            count += 1
            if self._handle is not None:
                self._handle.write(dumps_compact(event.to_dict(self.broker.wire)).encode() + b"\n")
        return count

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

"""Emit: validate every event, then send them in batches and account for each one.

Two passes over the sources keep memory flat: the first validates everything (nothing is sent
if anything is invalid), the second streams batches to the broker.  Every event ends up either
confirmed, or failed: written to --failed-out so a rerun resumes exactly there, and recorded in the
emit's progress so `--resume` finishes it even after a SIGKILL (see emit_progress.py).
Failures are streamed, not kept: the report holds counts and a bounded sample.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from .brokers.base import Broker, Delivery, OutgoingMessage, PendingPublish
from .emit_progress import Earlier, EmitProgress, emit_key
from .errors import ExitStatus, UsageError, WfbusError
from .event import WorkflowEvent
from .interrupts import deferred, signal_of
from .redact import redact
from .sources import EventSources
from .strictjson import dumps_compact

ProgressCallback = Callable[
    ..., None
]  # (done, total, phase="emitting"); "validating" has total None
Notice = Callable[[str], None]  # what is happening now, for the person waiting (stderr)
FAILED_SAMPLE_SIZE = 1000  # failures kept in the report; --failed-out has every one


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
    failed_count: int = 0
    failed: list[FailedEvent] = field(default_factory=list)  # the first FAILED_SAMPLE_SIZE failures
    not_attempted: int = 0
    aborted: str | None = None  # the broker became unavailable part-way
    abort_hint: str | None = None  # what to do about it
    stopped_by: int | None = (
        None  # the signal that stopped the run (2 Ctrl-C, 15 SIGTERM, 1 SIGHUP)
    )
    failed_out_written: bool = False  # --failed-out holds every event not confirmed
    failed_out_cut_short: bool = False  # a second signal stopped writing it: --resume is the way on
    failed_out_error: str | None = (
        None  # it could not be written (disk full): --resume is the way on
    )
    resumed: bool = False
    skipped_confirmed: int = 0  # --resume: confirmed by the earlier run, not sent again
    already_complete: bool = False  # --resume: the earlier emit had finished; nothing sent
    duplicates_bound: int = (
        0  # --resume: events that may arrive twice (the batches in flight at the kill)
    )
    answers_unread: int = 0  # a second stop: events on the wire whose answer was not read
    samples: list[dict] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.stopped_by is not None

    @property
    def undelivered(self) -> int:
        return self.failed_count + self.not_attempted

    @property
    def exit_status(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        if self.aborted and self.published == 0:
            return ExitStatus.BROKER_UNAVAILABLE
        if self.failed_count or self.not_attempted or self.aborted:
            return ExitStatus.DELIVERY_FAILED
        return ExitStatus.OK


def emit(
    broker: Broker,
    sources: EventSources,
    *,
    dead_letter: bool = False,
    dry_run: bool = False,
    failed_out: Path | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    notice: Notice | None = None,
    progress_path: Path | None = None,
    sample_size: int = 5,
) -> EmitReport:
    size_limit = None if dry_run else broker.message_size_limit()
    if progress:
        progress(0, None, "validating")
    scan = sources.scan(
        wire=broker.wire,
        size_limit=size_limit,
        progress=(lambda read: progress(read, None, "validating")) if progress else None,
    )
    scan.raise_if_invalid()
    destination = broker.describe_destination(dead_letter=dead_letter)
    report = EmitReport(broker.name, redact(destination), scan.count, dry_run)
    if dry_run:
        for _, event in _first(sources.events(), sample_size):
            report.samples.append(event.to_dict(broker.wire))
        return report

    broker.prepare_to_publish(dead_letter=dead_letter)
    record = EmitProgress(
        emit_key(
            broker.destination_identity(dead_letter=dead_letter),
            dead_letter,
            scan.digest.hexdigest(),
            scan.count,
        ),
        scan.count,
        progress_path,
    )
    try:
        earlier = record.earlier()
        if earlier is not None and earlier.still_running:
            if resume:
                raise UsageError(
                    f"an emit of these events to {report.destination} is still running (pid {earlier.pid})",
                    hint=f"wait for it to finish, or stop it (kill {earlier.pid}) and run --resume then",
                )
            if notice:
                notice(
                    f"note: another emit of these events to {report.destination} is running (pid "
                    f"{earlier.pid}); this one sends them again and keeps no resume record"
                )
            _send(
                broker,
                sources,
                report,
                None,
                None,
                dead_letter=dead_letter,
                failed_out=failed_out,
                progress=progress,
                notice=notice,
            )
            return report
        if resume:
            _check_resumable(earlier, report)
            assert earlier is not None
            if earlier.done:
                report.resumed = report.already_complete = True
                report.skipped_confirmed = scan.count
                return report
            report.resumed = True
            report.skipped_confirmed = sum(1 for i in range(scan.count) if not earlier.needs(i))
            if earlier.killed and not broker.capabilities.dedup_on_resend:
                # a stop that ran its handler accounted the batch on the wire; only a kill can
                # leave one unrecorded
                # every batch in flight at the kill may have arrived unrecorded
                in_flight = max(1, broker.pipeline_window) * broker.publish_batch_size
                report.duplicates_bound = min(in_flight, scan.count - report.skipped_confirmed)
        else:
            earlier = None  # a plain emit sends everything and starts a new record
        record.start(earlier)
        _send(
            broker,
            sources,
            report,
            record,
            earlier,
            dead_letter=dead_letter,
            failed_out=failed_out,
            progress=progress,
            notice=notice,
        )
        try:
            with deferred():  # once sending began, a stop never costs the report: it is in it
                complete = report.undelivered == 0 and not report.interrupted
                if report.answers_unread:
                    return report  # left "running", as a kill leaves it: --resume bounds duplicates
                record.finish(
                    complete=complete,
                    failed_out=str(failed_out) if report.failed_out_written else None,
                )
        except KeyboardInterrupt as stop:
            report.stopped_by = report.stopped_by or signal_of(stop)
    finally:
        record.close()
    return report


def _check_resumable(earlier: Earlier | None, report: EmitReport) -> None:
    """--resume means "finish that emit": with no record of it, or with its rest already in a
    --failed-out file, sending anything would duplicate, so it is refused with the way on."""
    if earlier is None:
        raise UsageError(
            f"nothing to resume: no earlier emit of these events to {report.destination} is recorded here",
            hint="the events or the destination differ from the earlier run's (a changed file, a recreated "
            "topic), or it used another WFBUS_STATE_DIR; run without --resume to send them all",
        )
    if earlier.state == "handed-off":
        raise UsageError(
            f"the earlier emit of these events wrote every event it did not deliver to {earlier.failed_out}",
            hint=f"send that file (`wfbus emit {earlier.failed_out}` with the same --broker/--dead-letter); "
            "resuming as well would send them twice",
        )


class _InFlight(NamedTuple):
    """A batch handed to the broker whose answer has not been accounted yet."""

    pending: PendingPublish
    messages: list[OutgoingMessage]
    indices: list[int]  # each message's index in the sources


def _send(
    broker: Broker,
    sources: EventSources,
    report: EmitReport,
    record: EmitProgress | None,
    earlier: Earlier | None,
    *,
    dead_letter: bool,
    failed_out: Path | None,
    progress: ProgressCallback | None,
    notice: Notice | None,
) -> None:
    """Stream the events to the broker with up to `pipeline_window` batches in flight.

    Each batch's answer is accounted (report, --failed-out, progress record) oldest first, so the
    progress record's mark only ever passes batches whose answer was read: a kill leaves at most the
    batches in flight unrecorded (sent again by --resume: the duplicates bound). A stop signal reads
    the answers of every batch already on the wire before it stops, so --failed-out stays exact.
    """
    failed_file = FailedOut(failed_out, broker)
    consumed = 0  # events taken from the sources; after a stop the rest is read again from there
    window = max(1, broker.pipeline_window)
    batch: list[OutgoingMessage] = []  # read, not yet handed to the broker
    indices: list[int] = []  # each one's index in the sources
    in_flight: deque[_InFlight] = deque()  # handed over, answer not accounted yet; oldest first

    def needed(index: int) -> bool:
        return earlier is None or earlier.needs(index)

    def submit() -> None:
        """Hand the batch over; inside deferred() so a stop finds it either built or in flight."""
        nonlocal batch, indices
        with deferred():
            try:
                pending = broker.submit(batch, dead_letter=dead_letter)
            except (
                WfbusError
            ) as exc:  # refused before anything was sent: answered like a failed result
                pending = PendingPublish.answered(batch, error=exc)
            in_flight.append(_InFlight(pending, batch, indices))
            batch, indices = [], []

    def settle_oldest() -> None:
        """Read the oldest batch's answer and account it whole (a stop waits for the block's end)."""
        with deferred():
            oldest = in_flight[0]
            try:
                deliveries = oldest.pending.result()
            except WfbusError as exc:
                reason = redact(exc.message)
                if report.aborted is None:
                    report.aborted, report.abort_hint = reason, exc.hint
                deliveries = [Delivery(m, f"not confirmed: {reason}") for m in oldest.messages]
            in_flight.popleft()
            _account(report, deliveries, failed_file)
            if record is not None:
                record.answered(
                    [i for i, d in zip(oldest.indices, deliveries, strict=False) if d.ok],
                    [i for i, d in zip(oldest.indices, deliveries, strict=False) if not d.ok],
                    oldest.indices[-1] + 1,
                )
        if progress:
            progress(
                report.published + report.failed_count, report.total - report.skipped_confirmed
            )

    def unsent_back() -> None:
        """The batch being built was never handed over: it goes back to the rest (not attempted)."""
        nonlocal batch, indices, consumed
        if batch:
            consumed = indices[0]
            batch, indices = [], []

    def rest() -> Iterator[tuple[str, WorkflowEvent]]:
        # a KeyboardInterrupt raised inside the reading generator ends it: read the sources anew
        remaining = itertools.islice(enumerate(sources.events()), consumed, None)
        return (item for index, item in remaining if needed(index))

    try:
        for index, (place, event) in enumerate(sources.events()):
            if not needed(index):
                consumed = index + 1
                continue
            batch.append(OutgoingMessage.from_event(event, broker.wire, place))
            indices.append(index)
            consumed = (
                index + 1
                # after the append: a stop in between can duplicate an event in
                # --failed-out, not lose it
            )
            if len(batch) >= broker.publish_batch_size:
                while len(in_flight) >= window:
                    settle_oldest()
                if report.aborted:
                    break
                submit()
        if batch and not report.aborted:
            while len(in_flight) >= window:
                settle_oldest()
            if not report.aborted:
                submit()
        while (
            in_flight
        ):  # after an abort too: an answer read is accounted as it is (never lost nor doubled)
            settle_oldest()
        unsent_back()
    except KeyboardInterrupt as stop:
        # every batch on the wire is read and accounted exactly; the batch being built was not sent:
        # it goes to --failed-out unconfirmed (a rerun of that file can duplicate, never lose),
        # the rest unsent
        report.stopped_by = signal_of(stop)
        try:
            while in_flight:
                settle_oldest()
        except KeyboardInterrupt:
            # a second stop: the answers not read yet stay unconfirmed; those events may have
            # arrived, so the record is left as a kill leaves it and --resume bounds the duplicates
            report.failed_out_cut_short = True
            report.answers_unread = sum(len(f.messages) for f in in_flight)
        unsent_back()  # the batch being built was never handed over: it is "not sent", not "failed"
        unread = [(f.messages, f.indices) for f in in_flight]
        for messages, numbers in unread:
            _account(report, [Delivery(m, "not confirmed: stopped") for m in messages], failed_file)
            if record is not None:
                record.answered([], numbers, 0)
        in_flight.clear()
        batch, indices = [], []
    report.not_attempted = sum(1 for index in range(consumed, report.total) if needed(index))
    try:
        if report.not_attempted and failed_out is not None and not report.failed_out_cut_short:
            if report.interrupted and notice:
                notice(
                    f"stopping: writing the {report.not_attempted} event(s) not sent to {failed_out} "
                    "(stop again to skip this: `wfbus emit --resume` will still send exactly those)"
                )
            failed_file.write_rest(rest())
    except KeyboardInterrupt as stop:
        report.stopped_by = report.stopped_by or signal_of(stop)
        report.failed_out_cut_short = True
    finally:
        report.failed_out_written = failed_file.close(keep=not report.failed_out_cut_short)
        report.failed_out_error = failed_file.error


def _account(report: EmitReport, deliveries: list[Delivery], failed_file: FailedOut) -> None:
    for delivery in deliveries:
        if delivery.ok:
            report.published += 1
        else:
            message = delivery.message
            report.failed_count += 1
            if len(report.failed) < FAILED_SAMPLE_SIZE:
                report.failed.append(
                    FailedEvent(
                        message.place,
                        message.event_id,
                        message.topic,
                        message.key,
                        redact(delivery.error or ""),
                    )
                )
            failed_file.write_body(message.body)


def _first(iterator: Iterator, count: int) -> Iterator:
    for index, item in enumerate(iterator):
        if index >= count:
            return
        yield item


class FailedOut:
    """The --failed-out file: undelivered events as JSON lines that `wfbus emit` takes back.

    Written to a temporary file beside it and renamed at the end, so naming an input as the output
    (`wfbus emit failed.jsonl --failed-out failed.jsonl`, a natural retry loop) reads the whole
    input first; and created only when something failed: after full success the path holds no file,
    and a stale one from an earlier run is removed (it would be sent again by the next loop).
    """

    def __init__(self, path: Path | None, broker: Broker) -> None:
        self.path = path
        self.broker = broker
        self._handle: IO[bytes] | None = None
        self._temp: Path | None = None
        self.written = 0
        self.error: str | None = (
            None  # the file could not be written (disk full): --resume is the way on
        )

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            assert self.path is not None
            fd, name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent or "."
            )
            self._temp = Path(name)
            self._handle = os.fdopen(fd, "wb")
        return self._handle

    def _write(self, line: bytes) -> None:
        if self.path is None or self.error is not None:
            return
        try:
            self._open().write(line + b"\n")
            self.written += 1
        except OSError as exc:
            self.error = f"{exc.strerror or exc}"

    def write_body(self, body: bytes) -> None:
        self._write(body)

    def write_rest(self, events: Iterator[tuple[str, WorkflowEvent]]) -> None:
        for _, event in events:
            if self.error is not None:
                return
            self._write(dumps_compact(event.to_dict(self.broker.wire)).encode())

    def close(self, *, keep: bool = True) -> bool:
        """Put the file in place; True when it holds every undelivered event.

        Not kept (a second signal cut it short): no partial file is left to be mistaken for the
        whole list; the progress record (`--resume`) is the exact resume point then.
        """
        if self.path is None:
            return False
        if self._handle is None:
            self.path.unlink(missing_ok=True)  # nothing failed: no file, so a retry loop ends
            return False
        try:
            self._handle.close()
        except OSError as exc:
            self.error = self.error or f"{exc.strerror or exc}"
        assert self._temp is not None
        if not keep or self.error is not None:
            self._temp.unlink(missing_ok=True)
            return False
        os.replace(self._temp, self.path)
        return True

"""`wfbus replay`: redrive dead-lettered messages to the main destination (or another broker)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, cast

import typer

from .. import interrupts
from ..errors import UsageError
from .completion import broker_names

if TYPE_CHECKING:
    from ..replay import AttemptPolicy


def register(app: typer.Typer) -> None:
    app.command(
        "replay",
        help="Move dead-lettered messages back; each is removed only after the destination "
        "confirmed it.",
    )(replay_command)


def replay_command(
    ctx: typer.Context,
    broker: str | None = typer.Option(
        None,
        "--broker",
        "-b",
        autocompletion=broker_names,
        help="Broker whose dead-letter queue to read.",
    ),
    to: str | None = typer.Option(
        None,
        "--to",
        autocompletion=broker_names,
        help="Send to this broker's main destination instead.",
    ),
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Replay at most N messages."
    ),
    topics: list[str] | None = typer.Option(
        None, "--topic", help="Only topics matching this glob (repeatable)."
    ),
    urns: list[str] | None = typer.Option(None, "--urn", help="Only this urn (repeatable)."),
    matches: list[str] | None = typer.Option(
        None,
        "--match",
        metavar="PATH=VALUE",
        help="Only events whose dotted path equals VALUE "
        "(repeatable; all must match). VALUE that parses as JSON compares as JSON, type included: "
        'payload.total=20 selects 20 and 20.0, not "20" or true; payload.code=\'"1"\' selects the '
        'string "1". Any other VALUE is text and selects strings only: payload.region=eu.',
    ),
    min_attempt: int | None = typer.Option(
        None, "--min-attempt", min=0, help="Only events with attempt ≥ N."
    ),
    max_attempt: int | None = typer.Option(
        None, "--max-attempt", min=0, help="Only events with attempt ≤ N."
    ),
    attempt: str = typer.Option(
        "keep", "--attempt", help="keep | increment | reset the attempt of replayed events."
    ),
    rate: float | None = typer.Option(
        None, "--rate", min=0.01, help="At most N events per second, evenly spaced."
    ),
    batch: int = typer.Option(
        100, "--batch", min=1, max=10000, help="Messages per receive/publish round."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the plan (what would move where); change nothing."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask for confirmation on a terminal."
    ),
    native: bool = typer.Option(
        False,
        "--native",
        help="SQS: let the server move everything (StartMessageMoveTask); no filters, no --to.",
    ),
) -> int:
    from ..journal import Journal
    from ..replay import ReplayOptions, replay
    from ..selection import Selection

    if min_attempt is not None and max_attempt is not None and min_attempt > max_attempt:
        raise UsageError(
            f"--min-attempt {min_attempt} is above --max-attempt {max_attempt}: nothing could match",
            hint="swap them, or drop one",
        )
    if attempt not in ("keep", "increment", "reset"):
        raise UsageError(f"--attempt {attempt!r}: use keep, increment or reset")
    state = ctx.obj
    out = state.out
    config = state.config
    source_name = config.resolve_name(broker)
    destination_name = config.resolve_name(to) if to else source_name
    selection = Selection(
        tuple(topics or ()),
        tuple(urns or ()),
        tuple(_pair(m) for m in matches or ()),
        min_attempt,
        max_attempt,
        limit,
    )
    policy = cast("AttemptPolicy", attempt)  # checked above: keep, increment or reset
    options = ReplayOptions(
        selection=selection, dry_run=dry_run, attempt=policy, batch_size=batch, rate=rate
    )
    if native:
        if (
            to
            or topics
            or urns
            or matches
            or min_attempt is not None
            or max_attempt is not None
            or limit
            or attempt != "keep"
            or rate
        ):
            raise UsageError(
                "--native moves the whole dead-letter queue as it is",
                hint="drop the filters, --to, --attempt and --rate, or replay without --native",
            )
        return _native(state, source_name, dry_run=dry_run)
    interactive = (
        not yes
        and not dry_run
        and out.mode == "text"
        and sys.stdin.isatty()
        and sys.stderr.isatty()
    )
    report = None
    late_stop: int | None = None  # a stop after replay() returned: its report is whole, shown
    try:
        with config.open(source_name) as source:
            destination = (
                source if destination_name == source_name else config.open(destination_name)
            )
            try:
                if interactive:
                    plan = replay(
                        source, destination, ReplayOptions(selection=selection, dry_run=True)
                    )
                    _render(out, plan)
                    if plan.selected == 0:
                        return plan.exit_status
                    if not typer.confirm(
                        f"replay {plan.selected} message(s) to {plan.destination}?", err=True
                    ):
                        out.note("nothing replayed")
                        return 0
                journal = None if dry_run else Journal()
                try:
                    with out.progress("replaying", limit) as progress:
                        report = replay(
                            source, destination, options, journal=journal, progress=progress
                        )
                finally:
                    if journal is not None:
                        journal.close()
            finally:
                if destination is not source:
                    with interrupts.closing():
                        destination.close()
    except KeyboardInterrupt as stop:
        if report is None:  # replay() returns its report whatever stops it once it has begun
            raise
        late_stop = interrupts.signal_of(stop)  # it came while the brokers were closing
    try:
        with interrupts.deferred():  # the report is written whole, whenever a stop comes
            _render(out, report)
    except KeyboardInterrupt as stop:
        late_stop = late_stop or interrupts.signal_of(stop)
    return 128 + late_stop if late_stop else report.exit_status


def _native(state, source_name: str, *, dry_run: bool = False) -> int:
    from ..errors import DeliveryFailed

    with state.config.open(source_name) as source:
        if not source.capabilities.native_move:
            raise UsageError(
                f"--native: broker {source_name!r} ({source.settings.type}) has no native redrive",
                hint="it exists for SQS (StartMessageMoveTask); replay without --native",
            )
        if dry_run:  # the preview: what the server would move, and where; nothing is started
            dead = next((row for row in source.depth() if row.role == "dead-letter"), None)
            ready = dead.ready if dead is not None else None
            plan = {
                "native": True,
                "dry_run": True,
                "source": source.describe_destination(dead_letter=True),
                "destination": source.describe_destination(),
                "messages": ready,
            }
            if state.out.mode != "text":
                state.out.json(plan)
            else:
                count = "?" if ready is None else f"~{ready}"
                state.out.line(
                    f"plan (server-side move): {count} message(s) in {plan['source']} would be moved "
                    f"as they are to {plan['destination']} by the broker (StartMessageMoveTask)"
                )
            return 0
        with state.out.progress("moving (server-side)", None) as progress:
            result = source.native_move(progress=progress)
    if state.out.mode != "text":
        state.out.json({"native": True, **result})
    else:
        state.out.line(
            f"server-side move task {result['status'].lower()}: {result['moved']} message(s) moved"
        )
    if result["status"] != "COMPLETED":
        raise DeliveryFailed(
            f"the move task ended {result['status']}: {result.get('failure_reason') or 'no reason given'}",
            hint="messages not moved are still in the dead-letter queue; see `wfbus depth`",
        )
    return 0


def _pair(text: str) -> tuple[str, str]:
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise UsageError(f"--match {text!r}: expected PATH=VALUE, e.g. payload.region=eu")
    return path, value


def _render(out, report) -> None:
    if out.mode != "text":
        out.json(
            {
                "source": report.source,
                "destination": report.destination,
                "dry_run": report.dry_run,
                "examined": report.examined,
                "selected": report.selected,
                "replayed": report.replayed,
                "left": report.left,
                "not_selected": report.examined - report.selected,
                "resumed": report.resumed,
                "crossed_types": report.crossed_types,
                "held_elsewhere": report.held_elsewhere,
                "held_return_seconds": report.held_return_seconds,
                "dead_letter_after": report.dead_letter_after,
                "failed_count": report.failed_count,
                "failed": [vars(f) for f in report.failed],
                "by_topic": dict(report.by_topic),
                "selected_by_topic": dict(report.selected_by_topic),
                "by_attempt": {str(k): v for k, v in report.by_attempt.items()},
                "by_reason": dict(report.by_reason),
                "samples": report.samples,
                "unselected_passed_over": report.passed_over,
                "aborted": report.aborted,
                "hint": report.abort_hint,
                "interrupted": report.interrupted,
                "signal": report.stopped_by,
                "exit_code": int(report.exit_status),
            }
        )
        return
    if (
        report.examined == 0
        and not report.aborted
        and not report.interrupted
        and not report.held_elsewhere
    ):
        out.line(
            f"nothing to replay: the dead-letter queue of {report.source.removesuffix(' (dead-letter)')} is empty"
        )
        return
    if report.dry_run:
        out.line(
            f"plan: {report.examined} dead-lettered message(s) in {report.source}; {report.selected} selected "
            f"would go to {report.destination}"
        )
        out.table(
            ["topic", "examined", "selected"],
            [
                (topic, count, report.selected_by_topic.get(topic, 0))
                for topic, count in sorted(report.by_topic.items())
            ],
            title="by topic",
        )
        out.table(
            ["attempt", "messages"],
            sorted(report.by_attempt.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)),
            title="by attempt",
        )
        if report.by_reason:
            out.table(
                ["dead-letter reason", "messages"],
                sorted(report.by_reason.items()),
                title="by reason",
            )
        if report.samples:
            out.line("sample of the selected events:")
            for sample in report.samples:
                out.line("  " + json.dumps(sample, ensure_ascii=False, separators=(",", ":")))
    else:
        out.line(
            f"replayed {report.replayed} of {report.selected} selected ({report.examined} examined) from "
            f"{report.source} to {report.destination}"
        )
        if report.resumed:
            out.line(
                f"{report.resumed} of them had been published by an interrupted replay: only removed now"
            )
    if report.crossed_types:
        out.note(
            f"{report.crossed_types} message(s) went to another broker type: their headers were carried as "
            "text and their message properties as <type>-<property> headers"
        )
    unselected = report.examined - report.selected
    if unselected:
        where = (
            "passed over (a Kafka topic cannot keep them)"
            if report.passed_over
            else "left in the dead-letter queue"
        )
        out.line(f"{unselected} message(s) not selected: {where}")
    if report.held_elsewhere:
        back = (
            f"; held by a killed wfbus run they return within {report.held_return_seconds:.0f} s"
            if report.held_return_seconds is not None
            else ""
        )
        out.error(
            f"{report.held_elsewhere} message(s) in the dead-letter queue are held elsewhere (in flight: a "
            f"killed earlier run or another consumer) and were not examined{back}"
        )
        out.note(
            "  hint: run the same replay again once they are back; `wfbus depth` shows them as in flight"
        )
    if report.failed:
        out.table(
            ["message id", "event id", "topic", "error"],
            [(f.message_id, f.event_id, f.topic, f.error) for f in report.failed[:50]],
            title=f"{report.failed_count} message(s) failed and stay in the dead-letter queue",
            shorten=("message id", "event id", "topic"),
        )  # the error is what to read whole
    if report.aborted:
        out.error(
            f"stopped: {report.aborted}; messages not confirmed stay in the dead-letter queue"
        )
        if report.abort_hint:
            out.note(f"  hint: {report.abort_hint}")
    if report.interrupted:
        out.error(
            f"stopped by signal {report.stopped_by}: the messages counted above were replayed; the rest "
            "stay in the dead-letter queue"
        )

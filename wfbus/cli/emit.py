"""`wfbus emit`: validate events and publish them, or show what would be sent."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import Interrupted, UsageError
from .completion import broker_names


def register(app: typer.Typer) -> None:
    app.command(
        "emit",
        help="Validate events, then publish them to a broker (nothing is sent if any is invalid).",
    )(emit_command)


def emit_command(
    ctx: typer.Context,
    sources: list[str] | None = typer.Argument(
        None,
        metavar="[SOURCE]...",
        help="A .json file (object or array), .jsonl/.ndjson, a directory (hidden files skipped), "
        "- or /dev/stdin for stdin, or a pipe such as <(cmd).",
    ),
    broker: str | None = typer.Option(
        None, "--broker", "-b", autocompletion=broker_names, help="Broker name from the config."
    ),
    topic: str | None = typer.Option(None, "--topic", help="Inline event: its topic."),
    urn: str | None = typer.Option(
        None, "--urn", help='Inline event: its urn, as a string ("42" stays a string).'
    ),
    urn_int: int | None = typer.Option(
        None,
        "--urn-int",
        metavar="N",
        help="Inline event: its urn as a JSON integer (instead of --urn).",
    ),
    payload: str | None = typer.Option(
        None,
        "--payload",
        help="Inline event: JSON payload, @file.json, or @- to read it from stdin.",
    ),
    attempt: int = typer.Option(0, "--attempt", min=0, help="Inline event: its attempt."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and show what would be sent; send nothing."
    ),
    dead_letter: bool = typer.Option(
        False, "--dead-letter", "-d", help="Send to the broker's dead-letter destination."
    ),
    failed_out: Path | None = typer.Option(
        None,
        "--failed-out",
        metavar="FILE",
        help="Write the events not delivered here (JSONL) to rerun them; created only if something failed.",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Finish an earlier emit of the same events to the same destination that was killed or failed: "
        "send only what it did not get confirmed.",
    ),
) -> int:
    from .. import interrupts
    from ..emit import emit
    from ..sources import EventSources
    from .paths import check_output_path

    state = ctx.obj
    check_output_path(
        failed_out
    )  # before anything is sent: undelivered events need somewhere to go
    if urn is not None and urn_int is not None:
        raise UsageError(
            "--urn and --urn-int both give the urn",
            hint="give one: --urn for a string, --urn-int for an integer",
        )
    inline_urn = urn_int if urn_int is not None else urn
    inline = _inline(topic, inline_urn, payload, attempt, ctx)
    if not sources and inline is None:
        raise UsageError(
            "nothing to emit",
            hint="give event files, a directory, - for stdin, or --topic and --urn",
        )
    report = rerun = None
    late_stop: int | None = None  # a stop after emit() returned: its report is whole and is shown
    try:
        with EventSources(
            sources or [], inline, stdin=state.stdin, notice=state.out.note
        ) as event_sources:
            with state.config.open(broker) as target:
                with _Phases(state.out) as progress:
                    report = emit(
                        target,
                        event_sources,
                        dead_letter=dead_letter,
                        dry_run=dry_run,
                        failed_out=failed_out,
                        resume=resume,
                        progress=progress.update,
                        notice=state.out.note,
                    )
                    inline_source = event_sources.inline
                    if inline_source is not None and inline_source.payload_origin is not None:
                        payload = inline_source.payload  # `@-`: a rerun cannot read stdin again
                    rerun = _RerunCommand(
                        state.config_path,
                        target.name,
                        dead_letter,
                        sources or [],
                        topic,
                        inline_urn,
                        payload,
                        attempt if inline is not None else None,
                    )
    except KeyboardInterrupt as stop:
        signum = interrupts.signal_of(stop)
        if report is None or rerun is None:
            # once sending began emit() returns its report whatever stops it, so a stop without
            # a report came while the events were being read and checked
            raise Interrupted(
                signum,
                f"stopped by {interrupts.signal_name(signum)} before anything was sent",
                hint="run the same command again",
            ) from None
        late_stop = signum
    try:
        with interrupts.deferred():  # the report is written whole, whenever a stop comes
            _render(state.out, report, failed_out, rerun)
    except KeyboardInterrupt as stop:
        late_stop = late_stop or interrupts.signal_of(stop)
    return 128 + late_stop if late_stop else report.exit_status


class _Phases:
    """The terminal's progress display, one bar per phase ("validating", then "emitting"): a bar that
    read "emitting 0/?" while every event was still being checked said something untrue."""

    def __init__(self, out) -> None:
        from contextlib import ExitStack

        self._out = out
        self._stack = ExitStack()
        self._phase: str | None = None
        self._bar = None

    def __enter__(self) -> _Phases:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def update(self, done: int, total: int | None, phase: str = "emitting") -> None:
        if phase != self._phase:
            self._stack.close()
            self._bar = self._stack.enter_context(self._out.progress(phase, total))
            self._phase = phase
        if self._bar is not None:  # None: no display (a pipe, JSON output)
            self._bar(done, total)


class _RerunCommand:
    """The command lines the hints give: every option that chose the destination, repeated exactly."""

    def __init__(
        self,
        config: str | None,
        broker: str,
        dead_letter: bool,
        sources: list[str],
        topic: str | None,
        urn: str | int | None,
        payload: str | None,
        attempt: int | None,
    ) -> None:
        import shlex

        head = ["wfbus"] + (["--config", config] if config else []) + ["emit", "--broker", broker]
        head += ["--dead-letter"] if dead_letter else []
        inline: list[str] = []
        if topic is not None and urn is not None:
            urn_option = ["--urn-int", str(urn)] if isinstance(urn, int) else ["--urn", urn]
            inline = ["--topic", topic, *urn_option] + (
                ["--payload", payload] if payload is not None else []
            )
            inline += ["--attempt", str(attempt)] if attempt else []
        self._head = head
        self._sources = list(sources) + inline
        self._quote = shlex.quote

    def of_file(self, path: Path) -> str:
        return " ".join(map(self._quote, self._head + [str(path)]))

    def resume(self) -> str:
        return " ".join(map(self._quote, self._head + ["--resume"] + self._sources))


def _inline(topic, urn, payload, attempt, ctx):
    from ..sources import InlineEvent

    if topic is None and urn is None:
        if payload is not None or ctx.get_parameter_source("attempt").name != "DEFAULT":
            raise UsageError(
                "--payload and --attempt describe an inline event",
                hint="give --topic and --urn too",
            )
        return None
    if (
        topic is None or urn is None
    ):  # given but empty is the event's fault: an input error naming the field
        raise UsageError("an inline event needs both --topic and --urn (or --urn-int)")
    return InlineEvent(topic, urn, payload, attempt)


def _render(out, report, failed_out: Path | None, rerun: _RerunCommand) -> None:
    if out.mode != "text":
        out.json(
            {
                "broker": report.broker,
                "destination": report.destination,
                "dry_run": report.dry_run,
                "total": report.total,
                "published": report.published,
                "failed_count": report.failed_count,
                "failed": [
                    {
                        "place": f.place,
                        "event_id": f.event_id,
                        "topic": f.topic,
                        "urn": f.urn,
                        "error": f.error,
                    }
                    for f in report.failed
                ],
                "not_attempted": report.not_attempted,
                "aborted": report.aborted,
                "hint": report.abort_hint,
                "interrupted": report.interrupted,
                "signal": report.stopped_by,
                "failed_out": str(failed_out) if report.failed_out_written else None,
                "resume": {
                    "resumed": report.resumed,
                    "skipped_confirmed": report.skipped_confirmed,
                    "already_complete": report.already_complete,
                    "may_be_duplicated": report.duplicates_bound,
                }
                if report.resumed
                else None,
                "rerun_command": (
                    rerun.of_file(failed_out)
                    if report.failed_out_written and failed_out
                    else rerun.resume()
                )
                if report.undelivered
                else None,
                "samples": report.samples if report.dry_run else [],
                "exit_code": int(report.exit_status),
            }
        )
        return
    if report.dry_run:
        out.line(
            f"dry run: {report.total} valid event(s) would be sent to {report.broker} ({report.destination})"
        )
        for sample in report.samples:
            out.line("  " + _compact(sample))
        if report.total > len(report.samples):
            out.line(f"  ... and {report.total - len(report.samples)} more")
        return
    if report.already_complete:
        out.line(
            f"nothing to resume: all {report.total} event(s) were already confirmed by {report.broker} "
            f"({report.destination})"
        )
        return
    to_send = report.total - report.skipped_confirmed
    out.line(
        f"sent {report.published} of {to_send} event(s) to {report.broker} ({report.destination})"
    )
    if report.resumed and report.skipped_confirmed:
        out.note(
            f"resumed: {report.skipped_confirmed} event(s) confirmed by the earlier run were not sent again"
            + (
                f"; up to {report.duplicates_bound} (the batches on the wire when it stopped) may have "
                "arrived twice"
                if report.duplicates_bound
                else ""
            )
        )
    if report.failed:
        out.table(
            ["place", "event id", "topic", "error"],
            [(f.place, f.event_id, f.topic, f.error) for f in report.failed[:50]],
            title=f"{report.failed_count} event(s) failed",
            shorten=("place", "event id", "topic"),  # the error is what to read whole
        )
        if report.failed_count > 50:
            out.line(f"... and {report.failed_count - 50} more")
    if report.aborted:
        out.error(f"stopped: {report.aborted}")
        if report.abort_hint:
            out.note(f"  hint: {report.abort_hint}")
    if report.interrupted:
        out.error(
            f"stopped by signal {report.stopped_by}: the events counted above were confirmed; the rest were not sent"
        )
    if report.undelivered:
        if report.failed_out_written and failed_out is not None:
            out.warn(
                f"{report.undelivered} event(s) not delivered were written to {failed_out}; "
                f"run `{rerun.of_file(failed_out)}` to send them"
            )
        elif report.failed_out_error:
            out.error(
                f"could not write {failed_out}: {report.failed_out_error}; run `{rerun.resume()}` to send "
                f"exactly the {report.undelivered} event(s) not delivered"
            )
        elif report.failed_out_cut_short:
            out.warn(
                f"writing {failed_out} was stopped, so it was not written; run `{rerun.resume()}` "
                f"to send exactly the {report.undelivered} event(s) not delivered"
            )
        else:
            out.warn(
                f"{report.undelivered} event(s) not delivered; run `{rerun.resume()}` to send exactly those "
                "(or rerun with --failed-out FILE to keep them in a file)"
            )


def _compact(document) -> str:
    import json

    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

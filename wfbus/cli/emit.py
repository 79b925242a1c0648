"""`wfbus emit`: validate events and publish them, or show what would be sent."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("emit", help="Validate events, then publish them to a broker (nothing is sent if any is invalid).")(
        emit_command
    )


def emit_command(
    ctx: typer.Context,
    sources: Optional[List[str]] = typer.Argument(
        None, metavar="[SOURCE]...", help="A .json file (object or array), .jsonl/.ndjson, a directory, or - for stdin."
    ),
    broker: Optional[str] = typer.Option(None, "--broker", "-b", help="Broker name from the config."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Inline event: its topic."),
    urn: Optional[str] = typer.Option(None, "--urn", help="Inline event: its urn (a string)."),
    payload: Optional[str] = typer.Option(None, "--payload", help="Inline event: JSON payload, or @file.json."),
    attempt: int = typer.Option(0, "--attempt", min=0, help="Inline event: its attempt."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show what would be sent; send nothing."),
    dead_letter: bool = typer.Option(False, "--dead-letter", help="Send to the broker's dead-letter destination."),
    failed_out: Optional[Path] = typer.Option(
        None, "--failed-out", metavar="FILE", help="Write events that were not delivered here (JSONL) to rerun them."
    ),
) -> int:
    from ..emit import emit
    from ..sources import EventSources

    state = ctx.obj
    inline = _inline(topic, urn, payload, attempt, ctx)
    if not sources and inline is None:
        raise UsageError(
            "nothing to emit", hint="give event files, a directory, - for stdin, or --topic and --urn"
        )
    with EventSources(sources or [], inline, stdin=state.stdin) as event_sources:
        with state.config.open(broker) as target:
            with state.out.progress("emitting", None) as progress:
                report = emit(
                    target, event_sources, dead_letter=dead_letter, dry_run=dry_run,
                    failed_out=failed_out, progress=progress,
                )
    _render(state.out, report, failed_out)
    return report.exit_status


def _inline(topic, urn, payload, attempt, ctx):
    from ..sources import InlineEvent

    if topic is None and urn is None:
        if payload is not None or ctx.get_parameter_source("attempt").name != "DEFAULT":
            raise UsageError("--payload and --attempt describe an inline event", hint="give --topic and --urn too")
        return None
    if not topic or not urn:
        raise UsageError("an inline event needs both --topic and --urn")
    return InlineEvent(topic, urn, payload, attempt)


def _render(out, report, failed_out: Path | None) -> None:
    if out.mode != "text":
        out.json({
            "broker": report.broker,
            "destination": report.destination,
            "dry_run": report.dry_run,
            "total": report.total,
            "published": report.published,
            "failed": [
                {"place": f.place, "event_id": f.event_id, "topic": f.topic, "urn": f.urn, "error": f.error}
                for f in report.failed
            ],
            "not_attempted": report.not_attempted,
            "aborted": report.aborted,
            "hint": report.abort_hint,
            "interrupted": report.interrupted,
            "failed_out": str(failed_out) if failed_out else None,
            "samples": report.samples if report.dry_run else [],
            "exit_code": int(report.exit_status),
        })
        return
    if report.dry_run:
        out.line(f"dry run: {report.total} valid event(s) would be sent to {report.broker} ({report.destination})")
        for sample in report.samples:
            out.line("  " + _compact(sample))
        if report.total > len(report.samples):
            out.line(f"  ... and {report.total - len(report.samples)} more")
        return
    out.line(f"sent {report.published} of {report.total} event(s) to {report.broker} ({report.destination})")
    if report.failed:
        out.table(
            ["place", "event id", "topic", "error"],
            [(f.place, f.event_id, f.topic, f.error) for f in report.failed[:50]],
            title=f"{len(report.failed)} event(s) failed",
        )
        if len(report.failed) > 50:
            out.line(f"... and {len(report.failed) - 50} more")
    if report.aborted:
        out.error(f"stopped: {report.aborted}")
        if report.abort_hint:
            out.note(f"  hint: {report.abort_hint}")
    if report.interrupted:
        out.error("interrupted: the events above were confirmed; the rest were not sent")
    undelivered = len(report.failed) + report.not_attempted
    if undelivered:
        if failed_out:
            out.warn(f"{undelivered} event(s) not delivered were written to {failed_out}; "
                     f"run `wfbus emit {failed_out}` to send them")
        else:
            out.warn(f"{undelivered} event(s) not delivered; rerun with --failed-out FILE to keep them for a retry")


def _compact(document) -> str:
    import json

    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

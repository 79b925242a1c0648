"""`wfbus replay`: redrive dead-lettered messages to the main destination (or another broker)."""

from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("replay", help="Move dead-lettered messages back; each is removed only after the destination "
                               "confirmed it.")(replay_command)


def replay_command(
    ctx: typer.Context,
    broker: Optional[str] = typer.Option(None, "--broker", "-b", help="Broker whose dead-letter queue to read."),
    to: Optional[str] = typer.Option(None, "--to", help="Send to this broker's main destination instead."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Replay at most N messages."),
    topics: Optional[List[str]] = typer.Option(None, "--topic", help="Only topics matching this glob (repeatable)."),
    urns: Optional[List[str]] = typer.Option(None, "--urn", help="Only this urn (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would move; change nothing."),
    batch: int = typer.Option(100, "--batch", min=1, max=10000, help="Messages per receive/publish round."),
) -> int:
    from ..replay import Selection, replay

    state = ctx.obj
    config = state.config
    source_name = config.resolve_name(broker)
    destination_name = config.resolve_name(to) if to else source_name
    selection = Selection(tuple(topics or ()), tuple(urns or ()), limit)
    with config.open(source_name) as source:
        destination = source if destination_name == source_name else config.open(destination_name)
        try:
            with state.out.progress("replaying", limit) as progress:
                report = replay(source, destination, selection, dry_run=dry_run, batch_size=batch, progress=progress)
        finally:
            if destination is not source:
                destination.close()
    _render(state.out, report)
    return report.exit_status


def _render(out, report) -> None:
    if out.mode != "text":
        out.json({
            "source": report.source, "destination": report.destination, "dry_run": report.dry_run,
            "examined": report.examined, "selected": report.selected, "replayed": report.replayed,
            "left": report.left,
            "failed": [vars(f) for f in report.failed],
            "by_topic": dict(report.by_topic), "by_attempt": {str(k): v for k, v in report.by_attempt.items()},
            "by_reason": dict(report.by_reason), "samples": report.samples,
            "unselected_passed_over": report.passed_over,
            "aborted": report.aborted, "interrupted": report.interrupted, "exit_code": int(report.exit_status),
        })
        return
    verb = "would replay" if report.dry_run else "replayed"
    count = report.selected if report.dry_run else report.replayed
    out.line(f"{verb} {count} of {report.examined} dead-lettered message(s) from {report.source} "
             f"to {report.destination}")
    if report.by_topic:
        out.table(["topic", "examined"], sorted(report.by_topic.items()), title="dead-lettered messages by topic")
    if report.dry_run and report.samples:
        out.line("sample of the selected events:")
        for sample in report.samples:
            import json

            out.line("  " + json.dumps(sample, ensure_ascii=False, separators=(",", ":")))
    if report.left:
        where = "passed over (a Kafka topic cannot keep them)" if report.passed_over else "left in the dead-letter queue"
        out.line(f"{report.left} message(s) not selected: {where}")
    if report.failed:
        out.table(["message id", "event id", "topic", "error"],
                  [(f.message_id, f.event_id, f.topic, f.error) for f in report.failed],
                  title=f"{len(report.failed)} message(s) failed and stay in the dead-letter queue")
    if report.aborted:
        out.error(f"stopped: {report.aborted}; messages not confirmed stay in the dead-letter queue")
    if report.interrupted:
        out.error("interrupted: the messages counted above were replayed; the rest stay in the dead-letter queue")

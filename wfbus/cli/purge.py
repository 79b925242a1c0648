"""`wfbus purge`: empty a queue (the dead-letter one with --dead-letter); confirmation as for replay."""

from __future__ import annotations

import sys

import typer

from .completion import broker_names


def register(app: typer.Typer) -> None:
    app.command(
        "purge",
        help="Empty a queue (main, or the dead-letter one with --dead-letter); asks on a "
        "terminal unless --yes.",
    )(purge_command)


def purge_command(
    ctx: typer.Context,
    broker: str | None = typer.Option(
        None, "--broker", "-b", autocompletion=broker_names, help="Broker name from the config."
    ),
    dead_letter: bool = typer.Option(
        False, "--dead-letter", "-d", help="Empty the dead-letter queue."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say how many messages would be removed; remove none."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask for confirmation on a terminal."
    ),
) -> int:
    state = ctx.obj
    out = state.out
    which = "dead-letter" if dead_letter else "main"
    with state.config.open(broker) as target:
        where = target.describe_destination(dead_letter=dead_letter)
        row = next((r for r in target.depth() if r.role == which), None)
        count = (
            None if row is None else (row.ready or 0) + (row.in_flight or 0) + (row.delayed or 0)
        )
        shown = (
            "?"
            if count is None
            else f"~{count}"
            if row is not None and row.approximate
            else str(count)
        )
        if dry_run:
            _render(out, target.name, where, which, count, dry_run=True)
            return 0
        interactive = not yes and out.mode == "text" and sys.stdin.isatty() and sys.stderr.isatty()
        if interactive and not typer.confirm(
            f"remove {shown} message(s) from {target.name} ({where})?", err=True
        ):
            out.note("nothing removed")
            return 0
        removed = target.purge(dead_letter=dead_letter)
    _render(out, target.name, where, which, removed, dry_run=False)
    return 0


def _render(out, broker: str, where: str, which: str, count: int | None, *, dry_run: bool) -> None:
    if out.mode != "text":
        out.json(
            {
                "broker": broker,
                "queue": where,
                "role": which,
                "dry_run": dry_run,
                "would_remove" if dry_run else "removed": count,
            }
        )
        return
    amount = "?" if count is None else str(count)
    verb = "would remove" if dry_run else "removed"
    out.line(f"{verb} {amount} message(s) from {broker} ({where}, {which})")

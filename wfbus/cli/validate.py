"""`wfbus validate`: check events offline; no broker is contacted."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("validate", help="Check events against the schema without contacting any broker.")(
        validate_command
    )


def validate_command(
    ctx: typer.Context,
    sources: list[str] = typer.Argument(
        ..., metavar="SOURCE...", help="Files, directories, or - for stdin."
    ),
) -> int:
    from ..sources import EventSources

    state = ctx.obj
    with EventSources(sources, stdin=state.stdin, notice=state.out.note) as event_sources:
        report = event_sources.scan(digest=False)
    report.raise_if_invalid(
        consequence=f"{report.count} event(s) read" if report.count else "nothing to validate",
        # not "run validate": this is it
        hint="fix the events listed above and run the same command again",
    )
    if state.out.mode != "text":
        state.out.json({"valid": True, "count": report.count, "problems": []})
    else:
        state.out.line(f"{report.count} event(s) valid")
    return 0

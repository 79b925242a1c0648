"""`wfbus schema`: the JSON Schema of an input event."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("schema", help="Print the JSON Schema of a workflow event.")(schema_command)


def schema_command(ctx: typer.Context) -> int:
    from ..event import EVENT_JSON_SCHEMA

    ctx.obj.out.json(EVENT_JSON_SCHEMA)
    return 0

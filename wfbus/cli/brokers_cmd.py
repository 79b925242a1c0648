"""`wfbus brokers`: the configured brokers, their type and target; secrets redacted."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("brokers", help="List configured brokers (secrets redacted).")(brokers_command)


def brokers_command(ctx: typer.Context) -> int:
    state = ctx.obj
    config = state.config
    for name, warnings in config.broker_warnings.items():  # the overview warns about every broker
        for warning in warnings:
            state.out.warn(f"brokers.{name}: {warning}")
    rows = [
        {"name": name, "type": settings.type, "target": settings.target(), "default": name == config.default_broker}
        for name, settings in config.brokers.items()
    ]
    if state.out.mode != "text":
        state.out.json({"config": str(config.source) if config.source else None, "brokers": rows})
        return 0
    state.out.table(
        ["name", "type", "target", "default"],
        [(r["name"], r["type"], r["target"], "*" if r["default"] else "") for r in rows],
    )
    state.out.note(f"config: {config.source or 'built-in default (no config file found)'}")
    return 0

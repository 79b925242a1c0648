"""`wfbus brokers`: the configured brokers, their type and target; secrets redacted."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("brokers", help="List configured brokers, what each guarantees (order, resend, unselected); secrets redacted.")(brokers_command)


def brokers_command(ctx: typer.Context) -> int:
    state = ctx.obj
    config = state.config
    for name, warnings in config.broker_warnings.items():  # the overview warns about every broker
        for warning in warnings:
            state.out.warn(f"brokers.{name}: {warning}")
    from ..brokers import broker_class
    from ..redact import redact

    rows = [
        {"name": name, "type": settings.type, "target": redact(settings.target()), "default": name == config.default_broker,
         "capabilities": broker_class(settings.type).capabilities_for(settings).to_dict()}
        for name, settings in config.brokers.items()
    ]
    if state.out.mode != "text":
        state.out.json({"config": str(config.source) if config.source else None, "brokers": rows})
        return 0
    state.out.table(
        ["name", "type", "target", "default", "order kept", "resend recognised", "atomic transfer",
         "keeps unselected"],
        [(r["name"], r["type"], r["target"], "*" if r["default"] else "", r["capabilities"]["ordering"],
          _yes(r["capabilities"]["dedup_on_resend"]), _yes(r["capabilities"]["atomic_transfer"]),
          _yes(r["capabilities"]["keeps_unselected"])) for r in rows],
    )
    state.out.note(f"config: {config.source or 'built-in default (no config file found)'}")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"

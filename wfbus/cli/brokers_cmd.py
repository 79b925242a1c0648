"""`wfbus brokers`: the configured brokers, their type and target; secrets redacted."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "brokers",
        help="List configured brokers, what each guarantees (order, resend, unselected); secrets redacted.",
    )(brokers_command)


def brokers_command(ctx: typer.Context) -> int:
    """Every broker is listed, a broker whose settings are wrong too (with its problem): this is the
    command people run to debug their config, so one unset ${VAR} must not hide the others."""
    from ..brokers import broker_class
    from ..errors import ConfigError, ExitStatus, UsageError
    from ..redact import redact

    state = ctx.obj
    config = state.config
    try:
        default = config.resolve_name(None)  # named default_broker, else the only broker
    except UsageError:
        default = None
    rows, problems = [], []
    for name, raw in config.raw_brokers.items():
        row = {"name": name, "type": raw.get("type"), "default": name == default}
        try:
            settings = config.settings(name)
        except ConfigError as exc:
            problems.append(exc)
            rows.append(
                {
                    **row,
                    "target": None,
                    "capabilities": None,
                    "error": {"message": redact(exc.message), "hint": exc.hint},
                }
            )
            continue
        for warning in config.warnings_for(name):
            state.out.warn(f"brokers.{name}: {warning}")
        rows.append(
            {
                **row,
                "target": redact(settings.target()),
                "capabilities": broker_class(settings.type).capabilities_for(settings).to_dict(),
                "error": None,
            }
        )
    if state.out.mode != "text":
        state.out.json({"config": str(config.source) if config.source else None, "brokers": rows})
    else:
        state.out.table(
            [
                "name",
                "type",
                "target",
                "default",
                "order kept",
                "resend recognised",
                "atomic transfer",
                "keeps unselected",
            ],
            [_text_row(r) for r in rows],
        )
        state.out.note(f"config: {config.source or 'built-in default (no config file found)'}")
    for problem in problems:
        state.out.error(str(problem))
    return ExitStatus.CONFIG if problems else 0


def _text_row(r: dict) -> tuple[str, ...]:
    default = "*" if r["default"] else ""
    if r["error"] is not None:
        return (
            r["name"],
            r["type"] or "?",
            "(invalid settings: see below)",
            default,
            "-",
            "-",
            "-",
            "-",
        )
    c = r["capabilities"]
    return (
        r["name"],
        r["type"],
        r["target"],
        default,
        c["ordering"],
        _yes(c["dedup_on_resend"]),
        _yes(c["atomic_transfer"]),
        _yes(c["keeps_unselected"]),
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"

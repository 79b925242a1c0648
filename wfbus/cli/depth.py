"""`wfbus depth`: queue depth and consumer lag of every configured broker (or the ones named)."""

from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("depth", help="Show queue depth / lag; exit 6 when a --max-* threshold is exceeded.")(depth_command)


def depth_command(
    ctx: typer.Context,
    brokers: Optional[List[str]] = typer.Option(None, "--broker", "-b", help="Broker name (repeatable; default: all)."),
    max_ready: Optional[int] = typer.Option(None, "--max-ready", min=0, help="Alarm when a main queue holds more."),
    max_dead: Optional[int] = typer.Option(None, "--max-dead", min=0, help="Alarm when a dead-letter queue holds more."),
    max_lag: Optional[int] = typer.Option(None, "--max-lag", min=0, help="Alarm when consumer lag is higher."),
) -> int:
    from ..depth import Thresholds, measure
    from ..errors import ExitStatus

    state = ctx.obj
    config = state.config
    for name in brokers or []:
        config.resolve_name(name)  # unknown names are usage errors before anything is contacted
    report = measure(config, list(brokers or []), Thresholds(max_ready, max_dead, max_lag))
    out = state.out
    if out.mode != "text":
        out.json({
            "queues": [_row_document(row) for row in report.rows],
            "errors": {name: {"message": exc.message, "exit_code": int(exc.exit_status)}
                       for name, exc in report.errors.items()},
            "breaches": report.breaches,
        })
    else:
        out.table(
            ["broker", "queue", "role", "ready", "in flight", "delayed", "consumers", "lag"],
            [(r.broker, r.queue, r.role, _n(r.ready, r.approximate), _n(r.in_flight, r.approximate),
              _n(r.delayed, r.approximate), _n(r.consumers, False), _n(r.lag, False)) for r in report.rows],
        )
        if any(r.approximate for r in report.rows):
            out.note("~ approximate: the broker reports these counts as estimates")
        for name, exc in report.errors.items():
            out.error(f"{name}: {exc}")
        for breach in report.breaches:
            out.error(f"threshold exceeded: {breach}")
    if report.errors:
        return max(int(exc.exit_status) for exc in report.errors.values())
    if report.breaches:
        return ExitStatus.THRESHOLD_EXCEEDED
    return ExitStatus.OK


def _n(value, approximate: bool) -> str:
    if value is None:
        return "-"
    return f"~{value}" if approximate else str(value)


def _row_document(row) -> dict:
    return {
        "broker": row.broker, "queue": row.queue, "role": row.role, "ready": row.ready,
        "in_flight": row.in_flight, "delayed": row.delayed, "consumers": row.consumers, "lag": row.lag,
        "approximate": row.approximate, "detail": row.detail,
    }

"""`wfbus depth`: queue depth and consumer lag of every configured broker (or the ones named)."""

from __future__ import annotations

import typer

from .completion import broker_names


def register(app: typer.Typer) -> None:
    app.command(
        "depth", help="Show queue depth / lag; exit 6 when a --max-* threshold is exceeded."
    )(depth_command)


def depth_command(
    ctx: typer.Context,
    brokers: list[str] | None = typer.Option(
        None,
        "--broker",
        "-b",
        autocompletion=broker_names,
        help="Broker name (repeatable; default: all).",
    ),
    max_ready: int | None = typer.Option(
        None, "--max-ready", min=0, help="Alarm when a main queue holds more."
    ),
    max_dead: int | None = typer.Option(
        None, "--max-dead", min=0, help="Alarm when a dead-letter queue holds more."
    ),
    max_lag: int | None = typer.Option(
        None, "--max-lag", min=0, help="Alarm when consumer lag is higher."
    ),
    watch: float | None = typer.Option(
        None,
        "--watch",
        "-w",
        min=0.5,
        metavar="SECONDS",
        help="Refresh every SECONDS with the change since the last refresh, until Ctrl-C.",
    ),
) -> int:
    from ..depth import Thresholds, measure
    from ..errors import UsageError
    from ..redact import redact

    state = ctx.obj
    config = state.config
    for name in brokers or []:
        config.resolve_name(name)  # unknown names are usage errors before anything is contacted
    thresholds = Thresholds(max_ready, max_dead, max_lag)
    out = state.out
    if out.mode == "jsonl" and not watch:
        raise UsageError(
            "--output jsonl: `depth` prints one document; its line form is `depth --watch`",
            hint="use --output json, or add --watch SECONDS for one JSON line per refresh",
        )
    if watch:
        return _watch(out, config, list(brokers or []), thresholds, watch)
    report = measure(config, list(brokers or []), thresholds)
    if out.mode != "text":
        out.json(_document(report, redact))
    else:
        columns = ["broker", "queue", "role", "ready", "in flight", "delayed", "consumers", "lag"]
        rows: list[tuple[str, ...]] = [
            (
                r.broker,
                r.queue,
                r.role,
                _n(r.ready, r.approximate),
                _n(r.in_flight, r.approximate),
                _n(r.delayed, r.approximate),
                _n(r.consumers, False),
                _n(r.lag, False),
            )
            for r in report.rows
        ]
        if (
            report.errors
        ):  # an unreachable broker is a row too, so a script reading the table sees it
            columns.append("error")
            rows = [(*row, "") for row in rows]
            rows += [
                (
                    name,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    redact(exc.message).splitlines()[0].removeprefix(f"{name}: "),
                )
                for name, exc in report.errors.items()
            ]
        out.table(columns, rows)
        if any(r.approximate for r in report.rows):
            out.note("~ approximate: the broker reports these counts as estimates")
        for (
            name,
            exc,
        ) in report.errors.items():  # broker errors already start with the broker's name
            out.error(str(exc) if exc.message.startswith(f"{name}: ") else f"{name}: {exc}")
        for breach in report.breaches:
            out.error(f"threshold exceeded: {breach}")
    return _status(report)


def _status(report) -> int:
    from ..errors import ExitStatus

    if report.errors:
        return max(int(exc.exit_status) for exc in report.errors.values())
    if report.breaches:
        return ExitStatus.THRESHOLD_EXCEEDED
    return ExitStatus.OK


def _document(report, redact) -> dict:
    return {
        "queues": [_row_document(row) for row in report.rows],
        "errors": {
            name: {
                "message": redact(exc.message),
                "exit_code": int(exc.exit_status),
                "problems": _problems(exc, redact),
            }
            for name, exc in report.errors.items()
        },
        "breaches": report.breaches,
    }


def _problems(exc, redact) -> list[dict]:
    """A broker's config problems as {"place", "field", "reason"}, as in an error document."""
    from ..errors import Problem

    return [
        {
            key: redact(value) if value else value
            for key, value in Problem.of(problem).to_dict().items()
        }
        for problem in getattr(exc, "problems", ())
    ]


def _watch(out, config, names, thresholds, seconds: float) -> int:
    """Refresh in place on a terminal (rich Live); print a table per refresh in a pipe. Ctrl-C ends it (exit 0)."""
    import time
    from datetime import datetime

    from rich import box
    from rich.live import Live
    from rich.table import Table

    from ..depth import measure
    from ..redact import redact

    previous: dict = {}

    def render(report):
        table = Table(
            title=f"wfbus depth  {datetime.now():%H:%M:%S}  (every {seconds:g} s, Ctrl-C to stop)",
            box=box.SIMPLE_HEAD if out.console.is_terminal else None,
        )
        for column in (
            "broker",
            "queue",
            "role",
            "ready",
            "Δ",
            "in flight",
            "delayed",
            "consumers",
            "lag",
            "Δ lag",
        ):
            table.add_column(column)
        for r in report.rows:
            key = (r.broker, r.queue, r.role)
            before = previous.get(key)
            table.add_row(
                r.broker,
                r.queue,
                r.role,
                _n(r.ready, r.approximate),
                _delta(r.ready, before and before.ready),
                _n(r.in_flight, r.approximate),
                _n(r.delayed, r.approximate),
                _n(r.consumers, False),
                _n(r.lag, False),
                _delta(r.lag, before and before.lag),
            )
            previous[key] = r
        for name, exc in report.errors.items():
            table.add_row(name, "-", "error", redact(exc.message)[:60], "", "", "", "", "", "")
        for breach in report.breaches:
            table.add_row("", "", "ALARM", breach, "", "", "", "", "", "")
        return table

    last = None
    try:
        if out.mode != "text":  # one JSON document per refresh, one per line (jsonl and json alike)
            while True:
                last = measure(config, names, thresholds)
                out.jsonl(
                    [
                        {
                            "time": datetime.now().isoformat(timespec="seconds"),
                            **_document(last, redact),
                        }
                    ]
                )
                time.sleep(seconds)
        if out.console.is_terminal:
            last = measure(config, names, thresholds)
            with Live(render(last), console=out.console, auto_refresh=False) as live:
                while True:
                    time.sleep(seconds)
                    last = measure(config, names, thresholds)
                    live.update(render(last), refresh=True)
        while True:
            last = measure(config, names, thresholds)
            out.console.print(render(last))
            time.sleep(seconds)
    except KeyboardInterrupt:
        # a watch ends with the status of its last refresh: 6 while a threshold is
        # breached, 5 unreachable
        return _status(last) if last is not None else 0


def _delta(now, before) -> str:
    if now is None or before is None:
        return ""
    change = now - before
    return f"{change:+d}" if change else "0"


def _n(value, approximate: bool) -> str:
    if value is None:
        return "-"
    return f"~{value}" if approximate else str(value)


def _row_document(row) -> dict:
    return {
        "broker": row.broker,
        "queue": row.queue,
        "role": row.role,
        "ready": row.ready,
        "in_flight": row.in_flight,
        "delayed": row.delayed,
        "consumers": row.consumers,
        "lag": row.lag,
        "approximate": row.approximate,
        "detail": row.detail,
    }

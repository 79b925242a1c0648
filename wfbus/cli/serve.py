"""`wfbus serve`: the HTTP trigger (POST /events) with /metrics, /healthz, /readyz.
Parse, call, render."""

from __future__ import annotations

import sys

import typer

from .completion import broker_names


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        help="Serve POST /events (and /events/trigger) publishing to a broker, answered once "
        "the broker confirmed; /metrics, /healthz, /readyz. See docs/serve.md.",
    )(serve_command)


def serve_command(
    ctx: typer.Context,
    broker: str | None = typer.Option(
        None,
        "--broker",
        "-b",
        autocompletion=broker_names,
        help="Broker name from the config (default: serve.broker, else default_broker).",
    ),
    listen: str | None = typer.Option(
        None,
        "--listen",
        "-l",
        metavar="HOST:PORT",
        help="Address to serve on (default 127.0.0.1:8080).",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Serve a non-loopback address without a bearer token."
    ),
) -> int:
    from ..serve import require_server_packages

    require_server_packages()
    from ..serve import settings as serve_settings
    from ..serve.server import serve

    state = ctx.obj
    out = state.out
    config = state.config
    label = str(config.source) if config.source else "built-in config"
    settings = serve_settings.load(
        config.serve, label, {"broker": broker, "listen": listen, "insecure": insecure or None}
    )
    serve_settings.check_exposure(settings)
    name = config.resolve_name(settings.broker)
    allowed = [name] + [config.resolve_name(n) for n in settings.brokers if n != name]
    for each in allowed:
        config.settings(each)  # a broken broker config is said now, not at the first request
    for each in settings.depth_brokers or []:
        config.resolve_name(each)
    json_logs = out.mode != "text"

    def access_log(entry: dict) -> None:
        if json_logs:
            from ..strictjson import dumps_compact

            sys.stderr.write(dumps_compact(entry) + "\n")

    def ready(report) -> None:
        if not json_logs:
            out.note(
                f"serving {name} on http://{settings.listen} "
                "(POST /events; /metrics, /healthz, /readyz)"
            )

    report = serve(
        config, settings, name, allowed, access_log if json_logs else None, on_ready=ready
    )
    if out.mode != "text":
        out.json(
            {
                "listen": report.listen,
                "broker": name,
                "requests": report.requests,
                "stopped_by": report.signal,
            },
            diagnostic=True,
        )
    else:
        out.note(f"stopped: {report.requests} request(s) answered")
    return 128 + report.signal if report.signal else 0

"""Run the app on uvicorn (httptools + uvloop when installed) until SIGTERM / SIGINT.

uvicorn's own shutdown is the graceful part: it stops accepting, lets the requests in flight finish
(each waits for its broker confirmations), then the lifespan's end flushes and closes the brokers.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from .. import interrupts
from .app import AccessLog, Service, build_app
from .settings import ServeSettings


@dataclass
class ServeReport:
    listen: str
    requests: int = 0
    signal: int | None = None  # the stop signal, if one ended the server


def serve(
    config: Any,
    settings: ServeSettings,
    broker: str,
    allowed: list[str],
    access_log: AccessLog | None,
    on_ready: Any = None,
) -> ServeReport:
    import uvicorn

    service = Service(config, settings, broker, allowed, access_log=access_log)
    app = build_app(service)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": settings.graceful_timeout_seconds,
        "server_header": False,
        "proxy_headers": False,
    }
    if importlib.util.find_spec("uvloop") is not None:
        options["loop"] = "uvloop"
    if importlib.util.find_spec("httptools") is not None:
        options["http"] = "httptools"
    for name in (
        "tls_certfile",
        "tls_keyfile",
    ):  # before anything is served, a config error naming it
        value = getattr(settings, name)
        if value and not (config.base_dir / value).is_file():
            from ..errors import ConfigError

            raise ConfigError(
                f"serve.{name}: {config.base_dir / value} does not exist or is not a file",
                hint=f"fix serve.{name} in the config (a path relative to the config file's folder)",
            )
    if settings.tls_certfile:
        options["ssl_certfile"] = str(config.base_dir / settings.tls_certfile)
        options["ssl_keyfile"] = (
            str(config.base_dir / settings.tls_keyfile) if settings.tls_keyfile else None
        )
    server = uvicorn.Server(uvicorn.Config(app, **options))
    report = ServeReport(settings.listen)
    if on_ready is not None:
        on_ready(report)
    try:
        server.run()
    except (
        interrupts.Stopped
    ) as exc:  # uvicorn re-raises the signal it shut down on, once it is done
        report.signal = exc.signum
    except (
        SystemExit
    ):  # uvicorn's way to say it could not start (it logged why: address in use ...)
        from ..errors import UsageError

        raise UsageError(
            f"cannot serve on {settings.listen}",
            hint="is the port in use? pick another with --listen HOST:PORT",
        ) from None
    report.requests = service.requests_answered
    return report

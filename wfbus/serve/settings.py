"""The `serve:` key of the config file, and the command line's overrides of it."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, UsageError

TOKEN_VARIABLE = "WFBUS_SERVE_TOKEN"


class ServeSettings(BaseModel):
    """Every setting of `wfbus serve`; unknown keys are errors (`serve.listn: unknown key`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str | None = None  # the broker events go to (default: the config's default broker)
    listen: str = "127.0.0.1:8080"
    brokers: list[str] = Field(default_factory=list)  # others a request may pick with ?broker=NAME
    tokens: list[str] = Field(default_factory=list)  # bearer tokens (WFBUS_SERVE_TOKEN adds one)
    insecure: bool = False  # serve a non-loopback address without a token
    metrics_public: bool = False  # /metrics without a token (a scraper on a private network)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_events: int = Field(default=1000, gt=0)  # events per request
    max_concurrent: int = Field(default=1024, gt=0)  # requests being handled at once; more: 429
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, allow_inf_nan=False
    )  # whole request, confirmation included; 408
    linger_ms: float = Field(
        default=2.0, ge=0, allow_inf_nan=False
    )  # how long a batch waits for more requests to join it
    max_batch_events: int = Field(
        default=1000, gt=0
    )  # a broker batch holds at most this many (and the broker's own cap)
    coalesce: bool = (
        True  # False: one broker publish per request (the seed's pattern, for comparison)
    )
    readiness_cache_seconds: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    depth_interval_seconds: float = Field(default=15.0, gt=0, allow_inf_nan=False)
    depth_brokers: list[str] | None = (
        None  # whose depth /metrics shows (default: every configured broker)
    )
    graceful_timeout_seconds: float = Field(
        default=30.0, gt=0, allow_inf_nan=False
    )  # SIGTERM: the longest wait for in-flight
    tls_certfile: str | None = None
    tls_keyfile: str | None = None

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    def all_tokens(self) -> list[str]:
        env = os.environ.get(TOKEN_VARIABLE)
        return [t for t in [*self.tokens, *([env] if env else [])] if t]


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {listen!r}: give HOST:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(raw: Any, label: str, overrides: dict[str, Any]) -> ServeSettings:
    """The config's `serve:` mapping with the command line's values on top;
    errors name `serve.KEY`."""
    from pydantic import ValidationError

    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{label}: serve: must be a mapping")
    body = {**(raw or {}), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        settings = ServeSettings.model_validate(body)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(["serve", *(str(p) for p in error["loc"])])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            lines.append(f"{label}: {where}: {message}")
        raise ConfigError(
            "\n".join(lines), hint="see docs/serve.md for the serve: settings"
        ) from None
    split_listen(settings.listen)
    from .. import redact

    for token in settings.all_tokens():
        redact.register(token)
    return settings


def check_exposure(settings: ServeSettings) -> None:
    """A server on a non-loopback address without a token publishes for anyone who can reach it."""
    if not settings.all_tokens() and not is_loopback(settings.host) and not settings.insecure:
        raise UsageError(
            f"refusing to serve {settings.listen} without a token: anyone who can reach it "
            "could publish",
            hint=f"export {TOKEN_VARIABLE}=..., list serve.tokens in the config, listen on "
            "127.0.0.1, "
            "or pass --insecure",
        )

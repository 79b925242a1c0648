"""The HTTP API: POST /events (and the seed's /events/trigger), /healthz,
/readyz, /metrics, /openapi.json.

A 2xx answer means every event of the request was confirmed by the broker.  Any invalid event: 400
and nothing published (emit's all-or-nothing rule).  Some events failed: 502 naming them (their ids
make a retry recognisable).  Broker unreachable, nothing published: 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..brokers.base import OutgoingMessage
from ..errors import BrokerUnavailable, WfbusError
from ..redact import redact
from .auth import BearerAuth
from .batching import Outcome, Publisher
from .limits import ConcurrencyGate, TooLarge, read_body
from .metrics import DepthRefresher, Metrics
from .openapi import OPENAPI
from .parsing import is_lines, parse_body
from .settings import ServeSettings

RETRY_AFTER_UNAVAILABLE = "5"
AccessLog = Callable[[dict[str, Any]], None]


def _json(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(document), status_code=status, media_type="application/json", headers=headers
    )


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return _json(
        status, {"error": {"status": status, "message": redact(message), **extra}}, headers
    )


@dataclass
class Service:
    """What the handlers share: the config, one publisher per broker, metrics, limits."""

    config: Any
    settings: ServeSettings
    broker: str  # the default destination
    allowed: list[str]  # the brokers a request may pick with ?broker=
    access_log: AccessLog | None = None
    metrics: Metrics = field(default_factory=Metrics)
    publishers: dict[str, Publisher] = field(default_factory=dict)
    size_limits: dict[str, int | None] = field(default_factory=dict)
    ready_cache: dict[str, tuple[float, bool, str]] = field(default_factory=dict)
    refresher: DepthRefresher | None = None
    requests_answered: int = 0

    def __post_init__(self) -> None:
        self.auth = BearerAuth(self.settings.all_tokens())
        self.gate = ConcurrencyGate(self.settings.max_concurrent)
        self._ready_lock = asyncio.Lock()

    def start(self) -> None:
        linger = self.settings.linger_ms / 1000
        for name in self.allowed:
            self.publishers[name] = Publisher(
                name,
                functools.partial(self.config.open, name),
                linger=linger,
                coalesce=self.settings.coalesce,
                max_batch=self.settings.max_batch_events,
                on_batch=self.metrics.on_batch,
            )
        names = (
            self.settings.depth_brokers
            if self.settings.depth_brokers is not None
            else list(self.config.brokers)
        )
        if names:
            self.refresher = DepthRefresher(
                self.config, names, self.metrics, self.settings.depth_interval_seconds
            )
            self.refresher.start()

    def stop(self) -> None:
        """After the server answered every request in flight: flush and close every broker."""
        for publisher in self.publishers.values():
            publisher.stop(self.settings.graceful_timeout_seconds)
        if self.refresher is not None:
            self.refresher.stop()

    async def size_limit(self, name: str) -> int | None:
        if name not in self.size_limits:
            self.size_limits[name] = await self.publishers[name].call(
                lambda b: b.message_size_limit()
            )
        return self.size_limits[name]

    def log(self, request: Request, status: int, started: float, **extra: Any) -> None:
        self.requests_answered += 1
        seconds = time.monotonic() - started
        route = request.url.path
        self.metrics.request_seconds.labels(
            route if route in ROUTE_PATHS else "other", str(status)
        ).observe(seconds)
        if self.access_log is not None:
            client = request.client
            self.access_log(
                {
                    "time": time.time(),
                    "method": request.method,
                    "path": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": f"{client.host}:{client.port}" if client else None,
                    **extra,
                }
            )


async def post_events(request: Request) -> Response:
    service: Service = request.app.state.service
    started = time.monotonic()
    if not service.auth.allows(request.headers.get("authorization")):
        service.metrics.rejected.labels("401").inc()
        service.log(request, 401, started)
        return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    if not service.gate.try_enter():
        service.metrics.rejected.labels("429").inc()
        service.log(request, 429, started)
        return _error(
            429, f"too many concurrent requests (limit {service.gate.limit})", {"Retry-After": "1"}
        )
    service.metrics.in_flight.inc()
    extra: dict[str, Any] = {}
    try:
        try:
            response = await asyncio.wait_for(
                _publish(service, request, extra), service.settings.request_timeout_seconds
            )
        except asyncio.TimeoutError:
            response = _error(
                408,
                f"the request took longer than {service.settings.request_timeout_seconds:g} s; "
                "its events may or may not have been published: retry them (the same event "
                "ids make a retry recognisable)",
            )
    finally:
        service.gate.leave()
        service.metrics.in_flight.dec()
    if response.status_code >= 400 and response.status_code != 502:
        service.metrics.rejected.labels(str(response.status_code)).inc()
    service.log(request, response.status_code, started, **extra)
    return response


async def _publish(service: Service, request: Request, extra: dict[str, Any]) -> Response:
    name = request.query_params.get("broker") or service.broker
    if name not in service.allowed:
        return _error(403, f"broker {name!r} may not be chosen here", allowed=service.allowed)
    extra["broker"] = name
    try:
        body = await read_body(request, service.settings.max_body_bytes)
    except TooLarge:
        return _error(413, f"the body is over {service.settings.max_body_bytes:,} bytes")
    try:
        size_limit = await service.size_limit(name)
    except BrokerUnavailable as exc:
        return _error(
            503,
            f"broker {name!r} is unreachable: {exc.message}",
            {"Retry-After": RETRY_AFTER_UNAVAILABLE},
        )
    wire = service.config.settings(name).wire
    parsed = parse_body(
        body, lines=is_lines(request.headers.get("content-type")), wire=wire, size_limit=size_limit
    )
    if parsed.problems:
        count = len(parsed.problems) + parsed.more_problems
        extra["problems"] = count
        return _error(
            400,
            f"{count} problem{'s' if count != 1 else ''} in the events; nothing was published",
            problems=[p.to_dict() for p in parsed.problems],
            more_problems=parsed.more_problems,
        )
    if len(parsed.events) > service.settings.max_events:
        return _error(
            413,
            f"{len(parsed.events)} events, over the limit of {service.settings.max_events} per "
            "request; nothing was published",
        )
    messages = [OutgoingMessage.from_event(event, wire, place) for place, event in parsed.events]
    extra["events"] = len(messages)
    service.metrics.count_received(name, messages)
    outcomes = await service.publishers[name].publish(messages)
    return _answer(name, messages, outcomes)


def _answer(name: str, messages: list[OutgoingMessage], outcomes: list[Outcome]) -> Response:
    events = [{"index": i, "place": m.place, "id": m.event_id} for i, m in enumerate(messages)]
    failed = [{**events[i], "reason": o.reason} for i, o in enumerate(outcomes) if not o.ok]
    if not failed:
        return _json(200, {"broker": name, "published": len(messages), "events": events})
    published = [events[i] for i, o in enumerate(outcomes) if o.ok]
    if not published and all(o.unavailable for o in outcomes):
        return _error(
            503,
            f"broker {name!r} is unreachable: {failed[0]['reason']}; nothing was published",
            {"Retry-After": RETRY_AFTER_UNAVAILABLE},
            failed=failed,
        )
    return _error(
        502,
        f"{len(failed)} of {len(messages)} events were not confirmed by broker {name!r}; "
        "retry exactly those (their ids make a retry recognisable)",
        published=published,
        failed=failed,
    )


async def healthz(request: Request) -> Response:
    return _json(200, {"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the default broker answers (a depth query); the answer is cached for
    a few seconds."""
    service: Service = request.app.state.service
    name = service.broker
    now = time.monotonic()
    async with service._ready_lock:  # one probe at a time, however many probes arrive
        cached = service.ready_cache.get(name)
        if cached is None or now - cached[0] > service.settings.readiness_cache_seconds:
            ok, reason = await asyncio.to_thread(_probe, service.config, name)
            cached = service.ready_cache[name] = (time.monotonic(), ok, reason)
    _, ok, reason = cached
    if ok:
        return _json(200, {"status": "ready", "broker": name})
    return _json(
        503,
        {"status": "unavailable", "broker": name, "reason": redact(reason)},
        {"Retry-After": RETRY_AFTER_UNAVAILABLE},
    )


def _probe(config: Any, name: str) -> tuple[bool, str]:
    """A broker object of the probe's own (its thread owns it): ready when the destination events
    go to answers (its real identity: a connection and a lookup), which a publish-only broker
    without a queue to measure has too."""
    try:
        with config.open(name) as broker:
            broker.destination_identity()
    except WfbusError as exc:
        return False, exc.message
    except Exception as exc:  # noqa: BLE001 - a driver's surprise is "not ready", never a 500
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


async def metrics(request: Request) -> Response:
    service: Service = request.app.state.service
    if not service.settings.metrics_public and not service.auth.allows(
        request.headers.get("authorization")
    ):
        return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    return Response(service.metrics.exposition(), media_type=service.metrics.content_type)


async def openapi(request: Request) -> Response:
    return _json(200, OPENAPI)


ROUTES = [
    Route("/events", post_events, methods=["POST"]),
    Route("/events/trigger", post_events, methods=["POST"]),  # the seed's path
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
ROUTE_PATHS = {route.path for route in ROUTES}


def build_app(service: Service) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.service = service
    return app

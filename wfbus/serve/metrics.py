"""Prometheus metrics: what came in, what the brokers confirmed, how long it took, and queue depth.

Depth is the seed's "monitor queue depth: set up alarms" made scrapeable: a background thread
measures every configured queue (as `wfbus depth` does) on an interval, and the gauges hold
the last figures.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..brokers.base import OutgoingMessage
from .batching import Outcome

MAX_TOPICS = 1000  # topics are the clients' words: past this many, new ones are counted as "other"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
DEPTH_FIELDS = ("ready", "in_flight", "delayed", "lag")


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        labels = ("broker", "topic")
        self.received = Counter(
            "wfbus_serve_events_received", "Valid events received", labels, registry=registry
        )
        self.published = Counter(
            "wfbus_serve_events_published", "Events the broker confirmed", labels, registry=registry
        )
        self.failed = Counter(
            "wfbus_serve_events_failed",
            "Events the broker did not confirm",
            labels,
            registry=registry,
        )
        self.rejected = Counter(
            "wfbus_serve_requests_rejected",
            "Requests refused before publishing, by status",
            ("status",),
            registry=registry,
        )
        self.request_seconds = Histogram(
            "wfbus_serve_request_seconds",
            "Request latency",
            ("route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "wfbus_serve_publish_seconds",
            "Broker batch latency (submit to answer)",
            ("broker",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_events = Histogram(
            "wfbus_serve_batch_events",
            "Events per broker batch",
            ("broker",),
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=registry,
        )
        self.in_flight = Gauge(
            "wfbus_serve_requests_in_flight", "Requests being handled", registry=registry
        )
        self.depth = {
            name: Gauge(
                f"wfbus_queue_{name}",
                f"Queue depth: {name.replace('_', ' ')} messages",
                ("broker", "queue", "role"),
                registry=registry,
            )
            for name in DEPTH_FIELDS
        }
        self.depth_up = Gauge(
            "wfbus_queue_depth_up",
            "1 when the last depth measurement of a broker succeeded",
            ("broker",),
            registry=registry,
        )
        self._topics: set[str] = set()
        self._lock = threading.Lock()

    def topic(self, topic: str) -> str:
        with self._lock:
            if topic in self._topics or len(self._topics) < MAX_TOPICS:
                self._topics.add(topic)
                return topic
        return "other"

    def count_received(self, broker: str, messages: Sequence[OutgoingMessage]) -> None:
        for topic, n in _by_topic(messages).items():
            self.received.labels(broker, self.topic(topic)).inc(n)

    def on_batch(
        self,
        broker: str,
        messages: Sequence[OutgoingMessage],
        outcomes: Sequence[Outcome],
        seconds: float,
    ) -> None:
        """Called by the publisher's worker thread for every answered batch."""
        self.publish_seconds.labels(broker).observe(seconds)
        self.batch_events.labels(broker).observe(len(messages))
        ok = [m for m, o in zip(messages, outcomes, strict=False) if o.ok]
        bad = [m for m, o in zip(messages, outcomes, strict=False) if not o.ok]
        for topic, n in _by_topic(ok).items():
            self.published.labels(broker, self.topic(topic)).inc(n)
        for topic, n in _by_topic(bad).items():
            self.failed.labels(broker, self.topic(topic)).inc(n)

    def set_depth(self, report: Any) -> None:
        """The gauges of one `wfbus.depth.measure` report: rows replace the
        broker's previous figures."""
        for row in report.rows:
            for name in DEPTH_FIELDS:
                value = getattr(row, name)
                if value is not None:
                    self.depth[name].labels(row.broker, row.queue, row.role).set(value)
        for name in {row.broker for row in report.rows}:
            self.depth_up.labels(name).set(1)
        for name in report.errors:
            self.depth_up.labels(name).set(0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _by_topic(messages: Sequence[OutgoingMessage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.topic] = counts.get(message.topic, 0) + 1
    return counts


class DepthRefresher:
    """Measures depth every `interval` seconds in its own thread (with its own broker objects)."""

    def __init__(self, config: Any, names: list[str], metrics: Metrics, interval: float) -> None:
        self._config = config
        self._names = names
        self._metrics = metrics
        self._interval = interval
        self._stop = threading.Event()
        self.measured = (
            threading.Event()
        )  # set after the first measurement (tests and /readyz read it)
        self._thread = threading.Thread(target=self._run, name="wfbus-serve-depth", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from ..depth import Thresholds, measure
        from ..errors import WfbusError

        while not self._stop.is_set():
            try:
                self._metrics.set_depth(measure(self._config, self._names, Thresholds()))
            except WfbusError:
                # a broken broker config is said once at start-up; the gauges keep
                # their last figures
                pass
            except Exception:  # noqa: BLE001 - a driver's surprise must not end the measuring for good
                pass
            self.measured.set()
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

"""Depth: how many messages wait where, across brokers, and which thresholds are breached."""

from __future__ import annotations

from dataclasses import dataclass, field

from .brokers.base import QueueDepth
from .config import Config
from .errors import WfbusError
from .redact import redact


@dataclass(frozen=True)
class Thresholds:
    max_ready: int | None = None
    max_dead: int | None = None
    max_lag: int | None = None

    def breaches(self, row: QueueDepth) -> list[str]:
        found = []
        if row.role == "main" and self.max_ready is not None and (row.ready or 0) > self.max_ready:
            found.append(f"{row.broker}/{row.queue}: ready {row.ready} > {self.max_ready}")
        if (
            row.role == "dead-letter"
            and self.max_dead is not None
            and (row.ready or 0) > self.max_dead
        ):
            found.append(f"{row.broker}/{row.queue}: dead-lettered {row.ready} > {self.max_dead}")
        if self.max_lag is not None and row.lag is not None and row.lag > self.max_lag:
            found.append(f"{row.broker}/{row.queue}: lag {row.lag} > {self.max_lag}")
        return found


@dataclass
class DepthReport:
    rows: list[QueueDepth] = field(default_factory=list)
    errors: dict[str, WfbusError] = field(default_factory=dict)  # broker name -> why it has no row
    breaches: list[str] = field(default_factory=list)


def measure(config: Config, names: list[str], thresholds: Thresholds) -> DepthReport:
    """Depth of each named broker (all configured ones when none is named); one failing broker
    does not hide the others."""
    report = DepthReport()
    for name in names or list(config.brokers):
        try:
            with config.open(name) as broker:
                rows = broker.depth()
        except WfbusError as exc:
            if isinstance(exc, WfbusError) and exc.exit_status == 2:
                raise
            exc.message = redact(exc.message)
            report.errors[name] = exc
            continue
        report.rows.extend(rows)
        for row in rows:
            report.breaches.extend(thresholds.breaches(row))
    return report

"""Timing, alternation, medians and the report; nothing here knows about a broker."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    scenario: str
    tool: str
    events: int
    seconds: float
    runs: int
    note: str = ""
    peak_rss_kb: int | None = None

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.events and self.seconds > 0 else None


@dataclass
class Bench:
    scale: float = 1.0
    repeat: int = 3
    rows: list[Row] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wfbus-bench-")))
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def n(self, count: int, floor: int = 5) -> int:
        return max(floor, int(count * self.scale))

    # -- running things ----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NO_COLOR": "1",
            "WFBUS_CONFIG": str(self.workdir / "wfbus.yaml"),
            "XDG_STATE_HOME": str(self.workdir / "state"),
        }

    def wfbus(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-m", "wfbus", *args], stdin=stdin)

    def run(
        self, argv: list[str], stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, env=self.env(), cwd=self.workdir
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{argv[:4]} exited {proc.returncode}: {proc.stderr.decode()[-800:]}"
            )
        return proc

    @staticmethod
    def clock(action: Callable[[], object]) -> float:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    def peak_rss_kb(self, argv: list[str]) -> int:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env(),
            cwd=self.workdir,
        )  # output dropped: a 1M-message peek stays out of the bench's memory
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode()[-800:])
        return int(proc.stderr.decode().strip().splitlines()[-1])

    # -- comparisons -------------------------------------------------------------------------
    def compare(
        self,
        scenario: str,
        contenders: dict[str, tuple[int, Callable[[], float]]],
        setup: Callable[[], None] | None = None,
        repeat: int | None = None,
        notes: dict | None = None,
    ) -> None:
        """Alternate the contenders `repeat` times; each callable returns its own measured seconds.
        contenders: tool -> (events it handles per run, callable)."""
        times: dict[str, list[float]] = {tool: [] for tool in contenders}
        for _ in range(repeat or self.repeat):
            for tool, (_, action) in contenders.items():
                if setup:
                    setup()
                times[tool].append(action())
        for tool, (events, _) in contenders.items():
            self.rows.append(
                Row(
                    scenario,
                    tool,
                    events,
                    statistics.median(times[tool]),
                    len(times[tool]),
                    (notes or {}).get(tool, ""),
                )
            )
            print(
                f"   {tool:<40} {statistics.median(times[tool]):8.3f} s  ({events} events)",
                file=sys.stderr,
            )

    def cleanup(self) -> None:
        for action in reversed(self.cleanups):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - best effort: report and go on
                print(f"cleanup: {exc}", file=sys.stderr)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the report --------------------------------------------------------------------------
    def report(self) -> dict:
        machine = describe_machine()
        lines = [
            f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; "
            f"Python {machine['python']}; {machine['servers']}",
            f"Scale {self.scale:g}, {self.repeat} alternating repetitions, medians.",
            "",
            "| scenario | tool | events | median s | events/s | wfbus vs tool |",
            "|---|---|---|---|---|---|",
        ]
        by_scenario: dict[str, list[Row]] = {}
        for row in self.rows:
            by_scenario.setdefault(row.scenario, []).append(row)
        data = []
        for scenario, rows in by_scenario.items():
            ours = next((r for r in rows if r.tool.startswith("wfbus")), None)
            for row in rows:
                ratio = ""
                if ours and row is not ours:
                    if row.peak_rss_kb and ours.peak_rss_kb:
                        ratio = f"{row.peak_rss_kb / ours.peak_rss_kb:.2f}x the peak RSS"
                    elif ours.rate and row.rate and ours.events > 1:
                        ratio = f"{ours.rate / row.rate:.2f}x throughput"
                    elif ours.seconds and row.seconds:
                        ratio = (
                            f"{row.seconds / ours.seconds:.2f}x faster"
                            if row.seconds > ours.seconds
                            else f"{ours.seconds / row.seconds:.2f}x slower"
                        )
                rate = f"{row.rate:,.0f}" if row.rate and row.events > 1 else "-"
                extra = f" ({row.note})" if row.note else ""
                if row.peak_rss_kb:
                    extra += f" peak RSS {row.peak_rss_kb / 1024:.0f} MiB"
                lines.append(
                    f"| {scenario} | {row.tool}{extra} | {row.events:,} | {row.seconds:.3f} | {rate} | {ratio} |"
                )
                data.append({**row.__dict__, "events_per_second": row.rate, "ratio": ratio})
        from .targets import markdown as targets

        lines.extend(targets(self.rows))
        return {
            "markdown": "\n".join(lines),
            "data": {"machine": machine, "scale": self.scale, "repeat": self.repeat, "rows": data},
        }


def describe_machine() -> dict:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        kb = int(
            next(
                row
                for row in Path("/proc/meminfo").read_text().splitlines()
                if row.startswith("MemTotal")
            ).split()[1]
        )
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        memory = "?"
    servers = "Kafka 4.1.1 (KRaft), ElasticMQ 1.6.11, RabbitMQ " + _rabbit_version()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "servers": servers,
    }


def _rabbit_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"

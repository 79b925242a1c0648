"""Issue 14's targets, each read from the rows of one bench run and said met or not.

A target compares wfbus with its peer measured in the same run (ratios), or states an absolute rate;
a figure whose rows are missing (a scenario not run, a peer tool not installed) is
"not measured", never met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .runner import Row


@dataclass(frozen=True)
class Target:
    figure: str
    goal: str
    measure: Callable[[list[Row]], tuple[float, str] | None]  # (value, how it was computed)
    met: Callable[[float], bool]


def _row(rows: list[Row], scenario: str, tool: str) -> Row | None:
    return next(
        (r for r in rows if r.scenario.startswith(scenario) and r.tool.startswith(tool)), None
    )


def _ratio_of_seconds(scenario_a: str, tool_a: str, scenario_b: str, tool_b: str):
    def measure(rows: list[Row]) -> tuple[float, str] | None:
        a, b = _row(rows, scenario_a, tool_a), _row(rows, scenario_b, tool_b)
        if not a or not b or not b.seconds:
            return None
        return a.seconds / b.seconds, f"{a.seconds:.3f} s / {b.seconds:.3f} s"

    return measure


def _ratio_of_rates(scenario: str, tool_a: str, tool_b: str):
    def measure(rows: list[Row]) -> tuple[float, str] | None:
        a, b = _row(rows, scenario, tool_a), _row(rows, scenario, tool_b)
        if not a or not b or not a.rate or not b.rate:
            return None
        return a.rate / b.rate, f"{a.rate:,.0f}/s vs {b.rate:,.0f}/s"

    return measure


def _rate(scenario: str, tool: str):
    def measure(rows: list[Row]) -> tuple[float, str] | None:
        a = _row(rows, scenario, tool)
        if not a or not a.rate:
            return None
        return a.rate, f"{a.events:,} in {a.seconds:.2f} s"

    return measure


def _rss_ratio(scenario: str, small: str, large: str):
    def measure(rows: list[Row]) -> tuple[float, str] | None:
        a, b = _row(rows, scenario, large), _row(rows, scenario, small)
        if not a or not b or not a.peak_rss_kb or not b.peak_rss_kb:
            return None
        return (
            a.peak_rss_kb / b.peak_rss_kb,
            f"{a.peak_rss_kb / 1024:.0f} MiB vs {b.peak_rss_kb / 1024:.0f} MiB",
        )

    return measure


FLOOR = ("start-up: --help", "python3 -c pass")
TARGETS = [
    Target(
        "one-event local emit",
        "≤ 3× python3 -c pass",
        _ratio_of_seconds("start-up: one-event emit, local", "wfbus", *FLOOR),
        lambda v: v <= 3,
    ),
    Target(
        "wfbus --help",
        "≤ 1.5× python3 -c pass",
        _ratio_of_seconds("start-up: --help", "wfbus", *FLOOR),
        lambda v: v <= 1.5,
    ),
    Target(
        "one-event SQS emit",
        "≤ 1.0× aws sqs send-message",
        _ratio_of_seconds(
            "start-up: one-event emit, SQS", "wfbus", "start-up: one-event emit, SQS", "aws"
        ),
        lambda v: v <= 1.0,
    ),
    Target(
        "validate", "≥ 250,000 events/s", _rate("validate only", "wfbus"), lambda v: v >= 250_000
    ),
    Target(
        "emit to local",
        "≥ 100,000 events/s",
        _rate("memory: peak RSS of emit", "wfbus emit 1,000,000"),
        lambda v: v >= 100_000,
    ),
    Target(
        "Kafka 100k emit, librdkafka driver",
        "wall ≤ 3× kcat",
        _ratio_of_seconds("bulk emit: Kafka", "wfbus emit, librdkafka", "bulk emit: Kafka", "kcat"),
        lambda v: v <= 3,
    ),
    Target(
        "Kafka 100k emit, kafka-python driver",
        "≥ 0.8× a bare kafka-python loop",
        _ratio_of_rates("bulk emit: Kafka", "wfbus emit, kafka-python", "bare kafka-python"),
        lambda v: v >= 0.8,
    ),
    Target(
        "RabbitMQ 50k persistent emit, confirmed",
        "≥ 70% of pika without confirms",
        _ratio_of_rates("bulk emit: RabbitMQ", "wfbus", "pika, no confirms"),
        lambda v: v >= 0.7,
    ),
    Target(
        "SQS 10k emit",
        "≥ 1.0× boto3 send_message_batch, 8 threads",
        _ratio_of_rates("bulk emit: SQS", "wfbus", "boto3 send_message_batch"),
        lambda v: v >= 1.0,
    ),
    Target(
        "replay 10k: local",
        "≥ 50,000/s",
        _rate("replay 10k-style DLQ: local", "wfbus"),
        lambda v: v >= 50_000,
    ),
    Target(
        "replay 10k: Kafka (librdkafka)",
        "≥ 20,000/s",
        _rate("replay 10k-style DLQ: kafka", "wfbus replay (kafka)"),
        lambda v: v >= 20_000,
    ),
    Target(
        "replay 10k: Kafka (kafka-python)",
        "≥ 20,000/s",
        _rate("replay 10k-style DLQ: kafka-python", "wfbus"),
        lambda v: v >= 20_000,
    ),
    Target(
        "replay 10k: RabbitMQ",
        "≥ 5,000/s",
        _rate("replay 10k-style DLQ: rabbitmq", "wfbus"),
        lambda v: v >= 5_000,
    ),
    Target(
        "replay 10k: SQS standard",
        "≥ 1,000/s",
        _rate("replay 10k-style DLQ: sqs", "wfbus"),
        lambda v: v >= 1_000,
    ),
    Target(
        "memory: peek --all -o jsonl",
        "1M vs 10k peak RSS ≤ 1.5×",
        _rss_ratio(
            "memory: peak RSS of peek --all -o jsonl",
            "wfbus peek --all -o jsonl, 10,",
            "wfbus peek --all -o jsonl, 1,000,000",
        ),
        lambda v: v <= 1.5,
    ),
    Target(
        "memory: emit",
        "1M vs 10k peak RSS ≤ 1.5×",
        _rss_ratio("memory: peak RSS of emit", "wfbus emit 10,", "wfbus emit 1,000,000"),
        lambda v: v <= 1.5,
    ),
]


def markdown(rows: list[Row]) -> list[str]:
    lines = [
        "",
        "## Targets (issue 14), from this run",
        "",
        "| figure | target | measured | value | met |",
        "|---|---|---|---|---|",
    ]
    for target in TARGETS:
        measured = target.measure(rows)
        if measured is None:
            lines.append(f"| {target.figure} | {target.goal} | not measured | - | no |")
            continue
        value, how = measured
        shown = f"{value:,.0f}/s" if "/s" in target.goal else f"{value:.2f}×"
        lines.append(
            f"| {target.figure} | {target.goal} | {how} | {shown} | {'yes' if target.met(value) else 'no'} |"
        )
    return lines

"""The README's table of what each built-in broker type guarantees, rendered from the declarations.

Every cell comes from `capabilities_for(settings)` of the broker class registered for the type, the
same value core code and `wfbus brokers` read, so the README cannot claim what the code does not
declare: tests/test_capabilities_table.py fails when the block between the README markers differs
from this rendering. After changing a declaration, refresh the README with
`python -m wfbus.brokers.capabilities_table --update README.md`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import broker_class
from .base import Capabilities

START = "<!-- capabilities:start -->"
END = "<!-- capabilities:end -->"

# one row per built-in broker type; SQS twice, because a FIFO queue guarantees more
# than a standard one
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("local", {"type": "local"}),
    ("SQS standard", {"type": "sqs", "queue_name": "events"}),
    ("SQS FIFO", {"type": "sqs", "queue_name": "events.fifo"}),
    ("Kafka", {"type": "kafka", "bootstrap_servers": ["localhost:9092"], "topic": "events"}),
    ("RabbitMQ", {"type": "rabbitmq"}),
]

# (column heading, Capabilities field, what the column means)
COLUMNS: list[tuple[str, str, str]] = [
    (
        "order kept",
        "ordering",
        "whose order a publish and a replay keep: per queue, per key (the urn: a Kafka "
        "partition), per group (an SQS FIFO message group), or none",
    ),
    (
        "resend recognised",
        "dedup_on_resend",
        "a message sent again after a kill is recognised and dropped by "
        "the destination, so a rerun adds no duplicate",
    ),
    (
        "atomic transfer",
        "atomic_transfer",
        "a replay publishes and removes each message in one transaction "
        "(within one broker), so a kill never duplicates one",
    ),
    (
        "keeps unselected",
        "keeps_unselected",
        "messages a selective replay did not pick stay for a later replay",
    ),
    ("native move", "native_move", "the server's own redrive is available (`replay --native`)"),
    ("exact depth", "exact_depth", "`depth` figures are exact (no: approximate)"),
    (
        "keeps properties",
        "keeps_properties",
        "a replay into the same broker type republishes headers and properties type for type",
    ),
]

_ORDERING = {
    "none": "none",
    "per-key": "per key",
    "per-group": "per group",
    "per-queue": "per queue",
    "total": "total",
}


def capabilities_of(settings: dict[str, Any]) -> Capabilities:
    """What the registered class declares for these settings (no I/O: nothing is contacted)."""
    cls = broker_class(settings["type"])
    return cls.capabilities_for(cls.settings_model(**settings))


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _ORDERING.get(str(value), str(value))


def render() -> str:
    """The markdown table and its legend, as the README holds them between the markers."""
    lines = [
        "| broker | " + " | ".join(heading for heading, _, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for label, settings in ROWS:
        declared = capabilities_of(settings)
        lines.append(
            f"| {label} | "
            + " | ".join(_cell(getattr(declared, field)) for _, field, _ in COLUMNS)
            + " |"
        )
    lines.append("")
    lines.extend(f"- **{heading}**: {meaning}." for heading, _, meaning in COLUMNS)
    return "\n".join(lines) + "\n"


def replace_block(text: str, table: str) -> str:
    """`text` with the block between the markers replaced by `table` (ValueError if a marker is missing)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} ... {END} are missing")
    return text[: start + len(START)] + "\n" + table + text[end:]


def block_of(text: str) -> str:
    """What stands between the markers (without the newline that follows the start marker)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} ... {END} are missing")
    return text[start + len(START) : end].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wfbus.brokers.capabilities_table", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--update",
        metavar="README",
        type=Path,
        help="rewrite the block between the markers in this file instead of printing",
    )
    args = parser.parse_args(argv)
    table = render()
    if args.update is None:
        sys.stdout.write(table)
        return 0
    args.update.write_text(
        replace_block(args.update.read_text(encoding="utf-8"), table), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

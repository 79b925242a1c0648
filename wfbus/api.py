"""wfbus as a library, for scripts and notebooks: the CLI's own code path, without the CLI.

    from wfbus import api

    with api.open_broker("order") as broker:  # a broker of the config (None: the default)
        events = [{"topic": "order.submit", "urn": "o-1", "payload": {"total": 5}}]
        report = api.emit(broker, events)
        assert report.exit_status == 0, report.failed  # every event confirmed
        for row in api.depth(broker):  # QueueDepth: queue, role, ready, in_flight, ...
            print(row.queue, row.ready)
        for message in api.peek(broker, limit=5):  # left in place
            print(message.document or message.body)

- `open_broker(name=None, config=None)` finds the config as the CLI does (`config`, else
  $WFBUS_CONFIG, ./wfbus.yaml, $XDG_CONFIG_HOME/wfbus/config.yaml, else the built-in `local`
  broker) and returns an open `Broker`; use it in a `with` block (or call `close()`).
- `emit(broker, events)` validates every event first (nothing is sent if one is invalid:
  `InputError`, whose `problems` each have `place`, `field`, `reason`; a place is `events[i]` for
  events given as objects), then sends them and returns the `EmitReport` (`published`,
  `failed_count`, `failed`, `exit_status` as the CLI's exit code).  `events` is an iterable of
  event dicts (`{"topic", "urn", "payload", "attempt"}`) or `WorkflowEvent`s, or a path (or list
  of paths) to .json/.jsonl files or folders.
- `depth(broker)` -> list of `QueueDepth`; `peek(broker, limit=10, dead_letter=False)` -> list of
  `PeekedMessage` (`document` is the event as emit reads it back, None for a foreign body).

Errors are the CLI's (`wfbus.errors`: each has `exit_status`, `message`, `hint`).  Nothing here
prints; config warnings are passed to `warnings.warn`.  Every import is made on first use (a
driver only when its broker type is opened), as in the CLI.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .brokers.base import Broker, QueueDepth
    from .emit import EmitReport
    from .event import WorkflowEvent
    from .peek import PeekedMessage

PathLike = Union[str, "os.PathLike[str]"]
EVENTS_PLACE = "<stdin>"  # events given as objects travel as JSON lines through emit's stdin source


def open_broker(name: str | None = None, config: PathLike | None = None) -> Broker:
    """The configured broker `name` (None: default_broker, or the only one), opened."""
    import warnings

    from .config import load
    from .redact import redact

    loaded = load(os.fspath(config) if config is not None else None)
    for warning in loaded.warnings:
        warnings.warn(redact(warning), stacklevel=2)
    loaded.on_warning = lambda text: warnings.warn(
        redact(text), stacklevel=3
    )  # diagnostics: redacted
    return loaded.open(name)


def emit(
    broker: Broker,
    events: Iterable[dict[str, Any] | WorkflowEvent] | PathLike | Iterable[PathLike],
    *,
    dead_letter: bool = False,
    dry_run: bool = False,
    failed_out: PathLike | None = None,
) -> EmitReport:
    """Validate all `events`, then send them to `broker` (its dead-letter destination with
    `dead_letter`); the report accounts for every one.  `failed_out`: a JSONL file for the events
    not delivered (created only if some were not), as `wfbus emit --failed-out`."""
    from pathlib import Path

    from .emit import emit as emit_events
    from .errors import InputError
    from .sources import EventSources

    specs, stdin = _sources(events)
    try:
        with EventSources(specs, stdin=stdin) as sources:
            return emit_events(
                broker,
                sources,
                dead_letter=dead_letter,
                dry_run=dry_run,
                failed_out=Path(failed_out) if failed_out is not None else None,
            )
    except InputError as exc:
        if stdin is not None:
            exc.problems = [_as_index(problem) for problem in exc.problems]
        raise


def depth(broker: Broker) -> list[QueueDepth]:
    """How many messages wait in the broker's main and dead-letter queues (and consumer lag)."""
    return broker.depth()


def peek(
    broker: Broker, limit: int | None = 10, *, dead_letter: bool = False
) -> list[PeekedMessage]:
    """Up to `limit` messages (None: all) of the main or dead-letter queue, left in place."""
    from .peek import peek as peek_messages

    return list(peek_messages(broker, dead_letter=dead_letter, limit=limit).items)


def _sources(events: Any) -> tuple[list[str], io.BytesIO | None]:
    """Paths as sources; event objects as JSON lines read like stdin (validated the same way)."""
    if isinstance(events, (str, os.PathLike)):
        return [os.fspath(events)], None
    items = list(events)
    if not items:
        from .errors import EmptyInput

        raise EmptyInput(["events"])
    if all(isinstance(item, (str, os.PathLike)) for item in items):
        return [os.fspath(item) for item in items], None
    import json

    from .event import WorkflowEvent

    lines = []
    for item in items:
        document = item.to_dict() if isinstance(item, WorkflowEvent) else item
        lines.append(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
    return ["-"], io.BytesIO("".join(lines).encode("utf-8"))


def _as_index(problem: Any) -> Any:
    """`<stdin>:3: attempt: ...` -> `events[2]: attempt: ...`: the place in the caller's list."""
    from .errors import Problem

    problem = Problem.of(problem)
    place = problem.place or ""
    if place == EVENTS_PLACE:
        return Problem("events", problem.field, problem.reason)
    if place.startswith(f"{EVENTS_PLACE}:") and place[len(EVENTS_PLACE) + 1 :].isdigit():
        return Problem(
            f"events[{int(place[len(EVENTS_PLACE) + 1 :]) - 1}]", problem.field, problem.reason
        )
    return problem

"""A request body as events, with exactly emit's rules (wfbus.sources reads it,
wfbus.event judges it).

The body is one event, a JSON array, or JSON lines (`application/x-ndjson`).  Problems come back
structured, `{"place", "field", "reason"}`, built from the very lines `wfbus validate` prints.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .. import sources
from ..event import WireFormat, WorkflowEvent

BODY = "body"  # places read body, body[3] (array) or body:3 (JSON lines)
LINES_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json-seq",
)
MAX_LISTED = 100
# "field: reason": a field is a name or a dotted path (payload.items.0, payload["a b"]),
# never a sentence
_FIELD = re.compile(r'^([A-Za-z_][\w-]*(?:(?:\.[^.:\[]+)|(?:\["(?:[^"\\]|\\.)*"\]))*): (.*)$', re.S)


@dataclass(frozen=True, slots=True)
class Problem:
    place: str
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        return {"place": self.place, "field": self.field, "reason": self.reason}


@dataclass
class Parsed:
    events: list[tuple[str, WorkflowEvent]]
    problems: list[Problem]
    more_problems: int = 0


def is_lines(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in LINES_TYPES


def parse_body(body: bytes, *, lines: bool, wire: WireFormat, size_limit: int | None) -> Parsed:
    """Every event of the body and every problem, as `wfbus emit` finds them (it
    sends nothing then)."""
    reader: Iterable[sources.Located]
    if lines:
        reader = sources._read_lines(io.BytesIO(body), BODY)
    else:
        reader = sources._read_document(body, BODY)
    parsed = Parsed([], [])
    for item in reader:
        reasons = list(item.problems)
        if not reasons and item.event is not None and size_limit is not None:
            size = len(item.event.encode(wire))
            if size > size_limit:
                reasons.append(
                    f"event is {size:,} bytes, over the broker's {size_limit:,}-byte limit"
                )
        if reasons:
            for reason in reasons:
                if len(parsed.problems) < MAX_LISTED:
                    parsed.problems.append(structured(item.place, reason))
                else:
                    parsed.more_problems += 1
        elif item.event is not None:
            parsed.events.append((item.place, item.event))
    if not parsed.events and not parsed.problems:
        parsed.problems.append(Problem(BODY, None, sources.EMPTY_PROBLEM))
    return parsed


def structured(place: str, reason: str) -> Problem:
    """`urn: must be ...` -> field urn; a reason about the whole document has no field.

    A reason that already knows its parts (wfbus.errors.Problem, where the readers give
    one) keeps them."""
    if hasattr(reason, "field") and hasattr(reason, "reason"):
        return Problem(place, reason.field, reason.reason)
    match = _FIELD.match(reason)
    if match:
        return Problem(place, match.group(1), match.group(2))
    return Problem(place, None, reason)

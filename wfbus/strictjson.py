"""JSON decoding that refuses what a workflow consumer would misread.

The stdlib accepts duplicate keys (last one wins) and the non-standard NaN/Infinity tokens; a
Node.js consumer (`JSON.parse`) rejects the latter and silently keeps a different duplicate.
An event we cannot read the same way the consumer will must not be sent.
"""

from __future__ import annotations

import json
from typing import Any


class StrictJSONError(ValueError):
    """Invalid JSON, with a 1-based line and column where the decoder knows them."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"duplicate key {key!r}: a consumer would silently keep only one")
            seen.add(key)
    return result


def _no_constants(token: str) -> Any:
    raise StrictJSONError(f"{token} is not valid JSON: use a number or null")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def loads(text: str) -> Any:
    """Decode one JSON document strictly; raise StrictJSONError naming the line and column."""
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise StrictJSONError("invalid JSON: nested too deeply") from None


def dumps_compact(value: Any) -> str:
    """The wire form: compact separators, UTF-8 text kept as is (not \\u-escaped)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_canonical(value: Any) -> str:
    """Sorted keys, compact: the same value always gives the same text (for hashing)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

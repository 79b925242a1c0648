"""JSON decoding that refuses what a workflow consumer would misread.

The stdlib accepts duplicate keys (last one wins) and the non-standard NaN/Infinity tokens; a
Node.js consumer (`JSON.parse`) rejects the latter and silently keeps a different duplicate.
An event we cannot read the same way the consumer will must not be sent.
"""

from __future__ import annotations

import json
from typing import Any

# a C parser ~5x faster than the stdlib's with a Python hook; the stdlib path stays the reference
try:
    import orjson as _orjson
except (
    ImportError
):  # pragma: no cover - orjson is a dependency, but wfbus must still work without it
    _orjson = None  # type: ignore[assignment]


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
                raise StrictJSONError(
                    f"duplicate key {key!r}: a consumer would silently keep only one"
                )
            seen.add(key)
    return result


def _no_constants(token: str) -> Any:
    raise StrictJSONError(f"{token} is not valid JSON: use a number or null")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def loads(text: str | bytes) -> Any:
    """Decode one JSON document strictly; raise StrictJSONError naming the line and column.

    Fast path: orjson parses, and a cheap proof says the stdlib would have read the same value.
    First proof: orjson writes the value back as exactly the input text (the usual compact line), so
    no key was dropped as a duplicate, no number rounded, every escape read back as written.
    Second: with no backslash and no whitespace before a colon in the text, every key is written
    `"...":`, so the number of `":` equals the number of keys unless one was duplicated.  Whatever
    orjson refuses or neither proof covers goes through the stdlib decoder, the reference.
    """
    if _orjson is None:
        return _reference_loads(text)
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        value = _orjson.loads(raw)
    except _orjson.JSONDecodeError:
        return _reference_loads(text)  # it explains what is wrong
    if _orjson.dumps(value) == raw:
        return value
    if b"\\" not in raw and not any(ws in raw for ws in _WHITESPACE_COLON):
        try:
            keys = _count_keys(value)
        except RecursionError:
            keys = -1
        if keys >= 0 and keys == raw.count(b'":'):
            return value
    return _reference_loads(text)


_WHITESPACE_COLON = (b" :", b"\t:", b"\n:", b"\r:")
_FLOAT_EXACT_LIMIT = 2.0**53  # orjson reads an integer beyond 64 bits as a float: prove none was


def _reference_loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(
                f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
            ) from None
    try:
        value = _decoder.decode(text)
    except StrictJSONError:
        raise
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise StrictJSONError("invalid JSON: nested too deeply") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise StrictJSONError("invalid JSON: a number has too many digits") from None
    try:
        dumps_compact(value).encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError(
            "invalid JSON: a \\u escape is a lone surrogate, which is not text"
        ) from None
    except ValueError:
        raise StrictJSONError(
            "invalid JSON: a number is too large for a double (it would become Infinity)"
        ) from None
    except RecursionError:
        raise StrictJSONError("invalid JSON: nested too deeply") from None
    return value


def _count_keys(value: Any) -> int:
    """Keys in all objects of `value`; -1 if a float might be an integer orjson could not hold."""
    kind = type(value)
    if kind is dict or kind is list:
        total = len(value) if kind is dict else 0
        for item in value.values() if kind is dict else value:
            kind = type(item)
            if kind is dict or kind is list or kind is float:
                sub = _count_keys(item)
                if sub < 0:
                    return -1
                total += sub
        return total
    if kind is float and not -_FLOAT_EXACT_LIMIT < value < _FLOAT_EXACT_LIMIT:
        return -1
    return 0


def dumps_compact(value: Any) -> str:
    """The wire form: compact separators, UTF-8 text kept as is (not \\u-escaped)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_compact_bytes(value: Any) -> bytes:
    """dumps_compact as UTF-8 bytes, by orjson where it can (integers beyond 64 bits it cannot)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except (TypeError, _orjson.JSONEncodeError):
            pass
    return dumps_compact(value).encode("utf-8")


def dumps_canonical(value: Any) -> str:
    """Sorted keys, compact: the same value always gives the same text (for hashing)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _float_spelled_apart(text: bytes) -> bool:
    """orjson writes a float below 1e-4 as 0.0000... where the stdlib writes 1e-05, and an exponent
    (always signed: e+16, e-9) where the stdlib may spell the digits otherwise; text that has, or
    merely looks like it has (inside a string), such a float goes the stdlib's way.  Substring
    tests, no regex: this runs once per event."""
    return b"e+" in text or b"e-" in text or b"0.0000" in text


def dumps_canonical_bytes(value: Any) -> bytes:
    """dumps_canonical as UTF-8, byte for byte, by orjson where it provably writes the same text.

    Both escape the same characters the same way and sort keys by code point; they differ only in
    how some floats are spelled, which `_float_spelled_apart` catches
    (tests/test_hot_path.py compares both).
    """
    if _orjson is not None:
        try:
            text = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except (TypeError, _orjson.JSONEncodeError):
            text = None
        if text is not None and not _float_spelled_apart(text):
            return text
    return dumps_canonical(value).encode("utf-8")

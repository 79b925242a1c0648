"""Request limits: body size (413), concurrent requests (429); events per request and
time are in app."""

from __future__ import annotations

from typing import Any


class TooLarge(Exception):
    """The body is over the limit (said before it is read whole when Content-Length tells)."""


class ConcurrencyGate:
    """Counts requests being handled; one over the limit is refused at once, not queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


async def read_body(request: Any, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without holding them."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)

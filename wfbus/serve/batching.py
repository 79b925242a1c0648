"""Micro-batching: concurrent requests share one broker and its batches, each awaits
its own answers.

A broker object is not thread-safe, so one worker thread owns it (opens, publishes, closes) and the
event loop never blocks on a driver.  Requests hand their messages to the worker through a queue;
the worker gathers what arrives within `linger` (up to the broker's batch size) into one batch,
hands it over with `Broker.submit` (up to `pipeline_window` batches in flight), reads the answers
oldest first, and gives every request exactly the Delivery of each of its messages.  A request is
answered only when every one of its messages has its answer: a 2xx means confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..brokers.base import Broker, Delivery, OutgoingMessage
from ..errors import BrokerUnavailable, WfbusError
from ..redact import redact

_STOP = object()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One message's answer: confirmed, failed with a reason, or not sent because the
    broker is unreachable."""

    delivery: Delivery | None
    error: str | None = None
    unavailable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.delivery is not None and self.delivery.ok

    @property
    def reason(self) -> str:
        if self.delivery is not None and self.delivery.error:
            return redact(self.delivery.error)
        return redact(self.error or "no answer from the broker")


@dataclass(slots=True)
class _Request:
    """The answers of one HTTP request, filled in by the worker as its batches are answered."""

    outcomes: list[Outcome | None]
    remaining: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop

    def settle(self, offset: int, outcomes: Sequence[Outcome]) -> None:
        self.outcomes[offset : offset + len(outcomes)] = outcomes
        self.remaining -= len(outcomes)
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(_resolve, self.future, self.outcomes)


def _resolve(future: asyncio.Future, outcomes: list[Outcome | None]) -> None:
    if not future.done():  # a request that timed out no longer waits (its answer was a 408)
        future.set_result(outcomes)


@dataclass(slots=True)
class _Chunk:
    request: _Request
    offset: int
    messages: Sequence[OutgoingMessage]


@dataclass(slots=True)
class _Call:
    """Something to run with the broker in the worker thread (size limit, reachability, depth)."""

    function: Callable[[Broker], Any]
    future: Future = field(default_factory=Future)


class Publisher:
    """One broker, one worker thread; `publish()` is awaited by request handlers on
    the event loop."""

    def __init__(
        self,
        name: str,
        open_broker: Callable[[], Broker],
        *,
        linger: float,
        coalesce: bool = True,
        max_batch: int = 1000,
        on_batch: Callable[[str, Sequence[OutgoingMessage], Sequence[Outcome], float], None]
        | None = None,
    ) -> None:
        self.name = name
        self._open_broker = open_broker
        self._linger = linger
        self._coalesce = coalesce
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._broker: Broker | None = None
        self._thread = threading.Thread(target=self._run, name=f"wfbus-serve-{name}", daemon=True)
        self._thread.start()

    # -- the event loop's side ----------------------------------------------------------------
    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[Outcome]:
        """Every message's outcome, once the broker answered for all of them."""
        loop = asyncio.get_running_loop()
        request = _Request([None] * len(messages), len(messages), loop.create_future(), loop)
        if not messages:
            return []
        step = self.batch_size
        for offset in range(0, len(messages), step):
            self._queue.put(_Chunk(request, offset, messages[offset : offset + step]))
        return await request.future

    async def call(self, function: Callable[[Broker], Any]) -> Any:
        """Run `function(broker)` in the worker thread (the broker's owner); raises
        what it raises."""
        item = _Call(function)
        self._queue.put(item)
        return await asyncio.wrap_future(item.future)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def stop(self, timeout: float) -> None:
        """Answer everything queued and in flight, close the broker, end the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the worker thread ----------------------------------------------------------------------
    _batch_size = 500

    def _run(self) -> None:
        inflight: collections.deque = collections.deque()  # (pending, chunks, started)
        stopping = False
        while not stopping or inflight:
            chunks, stopping_now = self._gather(block=not inflight and not stopping)
            stopping = stopping or stopping_now
            if chunks:
                self._submit(chunks, inflight)
                if len(inflight) < self._window():
                    continue
            if inflight:
                self._answer(*inflight.popleft())
        self._close()

    def _window(self) -> int:
        return max(1, type(self._broker).pipeline_window) if self._broker is not None else 1

    def _gather(self, *, block: bool) -> tuple[list[_Chunk], bool]:
        """The chunks that arrive within the linger (the first one waited for when nothing
        is in flight)."""
        chunks: list[_Chunk] = []
        count = 0
        try:
            item = self._queue.get(timeout=1.0) if block else self._queue.get_nowait()
        except queue.Empty:
            return chunks, False
        deadline = time.monotonic() + self._linger
        while True:
            if item is _STOP:
                return chunks, True
            if isinstance(item, _Call):
                self._run_call(item)
            else:
                chunks.append(item)
                count += len(item.messages)
            if count >= self._batch_size or (chunks and not self._coalesce):
                return chunks, False
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                return chunks, False

    def _ensure_broker(self) -> Broker:
        if self._broker is None:
            broker = self._open_broker()
            self._broker = broker
            self._batch_size = max(1, min(self._max_batch, type(broker).publish_batch_size))
        return self._broker

    def _run_call(self, item: _Call) -> None:
        try:
            item.future.set_result(item.function(self._ensure_broker()))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request, which maps it
            if isinstance(exc, BrokerUnavailable):
                self._drop_broker()
            item.future.set_exception(exc)

    def _submit(self, chunks: list[_Chunk], inflight: collections.deque) -> None:
        messages = [m for chunk in chunks for m in chunk.messages]
        started = time.monotonic()
        try:
            broker = self._ensure_broker()
            pending = broker.submit(messages)
        except BrokerUnavailable as exc:
            self._fail(chunks, messages, exc, unavailable=True, started=started)
            return
        except Exception as exc:  # noqa: BLE001 - one failed batch must not stop the server; its requests say so
            self._fail(chunks, messages, exc, unavailable=False, started=started)
            return
        inflight.append((pending, chunks, started))

    def _answer(self, pending: Any, chunks: list[_Chunk], started: float) -> None:
        messages = [m for chunk in chunks for m in chunk.messages]
        try:
            deliveries = pending.result()
        except BrokerUnavailable as exc:
            self._fail(chunks, messages, exc, unavailable=True, started=started)
            return
        except Exception as exc:  # noqa: BLE001 - see _submit
            self._fail(chunks, messages, exc, unavailable=False, started=started)
            return
        if len(deliveries) != len(messages):  # the accounting rule: a missing answer is a failure
            by_id = {id(d.message): d for d in deliveries}
            outcomes = [
                Outcome(by_id[id(m)])
                if id(m) in by_id
                else Outcome(None, "no answer from the broker")
                for m in messages
            ]
        else:
            outcomes = [Outcome(d) for d in deliveries]
        self._settle(chunks, messages, outcomes, started)

    def _fail(
        self,
        chunks: list[_Chunk],
        messages: list[OutgoingMessage],
        exc: Exception,
        *,
        unavailable: bool,
        started: float,
    ) -> None:
        if unavailable:
            self._drop_broker()
        reason = (
            exc.message if isinstance(exc, WfbusError) else f"internal error: {type(exc).__name__}"
        )
        outcome = Outcome(None, reason, unavailable=unavailable)
        self._settle(chunks, messages, [outcome] * len(messages), started)

    def _settle(
        self,
        chunks: list[_Chunk],
        messages: list[OutgoingMessage],
        outcomes: list[Outcome],
        started: float,
    ) -> None:
        if self._on_batch is not None:
            self._on_batch(self.name, messages, outcomes, time.monotonic() - started)
        at = 0
        for chunk in chunks:
            chunk.request.settle(chunk.offset, outcomes[at : at + len(chunk.messages)])
            at += len(chunk.messages)

    def _drop_broker(self) -> None:
        """An unreachable broker is opened afresh for the next batch (a driver's dead
        connection stays dead)."""
        broker, self._broker = self._broker, None
        if broker is not None:
            try:
                broker.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone either way
                pass

    def _close(self) -> None:
        while True:  # anything that raced the stop is answered, never left waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Chunk):
                self._settle(
                    [item],
                    list(item.messages),
                    [Outcome(None, "the server is shutting down", unavailable=True)]
                    * len(item.messages),
                    time.monotonic(),
                )
            elif isinstance(item, _Call):
                item.future.set_exception(BrokerUnavailable("the server is shutting down"))
        self._drop_broker()

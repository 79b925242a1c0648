"""One batch's answers from either Kafka driver, turned into Deliveries the same way.

Both drivers report, per record: confirmed (None), refused with a reason and whether that reason
is the broker's trouble rather than the record's own fault (a timeout, a lost connection), or no
answer at all within the delivery timeout (UNANSWERED). What follows is decided here once: a
record's own fault fails that record alone; broker trouble stops the publishing
(`KafkaBroker._lost`: a later batch fails at once instead of waiting out the same timeout), and a
batch of which nothing was confirmed raises BrokerUnavailable (exit 5; 1 after a partial success).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import BrokerUnavailable
from .base import Delivery, OutgoingMessage

if TYPE_CHECKING:
    from .kafka import KafkaBroker

Outcome = tuple[str, bool] | None  # None: confirmed; else (why it failed, broker trouble?)
UNANSWERED: Outcome = ("no acknowledgement from Kafka before the timeout", True)


def deliveries_for(
    broker: KafkaBroker, messages: Sequence[OutgoingMessage], outcomes: Sequence[Outcome]
) -> tuple[list[Delivery], bool]:
    """One Delivery per message, and whether the broker was in trouble; raises when nothing of a
    troubled batch was confirmed."""
    deliveries = [
        Delivery(m) if o is None else Delivery(m, o[0])
        for m, o in zip(messages, outcomes, strict=True)
    ]
    trouble = next((o[0] for o in outcomes if o is not None and o[1]), None)
    if trouble is None:
        return deliveries, False
    # the producer retried for the whole delivery timeout and the broker still did not take these
    # records: stop instead of waiting out the same timeout batch after batch
    broker._lost = BrokerUnavailable(
        f"{broker.name}: publish: {trouble}",
        hint="check that the Kafka broker is up and reachable; rerun with --failed-out to resend "
        "what was not confirmed",
    )
    if not any(d.ok for d in deliveries):
        raise broker._lost
    return deliveries, True

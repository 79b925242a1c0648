"""One exception tree for wfbus; each error carries its exit code.

The CLI maps these to exit codes in exactly one place (``wfbus.cli.main``), so core code raises
what went wrong and never decides how the process ends.  Every message should tell the user what
to do next, because it is all they see (no traceback without ``--verbose``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ExitStatus(enum.IntEnum):
    """The exit codes of the contract (design.md); scripts rely on these numbers."""

    OK = 0
    DELIVERY_FAILED = 1
    USAGE = 2
    INVALID_INPUT = 3
    CONFIG = 4
    BROKER_UNAVAILABLE = 5
    THRESHOLD_EXCEEDED = 6
    INTERRUPTED = 130


class WfbusError(Exception):
    """Base of every error wfbus reports to the user instead of a traceback."""

    exit_status: ExitStatus = ExitStatus.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(WfbusError):
    """A bad flag combination or an unknown broker name."""

    exit_status = ExitStatus.USAGE


class ConfigError(WfbusError):
    """The config file is missing, unreadable, or does not follow the schema."""

    exit_status = ExitStatus.CONFIG


class InputError(WfbusError):
    """One or more input events are invalid; nothing was sent.

    Carries every problem found (already capped by the reader) so the user fixes them in one go.
    """

    exit_status = ExitStatus.INVALID_INPUT

    def __init__(
        self, problems: Sequence[str], *, more: int = 0, hint: str | None = None, consequence: str = "nothing was sent"
    ) -> None:
        self.problems = list(problems)
        self.more = more
        count = len(self.problems) + more
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} {noun} in the input events; {consequence}",
            hint=hint or "fix the events listed above and run the command again "
            "(`wfbus validate` checks them without contacting a broker)",
        )


class BrokerUnavailable(WfbusError):
    """The broker cannot be reached, refused our credentials, or the queue/topic is missing."""

    exit_status = ExitStatus.BROKER_UNAVAILABLE


class DeliveryFailed(WfbusError):
    """Some events were not confirmed by the broker (the rest may have been)."""

    exit_status = ExitStatus.DELIVERY_FAILED


class ThresholdExceeded(WfbusError):
    """A `depth` threshold was breached: an alarm for scripts and cron jobs."""

    exit_status = ExitStatus.THRESHOLD_EXCEEDED

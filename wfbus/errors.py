"""One exception tree for wfbus; each error carries its exit code.

The CLI maps these to exit codes in exactly one place (``wfbus.cli.main``), so core code raises
what went wrong and never decides how the process ends.  Every message should tell the user what
to do next, because it is all they see (no traceback without ``--verbose``, and none even with it
for a user's own mistake: a usage, input or config error is fully said by its message).

Output that cannot be written is not the command's outcome, so it never replaces a non-zero status:

- **A closed pipe** (EPIPE: ``wfbus peek -o jsonl | head -1``) means the reader had enough. wfbus
  stops writing, says nothing and exits with the status the command itself earned: 0 for that peek,
  1 for an emit that failed, 0 for an emit that delivered everything (exit 1 there would tell a
  script to resend events that all arrived).  Not 141 (death by SIGPIPE, as ``yes | head`` does):
  under ``set -o pipefail`` that would fail a script that only wanted the first lines, and for emit
  and replay it would hide whether the events were delivered.
- **Stdout that fails otherwise** (``> /dev/full``, an I/O error, a closed descriptor): the output
  the user asked for is lost, so "everything asked for was done" (0) would be a lie.  wfbus says so
  in one line on stderr, including the status the command itself earned, and exits ``OUTPUT_FAILED``
  (74, ``EX_IOERR`` of sysexits.h) when that status was 0; a non-zero status (a failed emit's 1, a
  breached threshold's 6, ...) is kept as it is, because it says more.
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
    INTERNAL = 70  # a bug: never for a user's mistake
    OUTPUT_FAILED = (
        74  # stdout could not be written (disk full, I/O error); the command itself succeeded
    )
    INTERRUPTED = 130


class Problem(str):
    """One problem of an input or a config: where (a file:line, a flag, a config file), which field
    (`attempt`, `payload.a.b`, `brokers.order.queue_url`; None for the whole value) and why.

    It is the text people read (`events.jsonl:12: attempt: must be an integer ≥ 0`), so code that
    prints or matches lines is unchanged, and it keeps its parts, which an error document gives
    scripts as `{"place", "field", "reason"}` instead of a line to parse.
    """

    place: str | None
    field: str | None
    reason: str

    def __new__(cls, place: str | None, field: str | None, reason: str) -> Problem:
        self = super().__new__(
            cls, ": ".join(part for part in (place, field, reason) if part is not None)
        )
        self.place, self.field, self.reason = place, field, reason
        return self

    def at(self, place: str) -> Problem:
        """The same problem, found at `place` (a field problem of the event read there)."""
        return Problem(place, self.field, self.reason)

    @classmethod
    def of(cls, problem: str, place: str | None = None) -> Problem:
        """`problem` placed at `place`: a Problem keeps its field; plain text is the reason."""
        if isinstance(problem, Problem):
            return problem.at(place) if place is not None else problem
        return cls(place, None, problem)

    def to_dict(self) -> dict[str, str | None]:
        return {"place": self.place, "field": self.field, "reason": self.reason}

    def __reduce__(self):  # pickles as itself, not as a bare str
        return (Problem, (self.place, self.field, self.reason))


class WfbusError(Exception):
    """Base of every error wfbus reports to the user instead of a traceback."""

    exit_status: ExitStatus = ExitStatus.USAGE
    # a traceback (with --verbose) helps where the cause lies below wfbus (a driver, the network);
    # a user's own mistake is fully said by its message, and a traceback there only buries it
    traceback_helps: bool = True

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(WfbusError):
    """A bad flag combination or an unknown broker name."""

    exit_status = ExitStatus.USAGE
    traceback_helps = False


class ConfigError(WfbusError):
    """The config file is missing, unreadable, or does not follow the schema.

    With `problems` (each a Problem: the file, the key's path, the reason) the message is their
    lines, one per problem, and an error document lists them for scripts."""

    exit_status = ExitStatus.CONFIG
    traceback_helps = False

    def __init__(
        self,
        message: str | None = None,
        *,
        hint: str | None = None,
        problems: Sequence[Problem] = (),
    ) -> None:
        self.problems = list(problems)
        super().__init__(message if message is not None else "\n".join(self.problems), hint=hint)


class InputError(WfbusError):
    """One or more input events are invalid; nothing was sent.

    Carries every problem found (already capped by the reader) so the user fixes them in one go.
    """

    exit_status = ExitStatus.INVALID_INPUT
    traceback_helps = False
    listed = True  # the CLI prints each problem above the summary line

    def __init__(
        self,
        problems: Sequence[str],
        *,
        more: int = 0,
        hint: str | None = None,
        consequence: str = "nothing was sent",
    ) -> None:
        self.problems = [Problem.of(problem) for problem in problems]
        self.more = more
        count = len(self.problems) + more
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} {noun} in the input events; {consequence}",
            hint=hint
            or "fix the events listed above and run the command again "
            "(`wfbus validate` checks them without contacting a broker)",
        )


class EmptyInput(InputError):
    """Every problem is an input without a single event: say "empty", not "1 problem ... 1 event read"."""

    listed = False  # the summary names every empty source; listing them again repeats it

    def __init__(self, places: Sequence[str], *, consequence: str = "nothing was sent") -> None:
        super().__init__(
            [Problem(place, None, "no events: the input is empty") for place in places],
            consequence=consequence,
        )
        names = ", ".join(places)
        verb = "is" if len(places) == 1 else "are"
        self.message = f"no events: {names} {verb} empty; {consequence}"
        self.hint = (
            "give a file with at least one event (an object, an array, or one event per line)"
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
    traceback_helps = False


class Interrupted(WfbusError):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) that the command had nothing to account for: it came
    while reading or validating, before anything was sent. Exit 128+signal, as for a stop mid-send."""

    traceback_helps = False

    def __init__(self, signum: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.signum = signum
        self.exit_status = 128 + signum  # type: ignore[assignment]  # 128+N: not one of the fixed codes


class IncompleteRead(WfbusError):
    """Messages are in the queue that the broker would not hand out (SQS FIFO group locking), so what
    was read is not all there is: said, with exit 1, never reported as complete."""

    exit_status = ExitStatus.DELIVERY_FAILED

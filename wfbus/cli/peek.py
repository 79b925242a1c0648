"""`wfbus peek`: look at messages without removing them."""

from __future__ import annotations

from itertools import islice

import typer

from .completion import broker_names

TEXT_PAGE = 1000  # rows of one text table: a larger peek is shown page by page

# Far above any queue worth peeking, far below what a broker's API can hold (SQLite's 64-bit
# integers, SQS and Kafka counts): a larger number is a typo, said as a usage error, not a crash.
MAX_LIMIT = 1_000_000_000


def register(app: typer.Typer) -> None:
    app.command(
        "peek", help="Show messages of a queue or its dead-letter queue and leave them in place."
    )(peek_command)


def peek_command(
    ctx: typer.Context,
    broker: str | None = typer.Option(
        None, "--broker", "-b", autocompletion=broker_names, help="Broker name from the config."
    ),
    dead_letter: bool = typer.Option(
        False, "--dead-letter", "-d", help="Peek the dead-letter queue."
    ),
    queue: bool = typer.Option(False, "--queue", help="Peek the main queue (the default)."),
    limit: int = typer.Option(
        10,
        "--limit",
        "-n",
        min=1,
        max=MAX_LIMIT,
        help=f"How many messages to show (1 to {MAX_LIMIT:,}; --all for every one).",
    ),
    all_messages: bool = typer.Option(
        False, "--all", help="Every message (for a backup with --output jsonl)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Peek even where the broker counts it as a receive (SQS)."
    ),
) -> int:
    from ..errors import ExitStatus, UsageError
    from ..peek import peek

    if dead_letter and queue:
        raise UsageError("--dead-letter and --queue exclude each other")
    state = ctx.obj
    out = state.out
    skipped = 0

    def documents(items):
        nonlocal skipped
        for item in items:
            if item.document is None:
                skipped += 1
            else:
                yield item.document

    with state.config.open(broker) as source:
        result = peek(
            source, dead_letter=dead_letter, limit=None if all_messages else limit, force=force
        )
        if out.mode == "json":
            out.json_stream(documents(result.items))
        elif out.mode == "jsonl":
            out.jsonl(documents(result.items))
        else:
            _text(out, result)
    if skipped and out.mode != "text":
        # a backup that silently lacks messages is worse than none: say it, and exit 1 (incomplete)
        out.error(
            f"{skipped} message(s) are not workflow events and were left out of the {out.mode} output, "
            "which is therefore not a complete backup"
        )
        out.note(
            "  hint: they stay in the queue; `wfbus peek` without --output shows them (body and headers)"
        )
        return ExitStatus.DELIVERY_FAILED
    return 0


COLUMNS = ["#", "event id", "topic", "urn", "attempt", "body"]
SHORTEN = (
    "event id",
    "topic",
    "urn",
    "body",
)  # cut with an ellipsis on a narrow terminal, not wrapped


def _text(out, result) -> None:
    """One table when the messages fit a page (as always); past that, a table per page of TEXT_PAGE
    rows, each aligned on its own, and the count at the end: memory stays flat and rows start at once."""
    rows = (
        (i, item.event_id, item.topic, item.urn, item.attempt, _short(item.body))
        for i, item in enumerate(result.items, 1)
    )
    page = list(islice(rows, TEXT_PAGE))
    following = list(islice(rows, TEXT_PAGE))
    if not following:
        out.table(
            COLUMNS,
            page,
            title=f"{result.queue}: {len(page)} message(s) shown, left in place",
            shorten=SHORTEN,
        )
        return
    out.line(
        f"{result.queue}: more than {TEXT_PAGE:,} messages, shown in pages of {TEXT_PAGE:,} (left in place)"
    )
    shown = 0
    while page:
        out.table(COLUMNS, page, shorten=SHORTEN)
        shown += len(page)
        page, following = following, list(islice(rows, TEXT_PAGE))
        if page:
            out.line()
    out.line(f"{result.queue}: {shown} message(s) shown, left in place")


def _short(body: str, width: int = 80) -> str:
    return body if len(body) <= width else body[: width - 3] + "..."

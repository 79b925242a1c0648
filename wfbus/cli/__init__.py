"""The `wfbus` command line: global options, the commands, the one place errors become exit codes.

Command modules only parse options, call the core and render; anything that goes wrong below
them is a WfbusError carrying its exit status, turned into a message here (httpie's approach).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO

import typer

from ..errors import ExitStatus, InputError, Problem, WfbusError
from . import brokers_cmd, depth, emit, peek, purge, replay, schema, serve, validate
from .global_options import (
    CONFIG_HELP,
    NO_COLOR_HELP,
    OUTPUT_HELP,
    VERBOSE_HELP,
    add_to_subcommands,
    check_output,
    requested_output,
)
from .state import State
from .streams import GuardedStream, guarded

app = typer.Typer(
    name="wfbus",
    help="Publish and replay workflow events ({topic, urn, payload, attempt}) through SQS, Kafka, "
    "RabbitMQ and an embedded local broker.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    suggest_commands=False,  # click (8.2+) suggests a close command itself: once is enough
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer alone costs ~180 ms of imports
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"wfbus {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: str | None = typer.Option(None, "--config", "-c", metavar="PATH", help=CONFIG_HELP),
    output: str = typer.Option(
        "text", "--output", "-o", metavar="text|json|jsonl", help=OUTPUT_HELP
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    no_color: bool = typer.Option(False, "--no-color", help=NO_COLOR_HELP),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Before the command; each subcommand takes the same options after it (global_options.py)."""
    state: State = ctx.obj
    check_output(output)
    state.config_path = config
    state.output_mode = output  # type: ignore[assignment]  # checked just above
    state.verbose = verbose
    state.no_color = no_color


for module in (emit, validate, replay, depth, peek, purge, brokers_cmd, schema, serve):
    module.register(app)


def run(argv: Sequence[str] | None = None, *, stdin: IO[bytes] | None = None) -> int:
    """Run wfbus and return its exit code.

    stdout and stderr are guarded while the command runs: a reader that left or a full disk is
    settled after the command, by `_settle`, and never changes the command's own outcome.
    """
    with guarded() as (stdout, _stderr):
        state = State(stdin=stdin)
        status = int(_run(argv, state))
        stdout.flush()
        return _settle(status, stdout, state)


def _run(argv: Sequence[str] | None, state: State) -> int:
    """Run one command; every exception is mapped here and nowhere else."""
    from .. import interrupts, redact

    redact.reset()
    click_errors = _click_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = add_to_subcommands(typer.main.get_command(app))
        with interrupts.handling():  # SIGTERM and SIGHUP stop a command the way Ctrl-C does
            result = command.main(args=args, prog_name="wfbus", standalone_mode=False, obj=state)
        return int(result or 0)
    except typer.Exit as exc:
        return exc.exit_code
    except click_errors.ClickException as exc:  # usage errors, including "no command given"
        exc.show()
        _usage_document(state, exc, requested_output(args))
        return ExitStatus.USAGE
    except KeyboardInterrupt as exc:
        state.out.error("interrupted")
        return interrupts.exit_code(exc)
    except typer.Abort:
        state.out.error("interrupted")
        return ExitStatus.INTERRUPTED
    except WfbusError as exc:
        _report(state, exc)
        return exc.exit_status
    except (
        Exception
    ) as exc:  # a bug: say so plainly, traceback only on request (redacted like everything else)
        if state.verbose:
            import traceback

            state.out.note("".join(traceback.format_exception(exc)).rstrip())
        state.out.error(
            f"internal error: {type(exc).__name__}: {exc} (run again with --verbose for the "
            "traceback and report it)"
        )
        return ExitStatus.INTERNAL


def _settle(status: int, stdout: GuardedStream, state: State) -> int:
    """The exit status once the output is accounted for (the rules are in errors.py's docstring).

    A reader that left changes nothing.  Output lost otherwise is said in one line, with the status
    the command earned, and turns a 0 into 74; a non-zero status says more and is kept.
    """
    if not stdout.failed:
        return status
    state.out.error(
        f"{stdout.describe()}; the output is incomplete (the command itself ended with exit status "
        f"{status})"
    )
    return status or ExitStatus.OUTPUT_FAILED


def _click_exceptions():
    """Typer >= 0.20 vendors click as typer._click; older ones use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _usage_document(state: State, exc, requested: str | None) -> None:
    """A usage error the parser found is a document on stdout under --output json, like any error
    (its text is on stderr already); -o may come after the word the parser stopped at."""
    mode = requested or state.output_mode
    if mode == "text":
        return
    command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "wfbus"
    message = exc.format_message()
    param = getattr(
        exc, "param", None
    )  # a bad or missing value: the option (or argument) is its place
    place = None
    if param is not None:
        place = max(param.opts, key=len) if param.opts else param.human_readable_name
    problems = [Problem(place, None, message).to_dict()] if place else []
    document = {
        "error": {
            "exit_code": int(ExitStatus.USAGE),
            "message": message,
            "hint": f"see `{command} --help`",
            "problems": problems,
        }
    }
    state.out.json(document, diagnostic=True, one_line=mode == "jsonl")


def _report(state: State, exc: WfbusError) -> None:
    out = state.out
    if state.verbose and exc.traceback_helps:
        import traceback

        out.note("".join(traceback.format_exception(exc)).rstrip())
    if isinstance(exc, InputError) and exc.listed:
        for problem in exc.problems:
            out.err_line(problem)
        if exc.more:
            out.err_line(f"... and {exc.more} more")
    out.error(str(exc))
    if state.output_mode != "text":
        # problems as {"place", "field", "reason"} (every error document has the list, often empty)
        problems = [Problem.of(problem).to_dict() for problem in getattr(exc, "problems", ())]
        document = {
            "error": {
                "exit_code": int(exc.exit_status),
                "message": exc.message,
                "hint": exc.hint,
                "problems": problems,
            }
        }
        if isinstance(exc, InputError):
            document["error"]["more_problems"] = exc.more
        out.json(document, diagnostic=True)


def main() -> None:
    """The process: a stop signal that lands outside the command (while it starts, or once its
    report is written) is remembered rather than killing the process mid-exit, and ends it with
    128+signal once everything is written; during the command, `interrupts.handling()` stops it."""
    from .. import interrupts

    late = interrupts.note_for_the_process()
    status = run()
    sys.exit(128 + late[0] if late else status)

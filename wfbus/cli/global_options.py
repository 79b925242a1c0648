"""The global options (--config, --output, --verbose, --no-color), before or after the command.

Click gives every subcommand its own parameters, so these options are also added to each
subcommand, as click options whose callbacks write into the run's State (the last one given wins).
`wfbus peek -ojsonl` then parses like `wfbus -o jsonl peek` with click's own parser (short options
glued to their value, `--output=json`), `wfbus peek -o` says that -o needs a value, and each
subcommand's --help lists them.  No argv is rewritten.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..errors import Interrupted, UsageError
from .render import OUTPUT_MODES
from .state import State

CONFIG_HELP = (
    "Config file (default: $WFBUS_CONFIG, ./wfbus.yaml, $XDG_CONFIG_HOME/wfbus/config.yaml)."
)
OUTPUT_HELP = "text for people; json / jsonl for scripts."
VERBOSE_HELP = "Show tracebacks and driver details on errors."
NO_COLOR_HELP = "No colour on a terminal (as NO_COLOR=1 does)."

LINE_COMMANDS = ("peek", "depth")  # the commands with a line form (depth: with --watch)


def check_output(value: str) -> None:
    if value not in OUTPUT_MODES:
        raise UsageError(f"--output {value!r}: use one of {', '.join(OUTPUT_MODES)}")


def _state(ctx: click.Context) -> State | None:
    """The run's State; None while the shell completes a word (no State is passed then)."""
    return ctx.find_object(State)


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    state = _state(ctx)
    if value is not None and state is not None:
        state.config_path = value


def _set_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    state = _state(ctx)
    if value is not None and state is not None:
        check_output(value)
        state.output_mode = value  # type: ignore[assignment]  # checked just above


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    state = _state(ctx)
    if value and state is not None:
        state.verbose = True


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    state = _state(ctx)
    if value and state is not None:
        state.no_color = True


def subcommand_options() -> list[click.Option]:
    """The global options as a subcommand's own (values go to the State, not to the function)."""
    return [
        click.Option(
            ["--config", "-c"],
            metavar="PATH",
            default=None,
            expose_value=False,
            callback=_set_config,
            help=f"{CONFIG_HELP} [global]",
        ),
        click.Option(
            ["--output", "-o"],
            metavar="text|json|jsonl",
            default=None,
            expose_value=False,
            callback=_set_output,
            help=f"{OUTPUT_HELP} [global]",
        ),
        click.Option(
            ["--verbose", "-v"],
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_set_verbose,
            help=f"{VERBOSE_HELP} [global]",
        ),
        click.Option(
            ["--no-color"],
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_set_no_color,
            help=f"{NO_COLOR_HELP} [global]",
        ),
    ]


def add_to_subcommands(group: click.Command) -> click.Command:
    """Give each subcommand the global options, and check the output mode once all are parsed."""
    assert isinstance(group, click.Group)  # the wfbus app: a group of commands
    for command in group.commands.values():
        command.params.extend(subcommand_options())
        if command.callback is not None:
            command.callback = _checked(command.callback)
    return group


def _checked(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        state = _state(ctx)
        if (
            state is not None
            and state.output_mode == "jsonl"
            and ctx.info_name not in LINE_COMMANDS
        ):
            raise UsageError(
                f"--output jsonl: `{ctx.info_name}` prints one document, not lines",
                hint="use --output json (jsonl is for `peek` and `depth --watch`)",
            )
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as stop:
            # one the command did not account for (emit and replay report theirs themselves): Typer
            # would turn it into a silent exit 130 whatever the signal was
            raise _interrupted(stop, ctx.info_name or "wfbus") from None

    return run


def _interrupted(stop: KeyboardInterrupt, command: str) -> Interrupted:
    from .. import interrupts

    signum = interrupts.signal_of(stop)
    return Interrupted(signum, f"stopped by {interrupts.signal_name(signum)}")


def requested_output(args: Sequence[str]) -> str | None:
    """The last valid --output/-o value on a command line the parser refused (it may have stopped
    before reaching it): a usage error under `-o json` is still said as a JSON document."""
    found = None
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        value = None
        if arg in ("-o", "--output"):
            value = args[index + 1] if index + 1 < len(args) else None
            index += 1
        elif arg.startswith("--output="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and not arg.startswith("--"):
            value = arg[2:].removeprefix("=")
        if value in OUTPUT_MODES:
            found = value
        index += 1
    return found

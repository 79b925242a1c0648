"""Broker registry: built-in types by a static alias table, plugins from the `wfbus.brokers` entry points.

The built-in types are also registered in pyproject.toml exactly like a third-party package would
register its own, so a plugin is a first-class broker (simonw/llm's approach).  Resolving a built-in
name does not scan the installed distributions, though: that scan (importlib.metadata) costs tens of
milliseconds at every start, so it runs only for a type the table does not know (kombu's
`TRANSPORT_ALIASES` plus its entry-point fallback).  Loading a type imports only its broker module,
never its driver.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Broker

ENTRY_POINT_GROUP = "wfbus.brokers"

BUILTIN_TYPES: dict[str, str] = {
    "local": "wfbus.brokers.local:LocalBroker",
    "sqs": "wfbus.brokers.sqs:SqsBroker",
    "kafka": "wfbus.brokers.kafka:KafkaBroker",
    "rabbitmq": "wfbus.brokers.rabbitmq:RabbitMqBroker",
}
"""Must equal the built-in entries of pyproject.toml's entry-point group (tests/test_startup.py checks)."""


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_types() -> list[str]:
    return sorted({*BUILTIN_TYPES, *_entry_points()})


def _load(value: str) -> Any:
    module, _, attribute = value.partition(":")
    return getattr(import_module(module), attribute)


def check_type(type_name: str, *, where: str = "type") -> None:
    """A ConfigError with a suggestion when no broker type has this name; imports no broker module."""
    if type_name in BUILTIN_TYPES or type_name in _entry_points():
        return
    known = available_types()
    close = difflib.get_close_matches(type_name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known types: {', '.join(known) or 'none'}"
    raise ConfigError(
        f"{where}: unknown broker type {type_name!r}",
        hint=f"{hint} (a plugin adds a type through the {ENTRY_POINT_GROUP!r} entry-point group)",
    )


def broker_class(type_name: str, *, where: str = "type") -> type[Broker]:
    """The Broker class registered for `type_name`; a ConfigError with a suggestion if none."""
    from .base import Broker

    check_type(type_name, where=where)
    builtin = BUILTIN_TYPES.get(type_name)
    if builtin is not None:
        cls, value = _load(builtin), builtin
    else:
        found = _entry_points()[type_name]
        cls, value = found.load(), found.value
    if not (isinstance(cls, type) and issubclass(cls, Broker)):
        raise ConfigError(
            f"{where}: entry point {value!r} for type {type_name!r} is not a wfbus Broker"
        )
    return cls

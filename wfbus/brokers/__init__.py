"""Broker registry: broker types come from the `wfbus.brokers` entry-point group.

The built-in types are registered in pyproject.toml exactly like a third-party package would
register its own, so a plugin is a first-class broker (simonw/llm's approach).  Loading an entry
point imports only the broker module, never its driver.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from ..errors import ConfigError
from .base import Broker

ENTRY_POINT_GROUP = "wfbus.brokers"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_types() -> list[str]:
    return sorted(_entry_points())


def broker_class(type_name: str, *, where: str = "type") -> type[Broker]:
    """The Broker class registered for `type_name`; a ConfigError with a suggestion if none."""
    found = _entry_points().get(type_name)
    if found is None:
        known = available_types()
        close = difflib.get_close_matches(type_name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known types: {', '.join(known) or 'none'}"
        raise ConfigError(
            f"{where}: unknown broker type {type_name!r}",
            hint=f"{hint} (a plugin adds a type through the {ENTRY_POINT_GROUP!r} entry-point group)",
        )
    cls = found.load()
    if not (isinstance(cls, type) and issubclass(cls, Broker)):
        raise ConfigError(f"{where}: entry point {found.value!r} for type {type_name!r} is not a wfbus Broker")
    return cls

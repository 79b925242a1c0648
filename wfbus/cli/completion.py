"""Shell completion of broker names (Typer's --install-completion handles the shells themselves)."""

from __future__ import annotations

import os


def broker_names(incomplete: str) -> list[str]:
    """The configured broker names starting with what was typed; nothing (never an error) when the
    config cannot be read: a completion must not print or fail. The config is found the usual way
    (`$WFBUS_CONFIG`, ./wfbus.yaml, ...); a --config on the same line is not seen by the shell's hook."""
    try:
        from ..config import load

        names = list(load(os.environ.get("WFBUS_CONFIG") or None).raw_brokers)
    except Exception:  # noqa: BLE001 - a broken config completes nothing
        return []
    return [name for name in names if name.startswith(incomplete)]

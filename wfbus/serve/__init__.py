"""`wfbus serve`: the HTTP trigger of the seed's event bus (`POST /events/trigger`),
with confirmed publishing.

Nothing here is imported by other commands: the server stack (starlette, uvicorn,
prometheus-client) is an extra (`pip install 'wfbus[serve]'`), loaded only by `wfbus serve`.
"""

from __future__ import annotations

from ..errors import UsageError

SERVER_PACKAGES = ("starlette", "uvicorn", "prometheus_client")
INSTALL_HINT = "pip install 'wfbus[serve]'"


def require_server_packages() -> None:
    """Say how to get the server stack when it is missing (exit 2), before anything starts."""
    import importlib.util

    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"wfbus serve needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed",
            hint=f"install the server extra: {INSTALL_HINT}",
        )

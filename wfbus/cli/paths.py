"""Checks on files a command will write, made before anything is sent.

An output file that cannot be created (`--failed-out nodir/f.jsonl`, `--failed-out some-folder`) is
the user's mistake, so it is a usage error (exit 2) with a hint, found at once: discovering it after
the events went out would leave the undelivered ones with nowhere to go.  Nothing is created here
(`--failed-out` is only written when something failed).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError


def check_output_path(path: Path | str | None, option: str = "--failed-out") -> None:
    """Raise UsageError unless `path` names a file that can be created or overwritten."""
    if path is None:
        return
    path = Path(path)
    shown = f"{option} {path}"
    if path.is_dir():
        raise UsageError(
            f"{shown}: is a folder",
            hint=f"name a file in it, e.g. {option} {path / 'failed.jsonl'}",
        )
    folder = path.parent
    if not os.path.lexists(folder):
        raise UsageError(
            f"{shown}: folder {folder} does not exist",
            hint=f"create it first (mkdir -p {folder}) or name a file in an existing folder",
        )
    if not folder.is_dir():
        raise UsageError(
            f"{shown}: {folder} is not a folder", hint="name a file in an existing folder"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(
            f"{shown}: the file is not writable", hint="choose another file, or fix its permissions"
        )
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{shown}: cannot create a file in {folder} (permission denied)",
            hint="choose a folder you can write to",
        )

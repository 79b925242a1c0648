"""Shared test helpers: run the CLI in-process (fast) or as a real process (for imports, kills, TTYs)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from wfbus.cli import run

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def _own_local_data(monkeypatch, tmp_path_factory):
    """The default local broker keeps its data in the nearest .wfbus/ upward, else in
    $XDG_DATA_HOME/wfbus: each test gets an empty data home of its own, never the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture
def wfbus(capsys, monkeypatch, tmp_path):
    """Call wfbus in this process: `wfbus("emit", "x.json", stdin=b"...")` -> Result."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WFBUS_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("WFBUS_STATE_DIR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")

    def call(*args: str, stdin: bytes | None = None) -> Result:
        capsys.readouterr()
        code = run(list(args), stdin=io.BytesIO(stdin) if stdin is not None else None)
        captured = capsys.readouterr()
        return Result(int(code), captured.out, captured.err)

    return call


def run_process(
    *args: str, cwd: Path, env: dict | None = None, stdin: bytes | None = None, timeout: float = 60
):
    """wfbus as a separate process, as a shell script would call it."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env.pop("WFBUS_CONFIG", None) if env is None or "WFBUS_CONFIG" not in env else None
    proc = subprocess.run(
        [sys.executable, "-m", "wfbus", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def write_config(path: Path, brokers: dict, default: str | None = None) -> Path:
    doc: dict = {"brokers": brokers}
    if default:
        doc["default_broker"] = default
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path

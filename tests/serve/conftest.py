"""`wfbus serve` as a real process on a free 127.0.0.1 port, in front of a real broker from
the contract kits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from contract.kits import KITS, selected_kinds

from wfbus import brokers

TOKEN = "s3rve-t0ken-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One `wfbus serve` process; `url`, `stop()` (SIGTERM) and what it wrote."""

    def __init__(self, directory: Path, args: list[str], env: dict[str, str]) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = directory / f"serve-{self.port}.err"
        self.stdout_path = directory / f"serve-{self.port}.out"
        full_env = {
            **os.environ,
            "NO_COLOR": "1",
            "XDG_STATE_HOME": str(directory / "state"),
            **env,
        }
        full_env.pop("WFBUS_CONFIG", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wfbus",
                "-c",
                str(directory / "wfbus.yaml"),
                *args,
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            cwd=directory,
            env=full_env,
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
        )

    def wait_up(self, timeout: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wfbus serve exited {self.proc.returncode}: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"wfbus serve did not come up: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child only
            self.proc.wait()
            raise AssertionError(
                f"wfbus serve did not stop within {timeout} s: {self.stderr()}"
            ) from None


def write_config(
    directory: Path, target: dict, serve: dict | None = None, extra: dict | None = None
) -> None:
    doc = {
        "default_broker": "target",
        "brokers": {
            "target": target,
            "spare": {"type": "local", "path": str(directory / "spare.db")},
            **(extra or {}),
        },
        "serve": {"depth_brokers": ["target"], **(serve or {})},
    }
    (directory / "wfbus.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(params=selected_kinds())
def kit(request, tmp_path, tmp_path_factory, monkeypatch):
    kind = request.param
    if kind not in KITS:
        pytest.fail(
            f"WFBUS_TEST_BROKERS names {kind!r}, which has no kit (known: {', '.join(KITS)})"
        )
    kit = KITS[kind]()
    kit.install(tmp_path_factory.mktemp("site"), monkeypatch)
    kit.target = kit.settings(tmp_path)
    yield kit
    kit.cleanup()
    brokers._entry_points.cache_clear()


@pytest.fixture
def serve(tmp_path):
    """`serve(target_settings, serve={...}, env={...})` -> a running Server (stopped
    after the test)."""
    started: list[Server] = []

    def start(
        target: dict,
        serve: dict | None = None,
        env: dict | None = None,
        args: list[str] | None = None,
        extra: dict | None = None,
        wait: bool = True,
    ) -> Server:
        write_config(tmp_path, target, serve, extra)
        server = Server(tmp_path, args or [], env or {})
        started.append(server)
        if wait:
            server.wait_up()
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.stop()

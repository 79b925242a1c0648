"""The replay command's messages for people: an empty dead-letter queue is one line."""

from __future__ import annotations


def test_an_empty_dead_letter_queue_is_said_in_one_line(wfbus):
    for args in (["replay", "--dry-run"], ["replay"]):
        result = wfbus(*args)
        assert result.code == 0
        assert result.out.splitlines() == [
            "nothing to replay: the dead-letter queue of local is empty"
        ]


SIGNAL_IN_CLOSE = """
import os, signal
from wfbus.brokers import local
_close = local.LocalBroker.close
def close(self):
    if os.environ.get("WFBUS_TEST_SIGNAL_IN_CLOSE") == self.name:
        os.environ.pop("WFBUS_TEST_SIGNAL_IN_CLOSE")
        os.kill(os.getpid(), signal.SIGTERM)
    _close(self)
local.LocalBroker.close = close
"""


def test_a_stop_while_the_brokers_close_still_shows_the_whole_report(tmp_path):
    """The replay is done when the stop lands (the destination is closing): the report of what
    moved is printed whole, then wfbus exits 128+15 like emit does, instead of "stopped" alone."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    (tmp_path / "wfbus.yaml").write_text(
        yaml.safe_dump(
            {
                "brokers": {
                    "src": {"type": "local", "path": "./src.db"},
                    "dst": {"type": "local", "path": "./dst.db"},
                }
            }
        )
    )
    (tmp_path / "dlq.jsonl").write_text(
        "".join(json.dumps({"topic": "order.submit", "urn": f"u{i}"}) + "\n" for i in range(3))
    )
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SIGNAL_IN_CLOSE)
    env = {**os.environ, "NO_COLOR": "1", "WFBUS_STATE_DIR": str(tmp_path / "state")}
    env.pop("WFBUS_CONFIG", None)

    def wfbus(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "wfbus", *args],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            timeout=60,
        )

    assert wfbus("emit", "-b", "src", "-d", "dlq.jsonl").returncode == 0
    stopped = wfbus(
        "-o",
        "json",
        "replay",
        "-b",
        "src",
        "--to",
        "dst",
        "--yes",
        PYTHONPATH=str(tmp_path / "site"),
        WFBUS_TEST_SIGNAL_IN_CLOSE="dst",
    )
    assert stopped.returncode == 128 + 15, stopped.stderr.decode()
    assert json.loads(stopped.stdout)["replayed"] == 3
    moved = json.loads(wfbus("-o", "json", "peek", "-b", "dst", "--all").stdout)
    assert sorted(m["urn"] for m in moved) == ["u0", "u1", "u2"]

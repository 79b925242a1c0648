"""Start-up stays lean: a command imports only what it uses (issue 14, item 3).

Each check runs wfbus in a fresh child process with stdout and stderr on pipes (as a script calls
it) and reads the child's `sys.modules` afterwards; timings are the bench's business, not a test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config

# the server stack (uvicorn, starlette, prometheus_client) is for `wfbus serve` only
DRIVERS = (
    "boto3",
    "botocore",
    "kafka",
    "confluent_kafka",
    "pika",
    "aiokafka",
    "uvicorn",
    "starlette",
    "prometheus_client",
    "wfbus.serve",
)
OTHER_TYPES = ("wfbus.brokers.sqs", "wfbus.brokers.kafka", "wfbus.brokers.rabbitmq")

CHILD = """
import json, sys
from wfbus.cli import run
code = run(sys.argv[2:])
registry = sys.modules.get("wfbus.brokers")
scans = registry._entry_points.cache_info().misses if registry else 0
with open(sys.argv[1], "w") as handle:
    json.dump({"code": int(code), "modules": sorted(sys.modules), "scans": scans}, handle)
"""


def _modules(tmp_path: Path, *args: str, stdin: bytes | None = None) -> tuple[int, set[str]]:
    """Run wfbus in a child process (stdout a pipe); its exit code and every module it imported.

    `entry-point-scan` is added to the modules when wfbus' registry scanned the installed
    distributions (pydantic imports importlib.metadata itself to look for its own plugins; that is
    not ours to skip).
    """
    record = tmp_path / "modules.json"
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    env.pop("WFBUS_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(record), *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0 or record.exists(), proc.stderr.decode()[-2000:]
    data = json.loads(record.read_text())
    return data["code"], set(data["modules"]) | ({"entry-point-scan"} if data["scans"] else set())


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _full_config(tmp_path: Path) -> None:
    """A config naming every built-in type, as a real one does; only `local` is used below."""
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "local": {"type": "local", "path": str(tmp_path / "local.db")},
            "k": {
                "type": "kafka",
                "bootstrap_servers": ["127.0.0.1:9"],
                "topic": "t",
                "dead_letter_topic": "t.dlq",
            },
            "r": {"type": "rabbitmq", "url": "amqp://guest:${NO_SUCH_PW:-guest}@127.0.0.1:9/%2F"},
            "s": {
                "type": "sqs",
                "queue_name": "q",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:9",
            },
        },
        default="local",
    )
    os.chmod(tmp_path / "wfbus.yaml", 0o600)


def test_help_imports_no_driver_no_pydantic_no_rich_no_entry_point_scan(tmp_path):
    code, modules = _modules(tmp_path, "--help")
    assert code == 0
    heavy = _heavy(
        modules,
        DRIVERS
        + OTHER_TYPES
        + (
            "pydantic",
            "pydantic_core",
            "rich",
            "importlib.metadata",
            "entry-point-scan",
            "yaml",
            "sqlite3",
            "wfbus.brokers.local",
        ),
    )
    assert not heavy, f"`wfbus --help` imported {heavy}"


@pytest.mark.parametrize(
    "args",
    [
        ["emit", "--topic", "order.submit", "--urn", "o-1", "--payload", '{"a":1}'],
        ["validate", "-"],
        ["peek", "--all", "-o", "jsonl"],
        ["peek", "--all"],
        ["depth"],
    ],
)
def test_a_local_command_imports_no_driver_and_no_other_broker_type(tmp_path, args):
    _full_config(tmp_path)
    stdin = b'{"topic":"t","urn":"u"}\n' if args[-1] == "-" else None
    if args[0] == "depth":
        args = ["depth", "-b", "local"]
    code, modules = _modules(tmp_path, *args, stdin=stdin)
    assert code == 0, args
    heavy = _heavy(modules, DRIVERS + OTHER_TYPES + ("entry-point-scan", "rich"))
    assert not heavy, f"`wfbus {' '.join(args)}` in a pipe imported {heavy}"
    if args[0] == "validate":
        assert not _heavy(modules, ("pydantic", "yaml", "sqlite3")), (
            "validate needs neither config nor broker"
        )


def test_the_default_local_broker_needs_no_entry_point_scan(tmp_path):
    code, modules = _modules(tmp_path, "emit", "--topic", "t", "--urn", "u")
    assert code == 0
    assert not _heavy(modules, DRIVERS + OTHER_TYPES + ("entry-point-scan", "rich", "yaml"))


def test_a_plugin_type_is_still_found_through_its_entry_point(tmp_path):
    """The static table of built-ins must not hide plugins: an unknown type falls back to the scan."""
    write_config(tmp_path / "wfbus.yaml", {"x": {"type": "no-such-type"}})
    code, modules = _modules(tmp_path, "brokers")
    assert code == 4
    assert "entry-point-scan" in modules  # the scan ran, to tell a typo from a plugin


def test_the_static_table_of_built_in_types_equals_the_entry_points_in_pyproject():
    import tomllib
    from conftest import REPO

    from wfbus.brokers import BUILTIN_TYPES

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][
        "wfbus.brokers"
    ]
    assert declared == BUILTIN_TYPES

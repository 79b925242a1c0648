"""Where the local broker keeps its data (issue 15 item 16), and read-only commands create nothing.

The rule: `path:` in the config (relative to the config file) wins; else the nearest `.wfbus/`
folder from the working directory upward (like git); else `$XDG_DATA_HOME/wfbus/`
(~/.local/share/wfbus).  The file is `local.db` there.  Every process here gets empty HOME and XDG
folders of its own, so nothing of the user's (or another test's) is read or written.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import write_config


@pytest.fixture
def place(tmp_path_factory):
    """A work folder with no .wfbus/ above it, and empty HOME and XDG folders."""
    root = tmp_path_factory.mktemp("where")
    for name in ("work", "home", "data", "state", "config", "cache"):
        (root / name).mkdir()
    env = {
        "HOME": str(root / "home"),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    for name in ("WFBUS_CONFIG", "WFBUS_STATE_DIR"):
        env[name] = ""
    return root, env


def _wfbus(root: Path, env: dict, *args: str, cwd: Path | None = None, stdin: bytes | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "WFBUS_"))}
    clean.update({k: v for k, v in env.items() if v})
    clean["NO_COLOR"] = "1"
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "wfbus", *args],
        cwd=cwd or root / "work",
        env=clean,
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


EVENT = b'{"topic": "t", "urn": "u"}\n'
READ_ONLY = [
    ["depth"],
    ["depth", "-o", "json"],
    ["depth", "--max-ready", "0"],
    ["peek"],
    ["peek", "--dead-letter", "-o", "jsonl"],
    ["peek", "--all", "-o", "json"],
    ["validate", "-"],
    ["brokers"],
    ["brokers", "-o", "json"],
    ["schema"],
    ["replay", "--dry-run"],
    ["replay", "--dry-run", "-o", "json"],
    ["replay", "--native", "--dry-run"],
    ["purge", "--dry-run"],
    ["replay", "--yes"],  # an empty dead-letter queue: nothing moved, so no journal either
    ["purge", "--yes"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_create_no_file_or_folder(place, args):
    root, env = place
    before = _tree(root)
    code, out, err = _wfbus(root, env, *args, stdin=EVENT)
    assert code in (0, 2), (
        code,
        err,
    )  # 2: --native on a broker without a native move, said as usage
    assert _tree(root) == before, (args, _tree(root) - before, err)


def test_read_only_commands_with_a_config_create_nothing(place):
    root, env = place
    write_config(
        root / "work" / "wfbus.yaml",
        {"a": {"type": "local"}, "b": {"type": "local", "path": "d/b.db"}},
        default="a",
    )
    before = _tree(root)
    for args in (
        ["depth"],
        ["peek", "-b", "b"],
        ["replay", "-b", "b", "--to", "a", "--dry-run"],
        ["brokers"],
    ):
        code, _, err = _wfbus(root, env, *args)
        assert code == 0, (args, err)
    assert _tree(root) == before, _tree(root) - before


def test_without_a_wfbus_folder_the_data_goes_to_xdg_data_home_and_follows_the_user(place):
    root, env = place
    code, out, err = _wfbus(root, env, "emit", "--topic", "t", "--urn", "u")
    db = root / "data" / "wfbus" / "local.db"
    assert code == 0 and f"{db}#local" in out, out + err
    assert _count(db) == 1
    assert not (root / "work" / ".wfbus").exists()
    elsewhere = root / "home"  # another folder: the same data
    code, out, _ = _wfbus(root, env, "-o", "json", "depth", cwd=elsewhere)
    assert json.loads(out)["queues"][0]["ready"] == 1
    code, out, _ = _wfbus(root, env, "brokers", "-o", "json")
    assert json.loads(out)["brokers"][0]["target"] == str(db)
    code, out, _ = _wfbus(root, env, "brokers")
    assert str(db) in out


def test_xdg_data_home_unset_means_the_local_share_folder_of_home(place):
    root, env = place
    env = {**env, "XDG_DATA_HOME": ""}
    code, out, err = _wfbus(root, env, "emit", "--topic", "t", "--urn", "u")
    db = root / "home" / ".local" / "share" / "wfbus" / "local.db"
    assert code == 0 and str(db) in out and _count(db) == 1, out + err


def test_the_nearest_wfbus_folder_upward_is_used_like_git(place):
    root, env = place
    project = root / "work" / "project"
    deep = project / "src" / "deeper"
    deep.mkdir(parents=True)
    (project / ".wfbus").mkdir()
    (root / "work" / ".wfbus").mkdir()  # further up: not the nearest
    code, out, err = _wfbus(root, env, "emit", "--topic", "t", "--urn", "u", cwd=deep)
    db = project / ".wfbus" / "local.db"
    assert code == 0 and str(db) in out, out + err
    code, out, err = _wfbus(root, env, "emit", "--topic", "t", "--urn", "v", cwd=project)
    assert _count(db) == 2
    assert not list((root / "data").iterdir()) and not list((root / "work" / ".wfbus").iterdir())
    code, out, _ = _wfbus(root, env, "brokers", cwd=deep / "..")
    assert str(db) in out


def test_a_path_setting_in_the_config_wins(place):
    root, env = place
    (root / "work" / ".wfbus").mkdir()
    config = write_config(
        root / "config" / "mine.yaml", {"l": {"type": "local", "path": "data/l.db"}}
    )
    code, out, err = _wfbus(
        root, env, "--config", str(config), "emit", "--topic", "t", "--urn", "u"
    )
    db = root / "config" / "data" / "l.db"
    assert code == 0 and str(db) in out and _count(db) == 1, out + err
    code, out, err = _wfbus(root, env, "--config", str(config), "brokers", "-o", "json")
    assert json.loads(out)["brokers"][0]["target"] == str(db), out + err  # in full, not as written
    assert not list((root / "work" / ".wfbus").iterdir()) and not list((root / "data").iterdir())


def test_a_damaged_database_is_not_blamed_on_permissions(place):
    root, env = place
    (root / "work" / ".wfbus").mkdir()
    (root / "work" / ".wfbus" / "local.db").write_bytes(b"this is not a database" * 100)
    code, out, err = _wfbus(root, env, "depth")
    assert code == 5 and "not a wfbus local database" in out + err, out + err
    assert "writable" not in err

"""Tables on a terminal (issue 15 item 5): on 80 columns, ids and bodies are shortened with an
ellipsis to keep each message on one line, instead of wrapping over 2-5 lines; in a pipe the
table has no trailing spaces.  The terminal is a real pseudo-terminal of 80 columns."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import re
import struct
import subprocess
import sys
import termios

from conftest import run_process, write_jsonl

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # bold headers: styles are not text


def _on_terminal(
    args: list[str], cwd, columns: int = 80, colour: bool = False, status: int = 0
) -> str:
    """wfbus with stdout and stderr on a pseudo-terminal of `columns` columns; what it printed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns), "TERM": "xterm"}
    if colour:
        env.pop("NO_COLOR")
    env.pop("WFBUS_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == status
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return text if colour else ANSI.sub("", text)


def _events(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    print("seed", seed)
    return [
        {
            "topic": f"order.{rng.choice(['submit', 'approve', 'ship'])}",
            "urn": f"order-{rng.randrange(10**6)}-" + "x" * rng.randrange(0, 60),
            "payload": {"note": "y" * rng.randrange(0, 300), "n": i},
            "attempt": rng.randrange(4),
        }
        for i in range(count)
    ]


def test_peek_on_80_columns_keeps_each_message_on_one_line(tmp_path):
    seed = random.randrange(10**6)
    events = _events(seed, 7)
    write_jsonl(tmp_path / "e.jsonl", events)
    assert run_process("emit", "e.jsonl", cwd=tmp_path).code == 0
    text = _on_terminal(["peek"], tmp_path)
    lines = [line for line in text.split("\n") if line.strip()]
    assert all(len(line) <= 80 for line in lines), text
    rows = [line for line in lines if line.lstrip()[:1].isdigit()]
    assert len(rows) == len(events), (
        text
    )  # one line per message: nothing wrapped onto a second line
    assert all(f"order.{name}" in text for name in {e["topic"].split(".")[1] for e in events}), text
    assert "…" in text, text  # long ids and bodies are shortened, visibly


def test_a_wide_terminal_shows_ids_whole(tmp_path):
    events = _events(7, 2)
    write_jsonl(tmp_path / "e.jsonl", events)
    assert run_process("emit", "e.jsonl", cwd=tmp_path).code == 0
    ids = [
        json.loads(line)["urn"]
        for line in run_process("peek", "-o", "jsonl", cwd=tmp_path).out.splitlines()
    ]
    text = _on_terminal(["peek"], tmp_path, columns=400)
    assert all(urn in text for urn in ids), text


def test_tables_in_a_pipe_have_no_trailing_spaces(tmp_path):
    write_jsonl(tmp_path / "e.jsonl", _events(3, 5))
    assert run_process("emit", "e.jsonl", cwd=tmp_path).code == 0
    for args in (["peek"], ["depth"], ["brokers"], ["replay", "--dry-run"]):
        result = run_process(*args, cwd=tmp_path)
        assert result.out and not any(line != line.rstrip() for line in result.out.splitlines()), (
            args,
            result.out,
        )


def test_no_color_before_or_after_the_command_turns_colour_off_on_a_terminal(tmp_path):
    args = ["depth", "-b", "nosuch"]  # an error: said in red on a terminal
    assert "\x1b[31m" in _on_terminal(args, tmp_path, colour=True, status=2)
    for where in (["--no-color", *args], [*args, "--no-color"]):
        text = _on_terminal(where, tmp_path, colour=True, status=2)
        assert "unknown broker" in text and "\x1b[31m" not in text, text

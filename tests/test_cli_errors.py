"""User mistakes and unwritable streams end with their documented exit code, never 70 (internal error).

Pipes and /dev/full only behave as a shell sees them in a real process, so most tests here run wfbus
as a subprocess (test_process.py style) on the local broker, and count what reached the queue.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_process, write_config, write_jsonl

EX_IOERR = 74


def _depth(cwd: Path) -> dict[str, int]:
    result = run_process("-o", "json", "depth", cwd=cwd)
    assert result.code == 0, result.err
    return {q["role"]: q["ready"] for q in result.json()["queues"]}


def _events(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "topic": "order.submit",
            "urn": f"u{i}",
            "payload": {"pad": "x" * rng.randint(20, 300), "i": i},
        }
        for i in range(count)
    ]


def _wfbus(*args: str) -> list[str]:
    return [sys.executable, "-m", "wfbus", *args]


def _env() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WFBUS_CONFIG", None)
    return env


def _one_line_error(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.count("error:") == 1, err


# -- --failed-out that cannot be created: a usage error before anything is sent -------------------


@pytest.mark.parametrize("where", ["missing-folder", "missing-nested", "a-folder", "under-a-file"])
def test_failed_out_that_cannot_be_written_is_a_usage_error_and_nothing_is_sent(tmp_path, where):
    write_jsonl(tmp_path / "e.jsonl", _events(30, seed=1))
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    target = {
        "missing-folder": "nodir/f.jsonl",
        "missing-nested": "a/b/c/f.jsonl",
        "a-folder": "adir",
        "under-a-file": "afile/f.jsonl",
    }[where]
    result = run_process("emit", "e.jsonl", "--failed-out", target, cwd=tmp_path)
    assert result.code == 2, result.err
    _one_line_error(result.err)
    assert "--failed-out" in result.err and "hint:" in result.err
    assert _depth(tmp_path) == {"main": 0, "dead-letter": 0}  # checked before anything was sent
    assert (tmp_path / "afile").read_text() == "x" and not list((tmp_path / "adir").iterdir())


def test_failed_out_that_cannot_be_written_is_refused_in_a_dry_run_too(tmp_path):
    result = run_process(
        "emit", "--dry-run", "--topic", "t", "--urn", "u", "--failed-out", "nodir/f", cwd=tmp_path
    )
    assert result.code == 2 and "nodir" in result.err


def test_failed_out_in_an_existing_folder_is_accepted(tmp_path):
    (tmp_path / "out").mkdir()
    result = run_process(
        "emit", "--topic", "t", "--urn", "u", "--failed-out", "out/f.jsonl", cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert _depth(tmp_path)["main"] == 1


# -- numbers too large for any broker --------------------------------------------------------------


@pytest.mark.parametrize("value", ["100000000000000000000", str(2**63), "0", "-3"])
def test_peek_limit_out_of_range_is_a_usage_error(wfbus, value):
    assert wfbus("emit", "--topic", "t", "--urn", "u").code == 0
    result = wfbus("peek", "-n", value)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert "--limit" in result.err


def test_peek_limit_at_the_top_of_the_range_works(wfbus):
    assert wfbus("emit", "--topic", "t", "--urn", "u").code == 0
    result = wfbus("-o", "json", "peek", "-n", "1000000000")
    assert result.code == 0 and [e["urn"] for e in result.json()] == ["u"]


# -- stdout that cannot be written: one line on stderr, exit 74 where the command succeeded --------


def _to_dev_full(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    with open("/dev/full", "w") as full:
        return subprocess.run(
            _wfbus(*args),
            cwd=cwd,
            env=_env(),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )


@pytest.mark.parametrize(
    "args",
    [
        ["depth"],
        ["-o", "json", "depth"],
        ["peek", "-o", "jsonl"],
        ["peek"],
        ["-o", "json", "peek", "--all"],
        ["validate", "e.jsonl"],
        ["schema"],
        ["brokers"],
    ],
)
def test_a_full_stdout_is_one_clear_error_and_exit_74(tmp_path, args):
    write_jsonl(tmp_path / "e.jsonl", _events(50, seed=2))
    assert run_process("emit", "e.jsonl", cwd=tmp_path).code == 0
    proc = _to_dev_full(args, tmp_path)
    assert proc.returncode == EX_IOERR, proc.stderr
    _one_line_error(proc.stderr)
    assert "stdout" in proc.stderr and "No space left on device" in proc.stderr
    assert _depth(tmp_path)["main"] == 50  # peek left everything in place


def test_an_emit_with_a_full_stdout_sends_everything_and_says_so(tmp_path):
    write_jsonl(tmp_path / "e.jsonl", _events(1500, seed=3))  # two local batches
    proc = _to_dev_full(["emit", "e.jsonl"], tmp_path)
    assert proc.returncode == EX_IOERR, proc.stderr
    _one_line_error(proc.stderr)
    assert "exit status 0" in proc.stderr  # the command's own outcome is stated
    assert _depth(tmp_path)["main"] == 1500


def test_a_failed_command_with_a_full_stdout_keeps_its_own_exit_code(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"topic": "t"}\n')
    assert _to_dev_full(["-o", "json", "emit", "bad.jsonl"], tmp_path).returncode == 3
    assert (
        run_process("emit", "--dead-letter", "--topic", "t", "--urn", "u", cwd=tmp_path).code == 0
    )
    proc = _to_dev_full(["-o", "json", "depth", "--max-dead", "0"], tmp_path)
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" not in proc.stderr


# -- a closed pipe changes no outcome --------------------------------------------------------------


def _with_closed_stdout(
    args: list[str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess:
    """stdout is a pipe whose reader is already gone: the first write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            _wfbus(*args),
            cwd=cwd,
            env=_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            input=stdin,
            timeout=60,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["peek", "-n", "20"],
        ["peek", "-o", "jsonl", "--all"],
        ["depth"],
        ["-o", "json", "depth"],
        ["schema"],
        ["validate", "e.jsonl"],
    ],
)
def test_a_closed_pipe_is_not_a_failure_of_a_reading_command(tmp_path, args):
    write_jsonl(tmp_path / "e.jsonl", _events(40, seed=4))
    assert run_process("emit", "e.jsonl", cwd=tmp_path).code == 0
    proc = _with_closed_stdout(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert _depth(tmp_path)["main"] == 40


def test_peek_into_head_exits_0_quietly(tmp_path):
    """A real `wfbus peek --all -o jsonl | head -1`: far more output than a pipe buffer holds."""
    events = _events(3000, seed=5)
    write_jsonl(tmp_path / "e.jsonl", events)
    assert run_process("emit", "e.jsonl", cwd=tmp_path).code == 0
    peek = subprocess.Popen(
        _wfbus("peek", "--all", "-o", "jsonl"),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.run(["head", "-1"], stdin=peek.stdout, capture_output=True, timeout=60)
    peek.stdout.close()
    err = peek.stderr.read()
    assert peek.wait(timeout=60) == 0, err
    assert err == b""
    assert json.loads(head.stdout) == {**events[0], "attempt": 0}
    assert _depth(tmp_path)["main"] == 3000


@pytest.mark.parametrize("mode", [[], ["-o", "json"]])
def test_a_successful_emit_with_a_closed_stdout_is_still_a_success(tmp_path, mode):
    """Exit 1 here would tell a script to resend events that all arrived."""
    write_jsonl(tmp_path / "e.jsonl", _events(1200, seed=6))
    proc = _with_closed_stdout([*mode, "emit", "e.jsonl"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _depth(tmp_path)["main"] == 1200


def test_failed_commands_with_a_closed_stdout_keep_their_own_exit_code(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"topic": "t"}\n')
    assert _with_closed_stdout(["-o", "json", "emit", "bad.jsonl"], tmp_path).returncode == 3
    assert _with_closed_stdout(["-o", "json", "emit", "nope.jsonl"], tmp_path).returncode == 2
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "down": {
                "type": "sqs",
                "queue_url": "http://127.0.0.1:9/000000000000/q",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:9",
            },
            "local": {"type": "local"},
        },
        default="local",
    )
    env_down = ["-o", "json", "emit", "-b", "down", "--topic", "t", "--urn", "u"]
    proc = _with_closed_stdout(env_down, tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert (
        run_process("emit", "--dead-letter", "--topic", "t", "--urn", "u", cwd=tmp_path).code == 0
    )
    assert (
        _with_closed_stdout(
            ["-o", "json", "depth", "-b", "local", "--max-dead", "0"], tmp_path
        ).returncode
        == 6
    )


# -- --verbose on a user's mistake, empty inputs ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-v", "emit"],
        ["-v", "emit", "-b", "nope", "--topic", "t", "--urn", "u"],
        ["emit", "-v", "nope.json"],
        ["-v", "validate", "bad.jsonl"],
    ],
)
def test_verbose_shows_no_traceback_for_a_users_mistake(wfbus, tmp_path, args):
    (tmp_path / "bad.jsonl").write_text('{"topic": "t"}\n')
    result = wfbus(*args)
    assert result.code in (2, 3), result.err
    assert "Traceback" not in result.err and "error:" in result.err


@pytest.mark.parametrize("command", ["validate", "emit"])
@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json"])
def test_an_empty_input_reads_empty(wfbus, tmp_path, command, content, name):
    (tmp_path / name).write_bytes(content)
    result = wfbus(command, name)
    assert result.code == 3, result.err
    assert "empty" in result.err
    assert "1 problem" not in result.err and "event(s) read" not in result.err
    assert result.err.count(name) == 1, result.err
    assert wfbus("-o", "json", "depth").json()["queues"][0]["ready"] == 0


def test_empty_stdin_reads_empty(wfbus):
    result = wfbus("validate", "-", stdin=b"")
    assert result.code == 3 and "<stdin>" in result.err and "empty" in result.err
    assert "1 problem" not in result.err


def test_an_empty_file_among_valid_ones_counts_only_real_events(wfbus, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", _events(7, seed=7))
    (tmp_path / "b.jsonl").write_text("")
    result = wfbus("validate", "a.jsonl", "b.jsonl")
    assert result.code == 3
    assert "b.jsonl" in result.err and "empty" in result.err
    assert "8 event(s)" not in result.err


def test_json_error_document_for_an_empty_input_lists_it(wfbus, tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    result = wfbus("-o", "json", "validate", "e.jsonl")
    assert result.code == 3
    error = result.json()["error"]
    assert error["exit_code"] == 3 and "empty" in error["message"] and error["problems"]

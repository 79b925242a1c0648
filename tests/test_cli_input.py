"""Input handling from the user's side: sources, places in error messages, exit codes, nothing sent."""

import json

from conftest import REPO, write_jsonl

SAMPLES = REPO / "sample_events"


def test_invalid_file_exits_3_names_file_line_and_field_and_sends_nothing(wfbus):
    result = wfbus("emit", str(REPO / "sample_events_invalid" / "invalid-events.jsonl"))
    assert result.code == 3
    assert "invalid-events.jsonl:2: atempt: unknown key (did you mean attempt?)" in result.err
    assert "invalid-events.jsonl:4: attempt: must be an integer ≥ 0, got -1" in result.err
    assert "Traceback" not in result.err
    depth = wfbus("depth", "--output", "json").json()
    assert [q["ready"] for q in depth["queues"]] == [0, 0]


def test_one_bad_event_among_many_blocks_the_whole_batch(wfbus, tmp_path):
    events = [{"topic": "t", "urn": f"u{i}"} for i in range(50)] + [{"topic": "t", "urn": True}]
    result = wfbus("emit", str(write_jsonl(tmp_path / "e.jsonl", events)))
    assert result.code == 3
    assert "e.jsonl:51: urn:" in result.err
    assert wfbus("depth", "-o", "json").json()["queues"][0]["ready"] == 0


def test_the_list_of_problems_is_capped_and_says_how_many_more(wfbus, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"topic": "t"} for _ in range(30)])
    result = wfbus("validate", str(path))
    assert result.code == 3
    assert result.err.count("urn: required") == 20
    assert "... and 10 more" in result.err


def test_json_array_elements_are_named_by_index(wfbus, tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps([{"topic": "t", "urn": "u"}, {"topic": "t", "urn": "u", "attempt": "x"}])
    )
    result = wfbus("validate", "a.json")
    assert result.code == 3 and "a.json[1]: attempt:" in result.err


def test_malformed_json_names_the_line(wfbus, tmp_path):
    (tmp_path / "a.json").write_text('{\n  "topic": "t",\n  "urn": "u",,\n}')
    result = wfbus("validate", "a.json")
    assert result.code == 3 and "a.json:3: invalid JSON" in result.err


def test_duplicate_keys_nan_and_bom_are_input_errors(wfbus, tmp_path):
    (tmp_path / "d.jsonl").write_bytes(
        b'{"topic":"t","urn":"a","urn":"b"}\n{"topic":"t","urn":"u","payload":NaN}\n'
    )
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"topic":"t","urn":"u"}')
    result = wfbus("validate", "d.jsonl", "bom.json")
    assert result.code == 3
    assert "d.jsonl:1: duplicate key 'urn'" in result.err
    assert "d.jsonl:2: NaN is not valid JSON" in result.err
    assert "bom.json: starts with a UTF-8 byte order mark" in result.err


def test_a_directory_is_read_recursively_in_sorted_order(wfbus, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"topic": "t", "urn": "b"}])
    write_jsonl(tmp_path / "in" / "sub" / "c.ndjson", [{"topic": "t", "urn": "c"}])
    (tmp_path / "in" / "a.json").write_text('{"topic": "t", "urn": "a"}')
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    assert wfbus("emit", "in").code == 0
    urns = [e["urn"] for e in json.loads(wfbus("peek", "--limit", "10", "-o", "json").out)]
    assert urns == ["a", "b", "c"]


def test_stdin_accepts_an_object_an_array_or_json_lines(wfbus):
    assert wfbus("emit", "-", stdin=b'{\n "topic": "t",\n "urn": "one"\n}').code == 0
    assert (
        wfbus(
            "emit", "-", stdin=b'[{"topic": "t", "urn": "two"}, {"topic": "t", "urn": "three"}]'
        ).code
        == 0
    )
    assert (
        wfbus(
            "emit", "-", stdin=b'{"topic": "t", "urn": "four"}\n{"topic": "t", "urn": "five"}\n'
        ).code
        == 0
    )
    urns = [e["urn"] for e in json.loads(wfbus("peek", "--limit", "10", "-o", "json").out)]
    assert urns == ["one", "two", "three", "four", "five"]


def test_inline_event_with_payload_from_a_file(wfbus, tmp_path):
    (tmp_path / "p.json").write_text('{"total": 150.0}')
    result = wfbus(
        "emit",
        "--topic",
        "order.submit",
        "--urn",
        "order-1",
        "--payload",
        "@p.json",
        "--attempt",
        "1",
    )
    assert result.code == 0, result.err
    assert json.loads(wfbus("peek", "-o", "json").out) == [
        {"topic": "order.submit", "urn": "order-1", "payload": {"total": 150.0}, "attempt": 1}
    ]


def test_inline_payload_must_be_json(wfbus):
    result = wfbus("emit", "--topic", "t", "--urn", "u", "--payload", "not json")
    assert result.code == 3 and "--payload: invalid JSON" in result.err


def test_inline_flags_need_topic_and_urn(wfbus):
    assert wfbus("emit", "--topic", "t").code == 2
    assert wfbus("emit", "--payload", "{}").code == 2
    assert wfbus("emit").code == 2


def test_missing_source_file_is_a_usage_error(wfbus):
    result = wfbus("emit", "nope.json")
    assert result.code == 2 and "nope.json: no such file or directory" in result.err


def test_dry_run_validates_shows_and_sends_nothing(wfbus):
    result = wfbus("emit", "--dry-run", str(SAMPLES / "order-lifecycle.jsonl"))
    assert result.code == 0
    assert "dry run: 5 valid event(s) would be sent" in result.out
    assert wfbus("depth", "-o", "json").json()["queues"][0]["ready"] == 0


def test_emit_json_output_is_one_document_for_scripts(wfbus):
    result = wfbus("--output", "json", "emit", str(SAMPLES / "billing-batch.json"))
    doc = result.json()
    assert (doc["published"], doc["total"], doc["failed"], doc["exit_code"]) == (3, 3, [], 0)
    assert result.err == ""


def test_input_errors_in_json_mode_give_a_json_error_document(wfbus):
    result = wfbus(
        "-o", "json", "validate", str(REPO / "sample_events_invalid" / "invalid-events.jsonl")
    )
    assert result.code == 3
    assert result.json()["error"]["exit_code"] == 3
    assert len(result.json()["error"]["problems"]) == 5


def test_dead_letter_flag_seeds_the_dead_letter_queue(wfbus):
    assert wfbus("emit", "--dead-letter", str(SAMPLES / "order-submit.json")).code == 0
    rows = {q["role"]: q["ready"] for q in wfbus("depth", "-o", "json").json()["queues"]}
    assert rows == {"main": 0, "dead-letter": 1}


def test_schema_command_prints_the_event_schema(wfbus):
    schema = wfbus("schema").json()
    assert schema["additionalProperties"] is False and "urn" in schema["properties"]


def test_global_options_are_accepted_after_the_command_too(wfbus):
    assert wfbus("schema", "--output", "json").code == 0
    assert wfbus("depth", "-o", "json").json()["queues"]


def test_unknown_option_is_a_usage_error_without_traceback(wfbus):
    result = wfbus("emit", "--bogus")
    assert result.code == 2 and "Traceback" not in result.err


def test_depth_thresholds_exit_6_naming_each_breached_queue(wfbus):
    assert wfbus("emit", "--topic", "t", "--urn", "a").code == 0
    assert wfbus("emit", "--dead-letter", "--topic", "t", "--urn", "b").code == 0
    assert wfbus("depth", "--max-ready", "1", "--max-dead", "1").code == 0
    result = wfbus("depth", "--max-ready", "0", "--max-dead", "0")
    assert result.code == 6
    assert (
        "local/local: ready 1 > 0" in result.err
        and "local/local.dlq: dead-lettered 1 > 0" in result.err
    )
    assert wfbus("-o", "json", "depth", "--max-dead", "0").json()["breaches"] == [
        "local/local.dlq: dead-lettered 1 > 0"
    ]


# --- inline events (issue 15 item 13) ---


def test_an_integer_urn_can_be_given_inline_and_keeps_its_json_type(wfbus):
    assert wfbus("emit", "--topic", "t", "--urn-int", "42").code == 0
    assert wfbus("emit", "--topic", "t", "--urn", "42").code == 0
    assert wfbus("emit", "--topic", "t", "--urn-int", "-7", "--attempt", "2").code == 0
    assert json.loads(wfbus("peek", "--limit", "10", "-o", "json").out) == [
        {"topic": "t", "urn": 42, "attempt": 0},
        {"topic": "t", "urn": "42", "attempt": 0},
        {"topic": "t", "urn": -7, "attempt": 2},
    ]


def test_urn_and_urn_int_together_or_a_non_integer_are_usage_errors(wfbus):
    assert wfbus("emit", "--topic", "t", "--urn", "a", "--urn-int", "1").code == 2
    assert wfbus("emit", "--topic", "t", "--urn-int", "1.5").code == 2
    result = wfbus("emit", "--topic", "t", "--urn-int", str(2**60))
    assert result.code == 3 and "--topic/--urn: urn:" in result.err, result.err
    assert wfbus("depth", "-o", "json").json()["queues"][0]["ready"] == 0


def test_an_empty_inline_topic_or_urn_is_an_input_error_naming_the_field(wfbus):
    result = wfbus("emit", "--topic", "", "--urn", "u")
    assert result.code == 3, result.err
    assert "--topic/--urn: topic:" in result.err and "empty" in result.err
    result = wfbus("emit", "--topic", "t", "--urn", "")
    assert result.code == 3 and "--topic/--urn: urn:" in result.err, result.err
    result = wfbus("emit", "--topic", " \t", "--urn", "u")
    assert result.code == 3 and "--topic/--urn: topic:" in result.err, result.err
    assert wfbus("depth", "-o", "json").json()["queues"][0]["ready"] == 0


def test_inline_payload_from_stdin(wfbus):
    result = wfbus(
        "emit", "--topic", "t", "--urn", "u", "--payload", "@-", stdin=b'{"n": [1, "two"]}\n'
    )
    assert result.code == 0, result.err
    assert json.loads(wfbus("peek", "-o", "json").out) == [
        {"topic": "t", "urn": "u", "payload": {"n": [1, "two"]}, "attempt": 0}
    ]


def test_payload_from_stdin_and_events_from_stdin_is_a_usage_error(wfbus):
    result = wfbus(
        "emit",
        "-",
        "--topic",
        "t",
        "--urn",
        "u",
        "--payload",
        "@-",
        stdin=b'{"topic":"t","urn":"x"}',
    )
    assert result.code == 2 and "stdin" in result.err
    assert wfbus("depth", "-o", "json").json()["queues"][0]["ready"] == 0


def test_emit_help_documents_urn_int_and_payload_from_stdin():
    from conftest import run_process

    help_text = run_process("emit", "--help", cwd=REPO, env={"COLUMNS": "200"}).out
    assert "--urn-int" in help_text and "@-" in help_text


# --- what a person at a terminal sees (issue 15 item 12) ---


def _run_on_a_terminal(
    args: list[str],
    cwd,
    typed: bytes | None = None,
    *,
    stderr_tty: bool = False,
    timeout: float = 60,
) -> tuple[int, str]:
    """wfbus with stdin (and optionally stderr) on a pseudo-terminal; returns (exit code, stderr text)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfbus", *args],
        cwd=cwd,
        env=env,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave if stderr_tty else subprocess.PIPE,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    if typed is not None:
        while b"stdin" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(
                    master, 4096
                )  # the terminal echoes what is typed, and stderr if on the pty
            elif not stderr_tty:
                break  # the message goes to a pipe: read it at the end
        os.write(master, typed + b"\n\x04")
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    code = proc.wait(timeout=5)
    err = proc.stderr.read().decode() if proc.stderr else ""
    os.close(master)
    return code, err + seen.decode(errors="replace")


def test_reading_stdin_on_a_terminal_says_so_and_how_to_end(tmp_path):
    code, err = _run_on_a_terminal(["emit", "-"], tmp_path, typed=b'{"topic": "t", "urn": "typed"}')
    assert code == 0, err
    assert "reading events from stdin (Ctrl-D to end)" in err
    from conftest import run_process

    assert run_process("-o", "json", "depth", cwd=tmp_path).json()["queues"][0]["ready"] == 1
    piped = run_process("emit", "-", cwd=tmp_path, stdin=b'{"topic": "t", "urn": "piped"}')
    assert piped.code == 0 and "Ctrl-D" not in piped.err, piped.err
    code, err = _run_on_a_terminal(
        ["emit", "/dev/stdin"], tmp_path, typed=b'{"topic": "t", "urn": "dev"}'
    )
    assert code == 0 and "reading events from /dev/stdin (Ctrl-D to end)" in err, err
    assert run_process("-o", "json", "depth", cwd=tmp_path).json()["queues"][0]["ready"] == 3


def test_the_validation_pass_is_labelled_validating_on_a_terminal(tmp_path):
    import re

    write_jsonl(
        tmp_path / "many.jsonl",
        [{"topic": "t", "urn": f"u{i}", "payload": {"i": i}} for i in range(3000)],
    )
    code, err = _run_on_a_terminal(["emit", "many.jsonl"], tmp_path, stderr_tty=True)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)
    assert code == 0, text
    assert "validating" in text, text
    assert not re.search(r"emitting[^\n0-9]*0/\?", text), text

"""Global options before or after the command, usage errors as documents, structured problems.

Issue 15 items 2 and 4: `wfbus peek -ojsonl` and `wfbus -o json depth` mean the same as
`wfbus --output jsonl peek` and `wfbus depth -o json`; a usage error found by the parser under
`-o json` is an error document on stdout like every other error; `problems` are objects.
"""

from __future__ import annotations

import json

import pytest
from conftest import write_config, write_jsonl

COMMANDS = ("emit", "validate", "replay", "depth", "peek", "purge", "brokers", "schema")


def _seed(wfbus, count: int = 3) -> None:
    for index in range(count):
        assert wfbus("emit", "--topic", "t", "--urn", f"u-{index}").code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["peek", "-ojsonl"],
        ["peek", "-o", "jsonl"],
        ["peek", "--output", "jsonl"],
        ["peek", "--output=jsonl"],
        ["-ojsonl", "peek"],
        ["--output=jsonl", "peek", "-n", "10"],
    ],
)
def test_output_before_or_after_the_command_is_the_same(wfbus, args):
    _seed(wfbus)
    result = wfbus(*args)
    assert result.code == 0, result.err
    assert [json.loads(line)["urn"] for line in result.out.splitlines()] == ["u-0", "u-1", "u-2"]


def test_depth_json_before_and_after_the_command_prints_the_same_document(wfbus):
    _seed(wfbus, 2)
    before, after = wfbus("-o", "json", "depth"), wfbus("depth", "-o", "json")
    assert before.code == after.code == 0, (before.err, after.err)
    assert before.json() == after.json() and before.json()["queues"][0]["ready"] == 2


def test_config_and_verbose_after_the_command(wfbus, tmp_path):
    other = write_config(tmp_path / "other.yaml", {"elsewhere": {"type": "local", "path": "e.db"}})
    for args in (
        ["brokers", "--config", str(other)],
        ["brokers", "-c", str(other)],
        ["--config", str(other), "brokers"],
        ["brokers", f"--config={other}", "-v"],
    ):
        result = wfbus(*args, "-o", "json")
        assert result.code == 0, (args, result.err)
        assert [b["name"] for b in result.json()["brokers"]] == ["elsewhere"], args


def test_the_option_after_the_command_wins(wfbus):
    result = wfbus("-o", "text", "depth", "-o", "json")
    assert result.code == 0 and "queues" in result.json()


@pytest.mark.parametrize("option", ["-o", "--output", "-c", "--config"])
def test_an_option_without_its_value_says_so(wfbus, option):
    result = wfbus("peek", option)
    assert result.code == 2
    assert "requires an argument" in result.err and option in result.err, result.err
    assert "Missing command" not in result.err


def test_a_bad_output_value_after_the_command_is_a_usage_error(wfbus):
    result = wfbus("depth", "-o", "xml")
    assert result.code == 2 and "--output 'xml'" in result.err, result.err


def test_jsonl_after_a_command_without_a_line_form_is_a_usage_error(wfbus):
    result = wfbus("emit", "--topic", "t", "--urn", "u", "-o", "jsonl")
    assert result.code == 2 and "use --output json" in result.err, result.err
    assert wfbus("-o", "json", "depth").json()["queues"][0]["ready"] == 0  # nothing was sent


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_lists_the_global_options(wfbus, command):
    result = wfbus(command, "--help")
    assert result.code == 0
    for option in ("--config", "--output", "--verbose", "--no-color", "-o", "-c", "-v"):
        assert option in result.out, (command, option)


@pytest.mark.parametrize(
    "args",
    [
        ["peek", "--bogus", "-o", "json"],  # -o after the error: the parser never got to it
        ["-o", "json", "peek", "--bogus"],
        ["--output=json", "peek", "--limit", "many"],  # bad value
        ["peek", "--limit", "0", "--output", "json"],  # out of range
        ["-o", "json", "emit", "--broker"],  # missing argument
        ["-o", "json", "nosuchcommand"],
        ["-ojson", "depth", "extra-argument"],
    ],
)
def test_a_parser_error_under_json_is_an_error_document(wfbus, args):
    result = wfbus(*args)
    assert result.code == 2, result.err
    document = result.json()  # stdout holds exactly one JSON document
    error = document["error"]
    assert error["exit_code"] == 2 and error["message"], document
    assert (
        error["message"] in result.err or error["message"].split(":")[0] in result.err
    )  # text on stderr
    assert result.err.strip(), "the text stays on stderr"


def test_a_bad_value_names_its_option_as_the_place(wfbus):
    error = wfbus("peek", "--limit", "many", "-o", "json").json()["error"]
    assert error["exit_code"] == 2 and "problems" in error
    [problem] = error["problems"]
    assert (
        problem["place"] == "--limit" and problem["field"] is None and "many" in problem["reason"]
    )
    assert wfbus("-o", "json", "peek", "--bogus").json()["error"]["problems"] == []


def test_a_parser_error_in_text_mode_prints_nothing_on_stdout(wfbus):
    result = wfbus("peek", "--bogus")
    assert result.code == 2 and result.out == "" and "--bogus" in result.err


def test_problems_in_an_error_document_are_structured(wfbus, tmp_path):
    write_jsonl(
        tmp_path / "events.jsonl",
        [
            {"topic": "t", "urn": "u"},
            {"topic": "t", "urn": "u", "attempt": -1},
            {"topic": "t", "atempt": 1, "urn": "u"},
        ],
    )
    (tmp_path / "broken.json").write_text("{nope")
    text = wfbus("validate", "events.jsonl", "broken.json")
    result = wfbus("validate", "events.jsonl", "broken.json", "-o", "json")
    assert result.code == text.code == 3
    problems = result.json()["error"]["problems"]
    assert all(set(p) == {"place", "field", "reason"} for p in problems), problems
    assert {
        "place": "events.jsonl:2",
        "field": "attempt",
        "reason": "must be an integer ≥ 0, got -1",
    } in problems
    assert any(
        p["place"] == "events.jsonl:3"
        and p["field"] == "atempt"
        and p["reason"].startswith("unknown key")
        for p in problems
    ), problems
    broken = [p for p in problems if p["place"].startswith("broken.json")]
    assert broken and broken[0]["field"] is None and "JSON" in broken[0]["reason"], problems
    # text output unchanged in meaning: each problem is its place, field and reason on one line
    for p in problems:
        line = ": ".join(part for part in (p["place"], p["field"], p["reason"]) if part)
        assert line in text.err, (line, text.err)


def test_an_inline_problem_names_the_flag_as_its_place(wfbus):
    result = wfbus("emit", "--topic", "t", "--urn", "u", "--payload", "{bad", "-o", "json")
    assert result.code == 3
    [problem] = result.json()["error"]["problems"]
    assert problem["place"] == "--payload" and problem["field"] is None and problem["reason"], (
        problem
    )


def test_config_problems_are_structured_too(wfbus, tmp_path):
    write_config(tmp_path / "wfbus.yaml", {"q": {"type": "local", "queue_ur": "x", "path": 3}})
    result = wfbus("peek", "-o", "json")
    assert result.code == 4
    problems = result.json()["error"]["problems"]
    depth = wfbus("depth", "-o", "json")
    assert depth.code == 4 and depth.json()["errors"]["q"]["problems"] == problems
    assert {(p["place"], p["field"]) for p in problems} >= {("wfbus.yaml", "brokers.q.queue_ur")}, (
        problems
    )
    assert all(set(p) == {"place", "field", "reason"} for p in problems)
    assert any(p["reason"].startswith("unknown key") for p in problems)


def test_unset_variables_are_structured_problems(wfbus, tmp_path, monkeypatch):
    monkeypatch.delenv("WFBUS_TEST_UNSET_A", raising=False)
    monkeypatch.delenv("WFBUS_TEST_UNSET_B", raising=False)
    (tmp_path / "wfbus.yaml").write_text(
        "brokers:\n  q:\n    type: local\n"
        "    path: ${WFBUS_TEST_UNSET_A}\n    queue: ${WFBUS_TEST_UNSET_B}\n"
    )
    result = wfbus("peek", "-o", "json")
    assert result.code == 4
    problems = result.json()["error"]["problems"]
    assert sorted(p["field"] for p in problems) == ["brokers.q.path", "brokers.q.queue"], problems
    assert all("WFBUS_TEST_UNSET_" in p["reason"] for p in problems)


@pytest.mark.parametrize(
    "args",
    [
        ["peek", "-o", "jsonl", "-b", "nope"],  # an unknown broker
        ["peek", "-o", "jsonl", "--bogus"],  # a parser error
        ["emit", "-o", "jsonl", "x.json"],  # jsonl on a command without a line form
        ["depth", "-o", "jsonl", "-b", "nope"],
    ],
)
def test_an_error_under_jsonl_is_one_line_a_line_reader_can_parse(wfbus, args):
    """`wfbus peek --all -o jsonl > backup.jsonl` must not get a document torn over 8 lines."""
    result = wfbus(*args)
    assert result.code == 2
    lines = result.out.splitlines()
    assert len(lines) == 1, result.out
    assert json.loads(lines[0])["error"]["exit_code"] == 2


def test_d_is_short_for_dead_letter_on_emit_as_on_peek_and_purge(wfbus):
    result = wfbus("emit", "-d", "--topic", "order.submit", "--urn", "u1", "--dry-run")
    assert result.code == 0, result.err
    assert ".dlq" in result.out


def test_a_mistyped_command_gets_one_suggestion(wfbus):
    result = wfbus("depht")
    assert result.code == 2
    assert result.err.count("Did you mean 'depth'?") == 1, result.err


def test_brokers_lists_every_broker_and_says_which_one_is_broken(wfbus, tmp_path, monkeypatch):
    """`wfbus brokers` is how people debug a config: one unset ${VAR} must not hide the others."""
    monkeypatch.delenv("ORDER_QUEUE_URL", raising=False)
    (tmp_path / "wfbus.yaml").write_text(
        "brokers:\n  order:\n    type: sqs\n    queue_url: ${ORDER_QUEUE_URL}\n  other:\n    type: local\n"
    )
    result = wfbus("brokers", "-o", "json")
    assert result.code == 4, result.err
    rows = {row["name"]: row for row in result.json()["brokers"]}
    assert rows["other"]["error"] is None and rows["other"]["target"]
    assert "ORDER_QUEUE_URL" in rows["order"]["error"]["message"]
    text = wfbus("brokers")
    assert (
        text.code == 4
        and "other" in text.out
        and "order" in text.out
        and "ORDER_QUEUE_URL" in text.err
    )


def test_a_lone_broker_is_shown_as_the_default(wfbus, tmp_path):
    (tmp_path / "wfbus.yaml").write_text("brokers:\n  solo:\n    type: local\n")
    rows = wfbus("brokers", "-o", "json").json()["brokers"]
    assert rows == [dict(rows[0], default=True)]

"""Input handling from the user's side: sources, places in error messages, exit codes, nothing sent."""

import json

from conftest import REPO, write_jsonl

SAMPLES = REPO / "sample_events"


def test_invalid_file_exits_3_names_file_line_and_field_and_sends_nothing(wfbus):
    result = wfbus("emit", str(SAMPLES / "invalid-events.jsonl"))
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
    (tmp_path / "a.json").write_text(json.dumps([{"topic": "t", "urn": "u"}, {"topic": "t", "urn": "u", "attempt": "x"}]))
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
    assert wfbus("emit", "-", stdin=b'[{"topic": "t", "urn": "two"}, {"topic": "t", "urn": "three"}]').code == 0
    assert wfbus("emit", "-", stdin=b'{"topic": "t", "urn": "four"}\n{"topic": "t", "urn": "five"}\n').code == 0
    urns = [e["urn"] for e in json.loads(wfbus("peek", "--limit", "10", "-o", "json").out)]
    assert urns == ["one", "two", "three", "four", "five"]


def test_inline_event_with_payload_from_a_file(wfbus, tmp_path):
    (tmp_path / "p.json").write_text('{"total": 150.0}')
    result = wfbus("emit", "--topic", "order.submit", "--urn", "order-1", "--payload", "@p.json", "--attempt", "1")
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
    result = wfbus("-o", "json", "validate", str(SAMPLES / "invalid-events.jsonl"))
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
    assert "local/local: ready 1 > 0" in result.err and "local/local.dlq: dead-lettered 1 > 0" in result.err
    assert wfbus("-o", "json", "depth", "--max-dead", "0").json()["breaches"] == ["local/local.dlq: dead-lettered 1 > 0"]

"""An emit's progress record is keyed by the topic's real identity: a recreated topic is another destination."""

from __future__ import annotations

from conftest import write_jsonl

from brokers.test_kafka_fidelity import _recreate, kafka_config


def test_resume_into_a_recreated_topic_is_refused_instead_of_skipping_what_the_old_topic_held(
    wfbus, tmp_path
):
    settings = kafka_config(tmp_path, partitions=1)
    write_jsonl(
        tmp_path / "e.jsonl", [{"topic": "order.submit", "urn": f"u{i}"} for i in range(50)]
    )
    assert wfbus("emit", "e.jsonl").code == 0
    assert (
        wfbus("-o", "json", "emit", "--resume", "e.jsonl").json()["resume"]["already_complete"]
        is True
    )

    _recreate(
        settings["topic"]
    )  # same name, new topic id, empty: the 50 events are gone with the old one
    result = wfbus("emit", "--resume", "e.jsonl")
    assert result.code == 2 and "nothing to resume" in result.err, (
        result.err
    )  # was "all 50 already confirmed"
    assert wfbus("emit", "e.jsonl").code == 0

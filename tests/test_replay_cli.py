"""The replay command's messages for people: an empty dead-letter queue is one line."""

from __future__ import annotations


def test_an_empty_dead_letter_queue_is_said_in_one_line(wfbus):
    for args in (["replay", "--dry-run"], ["replay"]):
        result = wfbus(*args)
        assert result.code == 0
        assert result.out.splitlines() == [
            "nothing to replay: the dead-letter queue of local is empty"
        ]

"""The HTTP contract of `wfbus serve` on every broker type, with a real HTTP client
and a real server.

Every event answered 2xx is at the destination, byte for byte what `wfbus emit` sends; any invalid
event means 400 with structured problems and nothing published; limits and tokens are enforced.
"""

from __future__ import annotations

import json
import os
import random

import httpx
from contract.drain import drain_main

from serve.conftest import TOKEN
from serve.helpers import (
    emitted_bodies,
    event_id,
    first_of_each_event_id,
    generated_events,
    per_key,
)

NDJSON = {"content-type": "application/x-ndjson"}


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _lines(events: list[dict]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events).encode()


def test_valid_single_array_and_ndjson_are_confirmed_and_arrive_as_emit_sends_them(
    kit, serve, tmp_path
):
    seed = int(os.environ.get("WFBUS_TEST_SEED", random.randrange(10**6)))
    print(f"seed={seed}")
    events = generated_events(seed, 61)
    server = serve(kit.target, env={"WFBUS_SERVE_TOKEN": TOKEN})
    single, array, lines = events[:1], events[1:30], events[30:]
    with httpx.Client(base_url=server.url, headers=_auth(), timeout=30) as client:
        answers = [
            client.post("/events/trigger", content=json.dumps(single[0]).encode()),
            client.post("/events", json=array),
            client.post("/events", content=_lines(lines), headers=NDJSON),
        ]
    for answer, sent in zip(answers, (single, array, lines), strict=False):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["published"] == len(sent)
        assert [e["id"] for e in body["events"]] == [event_id(e) for e in sent]
    expected = emitted_bodies(tmp_path, events)
    if getattr(kit, "fifo", False):  # the dedup id is the event id: SQS keeps the first of a repeat
        expected = first_of_each_event_id(events, expected)
    got = drain_main(tmp_path, len(expected))
    assert sorted(got) == sorted(expected), f"seed={seed}"
    if kit.order != "none":  # each urn's events in the order they were sent, as emit keeps them
        assert per_key(got) == per_key(expected), f"seed={seed}"


def test_an_invalid_or_mixed_request_is_400_with_structured_problems_and_publishes_nothing(
    kit, serve, tmp_path
):
    server = serve(kit.target)
    good = {"topic": "order.submit", "urn": "o-1", "payload": {"n": 1}}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        mixed = client.post(
            "/events",
            json=[
                good,
                {"topic": "order.submit", "urn": "o-2", "atempt": 1},
                good,
                {"topic": "", "urn": 1.5},
            ],
        )
        lines = client.post(
            "/events",
            content=_lines([good]) + b'{"topic": "t", "urn": "u", "topic": "v"}\n' + b"not json\n",
            headers=NDJSON,
        )
        empty = client.post("/events", content=b"")
        sentinel = client.post("/events", json={"topic": "order.sentinel", "urn": "s"})
    assert mixed.status_code == 400, mixed.text
    problems = mixed.json()["error"]["problems"]
    assert {
        "place": "body[1]",
        "field": "atempt",
        "reason": "unknown key (did you mean attempt?)",
    } in problems
    assert {(p["place"], p["field"]) for p in problems} >= {
        ("body[3]", "topic"),
        ("body[3]", "urn"),
    }
    assert all(set(p) == {"place", "field", "reason"} for p in problems)
    assert lines.status_code == 400
    assert [p["place"] for p in lines.json()["error"]["problems"]] == ["body:2", "body:3"]
    assert empty.status_code == 400
    assert sentinel.status_code == 200
    got = drain_main(tmp_path, 1)
    assert [json.loads(b)["topic"] for b in got] == [
        "order.sentinel"
    ]  # nothing of the refused requests


def test_oversize_bodies_and_too_many_events_are_413_and_publish_nothing(kit, serve, tmp_path):
    server = serve(kit.target, serve={"max_body_bytes": 4096, "max_events": 5})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        big = client.post("/events", json={"topic": "order.big", "urn": "b", "payload": "x" * 5000})
        many = client.post("/events", json=[{"topic": "order.many", "urn": i} for i in range(6)])
        chunked = client.post(
            "/events",
            content=iter([b'{"topic":"order.big","urn":"c","payload":"', b"y" * 5000, b'"}']),
        )  # no Content-Length: counted as it arrives
        fits = client.post("/events", json=[{"topic": "order.fits", "urn": i} for i in range(5)])
    assert (big.status_code, many.status_code, chunked.status_code, fits.status_code) == (
        413,
        413,
        413,
        200,
    )
    got = drain_main(tmp_path, 5)
    assert sorted(json.loads(b)["topic"] for b in got) == ["order.fits"] * 5


def test_no_token_or_a_wrong_token_is_401_and_publishes_nothing(kit, serve, tmp_path):
    server = serve(
        kit.target, serve={"tokens": ["another-token-1"]}, env={"WFBUS_SERVE_TOKEN": TOKEN}
    )
    event = {"topic": "order.auth", "urn": "a"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        none = client.post("/events", json=event)
        wrong = client.post("/events", json=event, headers=_auth(TOKEN + "x"))
        basic = client.post("/events", json=event, headers={"authorization": f"Basic {TOKEN}"})
        metrics = client.get("/metrics")
        right = client.post("/events", json=event, headers=_auth())
        other = client.post("/events", json={**event, "urn": "b"}, headers=_auth("another-token-1"))
    assert [r.status_code for r in (none, wrong, basic, metrics)] == [401] * 4
    assert none.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in wrong.text
    assert (right.status_code, other.status_code) == (200, 200)
    got = drain_main(tmp_path, 2)
    assert sorted(json.loads(b)["urn"] for b in got) == ["a", "b"]

"""Event data is never altered on its way, even when it contains what wfbus treats as a secret.

Redaction is for diagnostics only. A payload holding the RabbitMQ password ("guest"), a SASL
password, an AWS key id or a URL with credentials is data: peek, dry-run samples, the replay plan
and a backup emitted again must carry it byte for byte.
"""

from __future__ import annotations

import json

import pytest
from conftest import write_config

SASL_PASSWORD = "Sasl-Secret-in-payload-41"
AWS_KEY_ID = "AKIAWFBUSPAYLOAD0042"
AWS_SECRET = "Aws-Secret-in-payload-17"
URL_PASSWORD = "guest"  # the RabbitMQ kit's URL password, and the default one of every RabbitMQ

SECRET_EVENTS = [
    {
        "topic": "order.submit",
        "urn": "order-1",
        "payload": {"customerType": URL_PASSWORD},
        "attempt": 0,
    },
    {
        "topic": "order.submit",
        "urn": "order-2",
        "payload": {"note": f"pw {SASL_PASSWORD} and {AWS_KEY_ID}"},
        "attempt": 1,
    },
    {
        "topic": "order.ship",
        "urn": 7,
        "payload": {
            "callback": "https://svc:hunter2@example.test/hook",
            "secret": AWS_SECRET,
            "ünïcode": "größe ✓ 🚚",
        },
        "attempt": 0,
    },
    {
        "topic": "billing.charge",
        "urn": "inv-9",
        "payload": ["amqp://a:b@c", URL_PASSWORD * 3, "x" * 5000],
        "attempt": 2,
    },
]


@pytest.fixture
def secret_holding_config(target, tmp_path, monkeypatch):
    """The contract config plus brokers that register every kind of secret wfbus knows."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    config = json.loads(
        json.dumps(__import__("yaml").safe_load((tmp_path / "wfbus.yaml").read_text()))
    )
    brokers = config["brokers"]
    brokers["sasl"] = {
        "type": "kafka",
        "bootstrap_servers": ["127.0.0.1:9"],
        "topic": "t",
        "dead_letter_topic": "t.dlq",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "u",
        "sasl_password": SASL_PASSWORD,
    }
    brokers["aws"] = {
        "type": "sqs",
        "queue_name": "q",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9",
        "aws_access_key_id": AWS_KEY_ID,
        "aws_secret_access_key": AWS_SECRET,
    }
    brokers["rabbit"] = {
        "type": "rabbitmq",
        "url": f"amqp://guest:{URL_PASSWORD}@127.0.0.1:9/%2F",
        "queue": "q",
        "dead_letter_queue": "q.dlq",
    }
    write_config(tmp_path / "wfbus.yaml", brokers, default="target")
    return target


def _compact(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _by_urn(lines: list[str]) -> list[str]:
    return sorted(lines, key=lambda line: str(json.loads(line)["urn"]))


def test_a_dead_letter_backup_holds_payload_secrets_byte_for_byte_and_emits_back_unchanged(
    wfbus, secret_holding_config, tmp_path
):
    source = tmp_path / "events.jsonl"
    source.write_text("".join(_compact(e) + "\n" for e in SECRET_EVENTS), encoding="utf-8")
    seeded = wfbus("emit", "-b", "target", "--dead-letter", str(source))
    assert seeded.code == 0, seeded.err

    backup = wfbus("peek", "-b", "target", "--dead-letter", "--all", "--force", "-o", "jsonl")
    assert backup.code == 0, backup.err
    lines = backup.out.splitlines()
    assert _by_urn(lines) == _by_urn(
        [_compact(e) for e in SECRET_EVENTS]
    )  # byte for byte, secrets included

    backup_file = tmp_path / "dlq-backup.jsonl"
    backup_file.write_text(backup.out, encoding="utf-8")
    assert wfbus("emit", "-b", "target", str(backup_file)).code == 0
    main = wfbus("peek", "-b", "target", "--all", "--force", "-o", "jsonl")
    assert _by_urn(main.out.splitlines()) == _by_urn(lines)


def test_samples_and_plans_show_payload_secrets_as_they_are(wfbus, secret_holding_config, tmp_path):
    source = tmp_path / "events.jsonl"
    source.write_text("".join(_compact(e) + "\n" for e in SECRET_EVENTS), encoding="utf-8")

    dry = wfbus("emit", "-b", "target", "--dry-run", "-o", "json", str(source)).json()
    assert dry["samples"] == SECRET_EVENTS
    text = wfbus("emit", "-b", "target", "--dry-run", str(source)).out
    assert all(_compact(e) in text for e in SECRET_EVENTS)

    assert wfbus("emit", "-b", "target", "--dead-letter", str(source)).code == 0
    plan = wfbus("replay", "-b", "target", "--dry-run", "-o", "json").json()
    assert sorted(map(_compact, plan["samples"])) == sorted(map(_compact, SECRET_EVENTS))


def test_diagnostics_still_hide_every_registered_secret(wfbus, secret_holding_config):
    for name in ("sasl", "aws", "rabbit"):
        result = wfbus("-v", "depth", "-b", name, "-o", "json")
        assert result.code == 5
        for secret in (SASL_PASSWORD, AWS_KEY_ID, AWS_SECRET, f":{URL_PASSWORD}@"):
            assert secret not in result.out + result.err, (name, secret)


def test_a_backup_that_must_leave_out_foreign_messages_says_so_and_exits_1(wfbus, target, tmp_path):
    from contract.drain import inject_foreign_dead_letters

    source = tmp_path / "events.jsonl"
    source.write_text("".join(_compact(e) + "\n" for e in SECRET_EVENTS), encoding="utf-8")
    assert wfbus("emit", "-b", "target", "--dead-letter", str(source)).code == 0
    inject_foreign_dead_letters(tmp_path, [(b"not an event", "k", {"topic": "order.foreign"})])
    backup = wfbus("peek", "-b", "target", "--dead-letter", "--all", "--force", "-o", "jsonl")
    assert backup.code == 1, backup.err  # an incomplete backup is never reported as complete
    assert "1 message(s) are not workflow events" in backup.err
    assert len(backup.out.splitlines()) == len(SECRET_EVENTS)

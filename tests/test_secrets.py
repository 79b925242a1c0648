"""Secrets never appear in any output: every command, failures forced, --verbose on, all streams searched."""

from __future__ import annotations

import json
import os
import stat

import pytest
from conftest import write_config
from contract.kits import KAFKA_BOOTSTRAP, RABBITMQ_URL, SQS_ENDPOINT

RABBIT_PW = "Rabbit-S3cret-9f1c"
KAFKA_PW = "Kafka-S3cret-77ab"
AWS_SECRET = "Aws-S3cret-Key-0c9d8e"
AWS_KEY_ID = "AKIAWFBUSTESTKEY0001"
SECRETS = (RABBIT_PW, KAFKA_PW, AWS_SECRET, AWS_KEY_ID)


@pytest.fixture
def secret_config(tmp_path, monkeypatch, wfbus):
    monkeypatch.setenv("RABBIT_PASSWORD", RABBIT_PW)
    monkeypatch.setenv("KAFKA_PASSWORD", KAFKA_PW)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    rabbit_host = RABBITMQ_URL.split("@", 1)[1]
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "rabbit_badauth": {
                "type": "rabbitmq",
                "url": f"amqp://guest:${{RABBIT_PASSWORD}}@{rabbit_host}",
                "queue": "q",
                "dead_letter_queue": "q.dlq",
                "timeout_seconds": 3,
            },
            "rabbit_down": {
                "type": "rabbitmq",
                "url": "amqp://admin:${RABBIT_PASSWORD}@127.0.0.1:9/%2F",
                "queue": "q",
                "dead_letter_queue": "q.dlq",
                "timeout_seconds": 2,
            },
            "kafka_sasl": {
                "type": "kafka",
                "bootstrap_servers": [KAFKA_BOOTSTRAP],
                "topic": "t",
                "dead_letter_topic": "t.dlq",
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "wfbus",
                "sasl_password": "${KAFKA_PASSWORD}",
                "timeout_seconds": 3,
            },
            "sqs_env_keys": {
                "type": "sqs",
                "queue_name": "wfbus-no-such-queue",
                "endpoint_url": SQS_ENDPOINT,
                "region": "us-east-1",
                "timeout_seconds": 2,
            },
            "sqs_down": {
                "type": "sqs",
                "queue_name": "q",
                "endpoint_url": "http://127.0.0.1:9",
                "region": "us-east-1",
                "timeout_seconds": 1,
            },
        },
    )
    return tmp_path


# Why each broker fails: the reason its command must give (exit 5: unreachable,
# authentication, missing queue)
FAILS_BECAUSE = {
    "rabbit_badauth": "authentication failed",
    "rabbit_down": "cannot reach RabbitMQ",
    "kafka_sasl": "no Kafka broker reachable",  # a SASL handshake against a plaintext listener
    "sqs_env_keys": "queue does not exist",
    "sqs_down": "cannot reach SQS",
}

# (arguments, exit code, texts the output must contain): each command's one intended outcome
COMMANDS: list[tuple[list[str], int, list[str]]] = [
    (["brokers"], 0, [*FAILS_BECAUSE, "amqp://guest:***@"]),
    (["-o", "json", "brokers"], 0, [*FAILS_BECAUSE, "amqp://guest:***@"]),
    (["depth"], 5, [f"{broker}: " for broker in FAILS_BECAUSE] + list(FAILS_BECAUSE.values())),
    (
        ["-o", "json", "depth"],
        5,
        [f"{broker}: " for broker in FAILS_BECAUSE] + list(FAILS_BECAUSE.values()),
    ),
    (["schema"], 0, ['"title": "WorkflowEvent"']),
    *[
        ([*flags, command, "-b", broker, *extra], 5, [f"{broker}: ", reason])
        for broker, reason in FAILS_BECAUSE.items()
        for flags in ([], ["-o", "json"])
        for command, extra in (
            ("emit", ["--topic", "t", "--urn", "u"]),
            ("peek", ["--dead-letter", "--force"]),
            ("replay", ["--yes"]),
            ("replay", ["--dry-run"]),
        )
    ],
]


def test_no_command_prints_a_secret_even_when_failing_verbosely(wfbus, secret_config):
    outcomes = []
    for args, _code, texts in COMMANDS:
        result = wfbus("--verbose", *args)
        for secret in SECRETS:
            assert secret not in result.out and secret not in result.err, (args, secret)
        missing = [text for text in texts if text not in result.out + result.err]
        outcomes.append((args, result.code, missing))
        if "-o" in args and result.out:
            json.loads(result.out)  # one JSON document on stdout, also when failing
    wrong = [
        (args, code, missing)
        for (args, code, missing), (_, want, _) in zip(outcomes, COMMANDS, strict=False)
        if code != want or missing
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(COMMANDS)} commands did not fail (or succeed) as intended: {wrong}"
    )


def test_brokers_shows_where_but_not_the_password(wfbus, secret_config):
    out = wfbus("brokers").out
    assert "amqp://guest:***@" in out and "amqp://admin:***@127.0.0.1:9" in out


def test_a_config_with_secrets_in_clear_readable_by_others_gets_a_warning(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {"r": {"type": "rabbitmq", "url": "amqp://u:clear-text-pw@127.0.0.1:9/%2F"}},
    )
    os.chmod(tmp_path / "wfbus.yaml", 0o644)
    result = wfbus("brokers")
    assert "holds secrets in clear" in result.err and "chmod 600" in result.err
    assert "clear-text-pw" not in result.err + result.out
    os.chmod(tmp_path / "wfbus.yaml", stat.S_IRUSR | stat.S_IWUSR)
    assert "holds secrets in clear" not in wfbus("brokers").err


def test_turning_tls_verification_off_is_said_out_loud(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {"r": {"type": "rabbitmq", "url": "amqps://u:p@127.0.0.1:9/%2F", "verify": False}},
    )
    assert "turns off TLS certificate verification" in wfbus("brokers").err

"""Authenticated connections on the real servers: Kafka SASL/PLAIN, a RabbitMQ user with limited rights."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from conftest import write_config
from contract.kits import RABBITMQ_URL, kafka_create_topics, rabbit_channel

KAFKA_SASL = os.environ.get("WFBUS_TEST_KAFKA_SASL_BOOTSTRAP", "127.0.0.1:19094")


@pytest.fixture
def sasl_topic(tmp_path, monkeypatch, wfbus):
    topic = f"wfbus-sasl-{uuid.uuid4().hex[:8]}"
    kafka_create_topics(topic)
    base = {"type": "kafka", "bootstrap_servers": [KAFKA_SASL], "topic": topic, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN", "sasl_username": "wfbus", "timeout_seconds": 5}
    monkeypatch.setenv("KAFKA_PASSWORD", "wfbus-secret")
    write_config(tmp_path / "wfbus.yaml", {"good": {**base, "sasl_password": "${KAFKA_PASSWORD}"},
                                           "bad": {**base, "sasl_password": "not-the-password"}})
    return topic


def test_kafka_sasl_plain_with_the_right_password_publishes(wfbus, sasl_topic):
    result = wfbus("emit", "-b", "good", "--topic", "t", "--urn", "u")
    assert result.code == 0, result.err
    assert "SASL PLAIN over PLAINTEXT sends the password unencrypted" in result.err  # said, not hidden
    assert wfbus("peek", "-b", "good", "-o", "json").json() == [{"topic": "t", "urn": "u", "attempt": 0}]


def test_kafka_sasl_with_a_wrong_password_is_exit_5_promptly(wfbus, sasl_topic):
    started = time.monotonic()
    result = wfbus("emit", "-b", "bad", "--topic", "t", "--urn", "u")
    assert result.code == 5, result.err
    assert "not-the-password" not in result.err
    assert time.monotonic() - started < 30


def test_rabbitmq_user_without_write_permission_gets_exit_5_not_a_hang(wfbus, tmp_path):
    name = f"wfbus-forbidden-{uuid.uuid4().hex[:6]}"
    connection, channel = rabbit_channel()
    channel.exchange_declare(name, "topic", durable=True)
    channel.exchange_declare(f"wfbus-allowed-{name}", "topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, f"wfbus-allowed-{name}", "#")
    connection.close()
    limited = RABBITMQ_URL.replace("guest:guest", "limited:limited-secret")
    write_config(tmp_path / "wfbus.yaml", {
        "forbidden": {"type": "rabbitmq", "url": limited, "exchange": name, "timeout_seconds": 5},
        "allowed": {"type": "rabbitmq", "url": limited, "exchange": f"wfbus-allowed-{name}", "timeout_seconds": 5},
    })
    started = time.monotonic()
    result = wfbus("emit", "-b", "forbidden", "--topic", "t", "--urn", "u")
    assert result.code == 5, result.err
    assert "403" in result.err and "limited-secret" not in result.err
    assert time.monotonic() - started < 30
    assert wfbus("emit", "-b", "allowed", "--topic", "t", "--urn", "u").code == 0
    connection, channel = rabbit_channel()
    assert channel.queue_declare(name, passive=True).method.message_count == 1
    channel.queue_delete(name)
    for exchange in (name, f"wfbus-allowed-{name}"):
        channel.exchange_delete(exchange)
    connection.close()

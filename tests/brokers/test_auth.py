"""Authenticated connections on the real servers: Kafka SASL/PLAIN, RabbitMQ over TLS (the service
script makes a private CA and the node's certificate at start), a RabbitMQ user with limited rights."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from conftest import write_config
from contract.kits import RABBITMQ_URL, kafka_create_topics, rabbit_channel

KAFKA_SASL = os.environ.get("WFBUS_TEST_KAFKA_SASL_BOOTSTRAP", "127.0.0.1:19094")
KAFKA_SSL = os.environ.get("WFBUS_TEST_KAFKA_SSL_BOOTSTRAP", "127.0.0.1:19095")
KAFKA_CA = os.environ.get("WFBUS_TEST_KAFKA_CA", "")
RABBITMQ_TLS_URL = os.environ.get(
    "WFBUS_TEST_RABBITMQ_TLS_URL", "amqps://guest:guest@127.0.0.1:5674/%2F"
)
RABBITMQ_CA = os.environ.get("WFBUS_TEST_RABBITMQ_CA", "")


@pytest.fixture
def sasl_topic(tmp_path, monkeypatch, wfbus):
    topic = f"wfbus-sasl-{uuid.uuid4().hex[:8]}"
    kafka_create_topics(topic)
    base = {
        "type": "kafka",
        "bootstrap_servers": [KAFKA_SASL],
        "topic": topic,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "wfbus",
        "timeout_seconds": 5,
    }
    monkeypatch.setenv("KAFKA_PASSWORD", "wfbus-secret")
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "good": {**base, "sasl_password": "${KAFKA_PASSWORD}"},
            "bad": {**base, "sasl_password": "not-the-password"},
        },
    )
    return topic


def test_kafka_sasl_plain_with_the_right_password_publishes(wfbus, sasl_topic):
    result = wfbus("emit", "-b", "good", "--topic", "t", "--urn", "u")
    assert result.code == 0, result.err
    assert (
        "SASL PLAIN over PLAINTEXT sends the password unencrypted" in result.err
    )  # said, not hidden
    assert wfbus("peek", "-b", "good", "-o", "json").json() == [
        {"topic": "t", "urn": "u", "attempt": 0}
    ]


def test_kafka_sasl_with_a_wrong_password_is_exit_5_promptly(wfbus, sasl_topic):
    started = time.monotonic()
    result = wfbus("emit", "-b", "bad", "--topic", "t", "--urn", "u")
    assert result.code == 5, result.err
    assert "not-the-password" not in result.err
    assert time.monotonic() - started < 30


def test_kafka_over_ssl_verifies_the_broker_against_the_configured_ca(wfbus, tmp_path):
    topic = f"wfbus-ssl-{uuid.uuid4().hex[:8]}"
    kafka_create_topics(topic)
    base = {
        "type": "kafka",
        "bootstrap_servers": [KAFKA_SSL],
        "topic": topic,
        "security_protocol": "SSL",
        "timeout_seconds": 5,
    }
    write_config(
        tmp_path / "wfbus.yaml", {"trusted": {**base, "ssl_cafile": KAFKA_CA}, "untrusted": base}
    )
    result = wfbus("emit", "-b", "trusted", "--topic", "t", "--urn", "over-ssl")
    assert result.code == 0, result.err
    assert wfbus("peek", "-b", "trusted", "-o", "json").json() == [
        {"topic": "t", "urn": "over-ssl", "attempt": 0}
    ]

    started = time.monotonic()
    result = wfbus(
        "emit", "-b", "untrusted", "--topic", "t", "--urn", "refused"
    )  # the system CAs do not know ours
    assert result.code == 5, result.err
    assert "ssl_cafile" in result.err and "Traceback" not in result.err
    assert time.monotonic() - started < 30


@pytest.fixture
def tls_exchange(tmp_path):
    name = f"wfbus-tls-{uuid.uuid4().hex[:8]}"
    connection, channel = rabbit_channel()
    channel.exchange_declare(name, "topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, "#")
    connection.close()
    yield name
    connection, channel = rabbit_channel()
    channel.queue_delete(name)
    channel.exchange_delete(name)
    connection.close()


def test_rabbitmq_over_tls_verifies_the_broker_against_the_configured_ca(
    wfbus, tmp_path, tls_exchange
):
    base = {
        "type": "rabbitmq",
        "url": RABBITMQ_TLS_URL,
        "exchange": tls_exchange,
        "queue": tls_exchange,
        "timeout_seconds": 5,
    }
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "trusted": {**base, "ca_file": RABBITMQ_CA},
            "untrusted": base,
            "unverified": {**base, "verify": False},
        },
    )
    result = wfbus("emit", "-b", "trusted", "--topic", "t", "--urn", "over-tls")
    assert result.code == 0, result.err
    assert (
        "verify: false" not in result.err
    )  # a warning is about the broker in use, not the whole file

    result = wfbus(
        "emit", "-b", "untrusted", "--topic", "t", "--urn", "refused"
    )  # the system CAs do not know ours
    assert result.code == 5, result.err
    assert (
        "certificate" in result.err
        and "not trusted" in result.err
        and "hint: set ca_file" in result.err
    )

    result = wfbus("emit", "-b", "unverified", "--topic", "t", "--urn", "unverified")
    assert result.code == 0 and "verify: false turns off TLS certificate verification" in result.err
    assert [e["urn"] for e in wfbus("peek", "-b", "trusted", "--all", "-o", "json").json()] == [
        "over-tls",
        "unverified",
    ]


@pytest.mark.parametrize("url", [RABBITMQ_URL, RABBITMQ_TLS_URL], ids=["amqp", "amqps"])
def test_rabbitmq_user_without_write_permission_gets_exit_5_not_a_hang(wfbus, tmp_path, url):
    name = f"wfbus-forbidden-{uuid.uuid4().hex[:6]}"
    connection, channel = rabbit_channel()
    channel.exchange_declare(name, "topic", durable=True)
    channel.exchange_declare(f"wfbus-allowed-{name}", "topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, f"wfbus-allowed-{name}", "#")
    connection.close()
    limited = url.replace("guest:guest", "limited:limited-secret")
    tls = {"ca_file": RABBITMQ_CA} if url.startswith("amqps") else {}
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "forbidden": {
                "type": "rabbitmq",
                "url": limited,
                "exchange": name,
                "timeout_seconds": 5,
                **tls,
            },
            "allowed": {
                "type": "rabbitmq",
                "url": limited,
                "exchange": f"wfbus-allowed-{name}",
                "timeout_seconds": 5,
                **tls,
            },
        },
    )
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

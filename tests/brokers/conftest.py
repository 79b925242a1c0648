"""What the broker tests share: a fresh RabbitMQ topology named `r` in ./wfbus.yaml, and a failing consumer."""

from __future__ import annotations

import pytest
from conftest import write_config
from contract.kits import RabbitMqKit, rabbit_channel


@pytest.fixture
def rabbit(tmp_path):
    kit = RabbitMqKit()
    settings = kit.settings(tmp_path)
    write_config(tmp_path / "wfbus.yaml", {"r": settings}, "r")
    yield settings
    kit.cleanup()


def reject_all(queue: str) -> int:
    """A failing consumer: basic.nack(requeue=False) dead-letters every message, in queue order."""
    connection, channel = rabbit_channel()
    rejected = 0
    try:
        while True:
            method, _, _ = channel.basic_get(queue)
            if method is None:
                return rejected
            channel.basic_nack(method.delivery_tag, requeue=False)
            rejected += 1
    finally:
        connection.close()

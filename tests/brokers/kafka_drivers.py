"""The Kafka drivers a broker test runs with: the test kinds `kafka` (the default driver, librdkafka
when confluent-kafka is installed) and `kafka-python` that WFBUS_TEST_BROKERS selects (both when it
names neither, so a Kafka test never runs for no driver)."""

from __future__ import annotations

import pytest
from contract.kits import selected_kinds

SETTINGS = {"kafka": {}, "kafka-python": {"driver": "kafka-python"}}


def selected_drivers() -> list[str]:
    kinds = [kind for kind in selected_kinds() if kind in SETTINGS]
    return kinds or list(SETTINGS)


_current: dict = {}


def driver_settings() -> dict:
    """The `driver:` setting of the test being run (empty: the default driver)."""
    return dict(_current)


@pytest.fixture(autouse=True, params=selected_drivers())
def kafka_driver(request):
    """Import into a test module to run each of its tests with every selected driver: the settings
    the module writes include `driver_settings()`."""
    _current.clear()
    _current.update(SETTINGS[request.param])
    yield request.param
    _current.clear()

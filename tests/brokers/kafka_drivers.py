"""The Kafka drivers a broker test runs with: the test kinds `kafka` (the default driver, librdkafka when
confluent-kafka is installed) and `kafka-python` that WFBUS_TEST_BROKERS selects (both when it names
neither, so a Kafka test never runs for no driver)."""

from __future__ import annotations

from contract.kits import selected_kinds

SETTINGS = {"kafka": {}, "kafka-python": {"driver": "kafka-python"}}


def selected_drivers() -> list[str]:
    kinds = [kind for kind in selected_kinds() if kind in SETTINGS]
    return kinds or list(SETTINGS)

from __future__ import annotations

import pytest
from conftest import write_config

from contract.kits import KITS, selected_kinds
from wfbus import brokers


@pytest.fixture(params=selected_kinds())
def target(request, tmp_path, tmp_path_factory, monkeypatch, wfbus):
    """A fresh broker named `target` (plus a local broker `spare`) in ./wfbus.yaml."""
    kind = request.param
    if kind not in KITS:
        pytest.fail(
            f"WFBUS_TEST_BROKERS names {kind!r}, which has no kit (known: {', '.join(KITS)})"
        )
    kit = KITS[kind]()
    kit.install(tmp_path_factory.mktemp("site"), monkeypatch)
    settings = kit.settings(tmp_path)
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "target": settings,
            "spare": {"type": "local", "path": str(tmp_path / "spare.db")},
        },
        default="target",
    )
    yield kit
    kit.cleanup()
    # a plugin installed for this test is gone with its sys.path entry
    brokers._entry_points.cache_clear()


# Suites that exercise what both Kafka drivers share run once for Kafka: the replay reader (peek,
# replay, its commits and journal) is kafka-python's for either driver, so killing replays at random
# moments through the default driver (kind `kafka`) covers it; the publishing paths that differ by
# driver (emit stops and kills, faults, pipelining, fidelity) run for both kinds.
SHARED_BY_BOTH_KAFKA_DRIVERS = ("test_kill.py",)


def pytest_collection_modifyitems(config, items):
    dropped = [
        item
        for item in items
        if item.fspath.basename in SHARED_BY_BOTH_KAFKA_DRIVERS
        and "[kafka-python" in item.nodeid
        and "kafka" in selected_kinds()
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]

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

from __future__ import annotations

import pytest

from conftest import write_config
from contract.kits import KITS, selected_kinds


@pytest.fixture(params=selected_kinds())
def target(request, tmp_path, wfbus):
    """A fresh broker named `target` (plus a local broker `spare`) in ./wfbus.yaml."""
    kind = request.param
    if kind not in KITS:
        pytest.fail(f"WFBUS_TEST_BROKERS names {kind!r}, which has no kit (known: {', '.join(KITS)})")
    kit = KITS[kind]()
    settings = kit.settings(tmp_path)
    write_config(tmp_path / "wfbus.yaml", {
        "target": settings,
        "spare": {"type": "local", "path": str(tmp_path / "spare.db")},
    }, default="target")
    yield kit
    kit.cleanup()

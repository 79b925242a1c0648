"""A replay into another broker type carries what the destination can: headers as text, and the
source's message properties as `<type>-<property>` headers — said in the report, not dropped silently."""

from __future__ import annotations

import json
import sqlite3

from conftest import write_config
from contract.drain import inject_foreign_dead_letters
from contract.kits import RabbitMqKit


def test_rabbitmq_properties_travel_as_headers_into_another_broker_type(wfbus, tmp_path):
    kit = RabbitMqKit()
    settings = kit.settings(tmp_path)
    write_config(
        tmp_path / "wfbus.yaml",
        {"target": settings, "spare": {"type": "local", "path": str(tmp_path / "spare.db")}},
        default="target",
    )
    try:
        inject_foreign_dead_letters(
            tmp_path,
            [
                (f"foreign {n}".encode(), f"corr-{n}", {"topic": "order.x", "n": n})
                for n in range(3)
            ],
        )
        result = wfbus("-o", "json", "replay", "-b", "target", "--to", "spare")
        assert result.code == 0, result.err
        assert result.json()["crossed_types"] == 3
        rows = sqlite3.connect(tmp_path / "spare.db").execute(
            "SELECT body, headers FROM messages ORDER BY id"
        )
        moved = [(bytes(body), json.loads(headers)) for body, headers in rows]
        assert [body for body, _ in moved] == [f"foreign {n}".encode() for n in range(3)]
        for n, (_, headers) in enumerate(moved):
            assert headers["rabbitmq-correlation_id"] == f"corr-{n}"
            assert headers["rabbitmq-app_id"] == "other-app" and headers["rabbitmq-priority"] == "3"
            assert headers["n"] == str(n) and headers["replayed-from"]
    finally:
        kit.cleanup()

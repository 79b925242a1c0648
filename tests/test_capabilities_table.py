"""The README's broker-guarantees table is rendered from the declared Capabilities and cannot drift."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

from conftest import REPO

from wfbus.brokers import broker_class
from wfbus.brokers import capabilities_table as table
from wfbus.brokers.base import Capabilities


def test_the_readme_block_is_the_table_rendered_from_the_declarations():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert table.block_of(readme) == table.render(), (
        "README.md's capabilities table differs from the brokers' declarations: run "
        "`python -m wfbus.brokers.capabilities_table --update README.md`"
    )


def test_every_cell_is_the_declaration_of_its_row():
    """Each row's cells follow its own broker's declaration (change one, only that row changes)."""
    rows = [
        line
        for line in table.render().splitlines()
        if line.startswith("| ") and not line.startswith("| broker")
    ]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [
        label for label, _ in table.ROWS
    ]
    for (label, settings), row in zip(table.ROWS, rows, strict=False):
        declared = table.capabilities_of(settings)
        cells = [cell.strip() for cell in row.strip("| ").split(" | ")[1:]]
        expected = [declared.ordering.replace("-", " ")] + [
            "yes" if getattr(declared, field) else "no" for _, field, _ in table.COLUMNS[1:]
        ]
        assert cells == expected, label


def test_a_changed_declaration_changes_the_table(monkeypatch):
    """Nothing is hard-coded: flip every field of one type's declaration and its row flips, others stay."""
    before = table.render()
    rabbitmq = broker_class("rabbitmq")
    declared = rabbitmq.implements
    flipped = replace(
        declared,
        ordering="none" if declared.ordering != "none" else "per-queue",
        **{
            f: not getattr(declared, f)
            for f in Capabilities.__dataclass_fields__
            if f != "ordering"
        },
    )
    monkeypatch.setattr(rabbitmq, "implements", flipped)
    after = table.render()
    changed = [
        (old, new)
        for old, new in zip(before.splitlines(), after.splitlines(), strict=False)
        if old != new
    ]
    assert len(changed) == 1 and changed[0][0].startswith("| RabbitMQ |"), changed
    assert all(
        a != b
        for a, b in zip(
            changed[0][0].split(" | ")[1:], changed[0][1].split(" | ")[1:], strict=False
        )
    )


def test_the_module_prints_the_table_and_updates_a_readme(tmp_path):
    printed = subprocess.run(
        [sys.executable, "-m", "wfbus.brokers.capabilities_table"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert printed == table.render()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{table.START}\nstale\n{table.END}\n\n## Next\n")
    subprocess.run(
        [sys.executable, "-m", "wfbus.brokers.capabilities_table", "--update", str(readme)],
        check=True,
        cwd=REPO,
    )
    assert readme.read_text() == f"# x\n\n{table.START}\n{table.render()}{table.END}\n\n## Next\n"

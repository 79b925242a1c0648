"""A fifth broker type written as a third-party plugin: `spool`, a directory of one file per message.

It is not part of wfbus: it stands for a plugin author's package, installed the way pip would
install one (a site directory holding the package and a `*.dist-info/entry_points.txt` that
registers `spool` in the `wfbus.brokers` group). The contract suite (tests/contract/) runs against
it like against every built-in type, and expects of it exactly what
it declares (`SpoolBroker.implements`).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DIST = "wfbus_spool-1.0.dist-info"
ENTRY_POINTS = "[wfbus.brokers]\nspool = plugin_broker.spool:SpoolBroker\n"


def install(site: Path) -> Path:
    """Lay out `site` as an installed distribution: the package (a symlink to this directory) and its
    metadata. Put `site` on sys.path / PYTHONPATH to make `type: spool` available; returns `site`."""
    dist = site / DIST
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wfbus-spool\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (dist / "top_level.txt").write_text("plugin_broker\n")
    link = site / "plugin_broker"
    if not link.exists():
        link.symlink_to(PACKAGE_DIR, target_is_directory=True)
    return site

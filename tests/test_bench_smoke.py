"""The benchmark command at a tiny scale, so it cannot rot (it measures nothing worth reporting)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_every_benchmark_scenario_runs_and_writes_its_results(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--scale",
            "0.0005",
            "--repeat",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "latest-scale0.0005.json").read_text())
    scenarios = {row["scenario"] for row in data["rows"]}
    assert any(s.startswith("bulk emit: Kafka") for s in scenarios)
    assert any(s.startswith("replay") for s in scenarios)
    assert data["machine"]["cores"]
    assert "| scenario | tool |" in (tmp_path / "latest-scale0.0005.md").read_text()

"""Shell completion (bash, zsh, fish through Typer), with broker names from the config."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import write_config


def _complete(tmp_path, words: str, cword: int) -> list[str]:
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
        "_WFBUS_COMPLETE": "complete_bash",
    }
    env.pop("WFBUS_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "wfbus"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    return result.stdout.decode().split()


def test_commands_options_and_broker_names_complete(tmp_path):
    write_config(
        tmp_path / "wfbus.yaml",
        {"orders": {"type": "local"}, "billing": {"type": "local"}, "other": {"type": "local"}},
    )
    assert _complete(tmp_path, "wfbus re", 1) == ["replay"]
    assert _complete(tmp_path, "wfbus emit --br", 2) == ["--broker"]
    assert sorted(_complete(tmp_path, "wfbus emit --broker ", 3)) == ["billing", "orders", "other"]
    assert _complete(tmp_path, "wfbus replay --to o", 3) == ["orders", "other"]


def test_a_broken_config_completes_nothing_and_prints_no_error(tmp_path):
    (tmp_path / "wfbus.yaml").write_text("brokers: [not, a, mapping\n")
    assert _complete(tmp_path, "wfbus depth -b ", 3) == []


def test_the_completion_script_is_offered_for_the_usual_shells(tmp_path):
    for shell in ("bash", "zsh", "fish"):
        result = subprocess.run(
            [sys.executable, "-m", "wfbus", "--show-completion", shell],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0 and b"_WFBUS_COMPLETE" in result.stdout, shell

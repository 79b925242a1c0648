"""The README cannot drift: its Tour is run like a cram test, its operator's runbook is run too.

- The ```console block of "## Tour": each `$ ` line is a command, the lines after it (up to a blank
  line followed by the next `$ `, or the end of the block) are what a terminal shows, stdout and
  stderr together. The commands run in a fresh folder (a copy of sample_events/, no config file, the
  state and XDG folders inside it, NO_COLOR=1, output in a pipe), after the install command's
  `wfbus emit sample_events/order-submit.json` as the Tour's text says, and their output must equal
  the README's line for line, with the folder's path written as /tmp/readme.
- The ```bash block of "### Operator's runbook": every `wfbus ...` line runs, in order, on a local
  broker named `order` (the runbook's SQS queue) whose DLQ holds a few events, so a renamed flag or
  a changed exit code is caught.

When the tool's output changes on purpose, update the README's Tour block to what the failure shows.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SHOWN_DIR = "/tmp/readme"  # the folder the README's Tour shows

TOUR_HEADING = "## Tour"
RUNBOOK_HEADING = "### Operator's runbook"


# -- reading the README ------------------------------------------------------------------------


@dataclass
class Step:
    command: str
    expected: list[str]  # output lines as a terminal shows them
    line: int  # the README line of the command, 1-based


def section(text: str, heading: str) -> tuple[list[str], int]:
    """The lines of the section under `heading`, up to the next heading of its level or above."""
    lines = text.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    for start, line in enumerate(lines):
        if line.startswith(heading):
            break
    else:
        raise AssertionError(f"README has no section {heading!r}")
    end = len(lines)
    for i in range(start + 1, len(lines)):
        match = re.match(r"(#+) ", lines[i])
        if match and len(match.group(1)) <= level and not _in_fence(lines, start, i):
            end = i
            break
    return lines[start:end], start


def _in_fence(lines: list[str], start: int, index: int) -> bool:
    fences = sum(1 for line in lines[start:index] if line.startswith("```"))
    return fences % 2 == 1


def fenced_block(text: str, heading: str, language: str) -> tuple[list[str], int]:
    """The first ```language block of a section: its lines, and its first line's 0-based index."""
    lines, offset = section(text, heading)
    for i, line in enumerate(lines):
        if line.strip() == f"```{language}":
            for j in range(i + 1, len(lines)):
                if lines[j].startswith("```"):
                    return lines[i + 1:j], offset + i + 1
            raise AssertionError(f"{heading}: the ```{language} block is not closed")
    raise AssertionError(f"README section {heading!r} has no ```{language} block")


def tour_steps(text: str) -> list[Step]:
    block, offset = fenced_block(text, TOUR_HEADING, "console")
    steps: list[Step] = []
    i = 0
    while i < len(block):
        line = block[i]
        if not line.startswith("$ "):
            if line.strip():
                where = f"README line {offset + i + 1}"
                raise AssertionError(f"{where}: output before any `$ ` command: {line!r}")
            i += 1
            continue
        command, number = line[2:], offset + i + 1
        while command.endswith("\\") and i + 1 < len(block):  # a command continued on the next line
            i += 1
            command = command[:-1] + "\n" + block[i].lstrip("> ")
        i += 1
        output: list[str] = []
        while i < len(block) and not (block[i].startswith("$ ") and output and output[-1] == ""):
            if block[i].startswith("$ ") and not output:
                break  # a command with no output, directly followed by the next
            output.append(block[i])
            i += 1
        if i < len(block) and output and output[-1] == "":
            output.pop()  # the blank line that separates it from the next command
        steps.append(Step(command, output, number))
    if not steps:
        raise AssertionError("the Tour's console block has no `$ ` command")
    return steps


def install_commands(text: str) -> list[str]:
    """The wfbus part of the README's install line (`pip install -e . && wfbus emit ... && ...`)."""
    lines = text.splitlines()
    for line in lines[: lines.index(TOUR_HEADING) if TOUR_HEADING in lines else len(lines)]:
        if line.startswith("pip install") and "wfbus emit" in line:
            return [part.strip() for part in line.split("&&") if part.strip().startswith("wfbus ")]
    raise AssertionError("README has no `pip install ... && wfbus emit ...` line before the Tour")


def runbook_commands(text: str) -> list[tuple[str, int]]:
    block, offset = fenced_block(text, RUNBOOK_HEADING, "bash")
    commands = []
    for i, line in enumerate(block):
        stripped = line.strip()
        if stripped.startswith("wfbus "):
            commands.append((re.sub(r"\s+#\s.*$", "", stripped), offset + i + 1))
    if not commands:
        raise AssertionError("the runbook block has no `wfbus` command")
    return commands


def documented_exit_codes(text: str) -> set[int]:
    lines, _ = section(text, "## Exit codes")
    codes = {int(m.group(1)) for line in lines if (m := re.match(r"\|\s*(\d+)\s*\|", line))}
    assert {0, 1, 2, 3, 4, 5, 6} <= codes, f"the exit-code table lists only {sorted(codes)}"
    return codes


# -- running commands the way a terminal user would ------------------------------------------


class Shell:
    """A fresh folder standing for /tmp/readme: cwd, HOME, state and XDG dirs; `wfbus` on PATH."""

    def __init__(self, root: Path):
        self.root = root
        self.work = root / "readme"
        self.work.mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        venv_script = Path(sys.executable).with_name("wfbus")
        shim = bin_dir / "wfbus"
        if venv_script.exists():
            shim.symlink_to(venv_script)
        else:
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m wfbus "$@"\n')
            shim.chmod(0o755)
        dropped = {"COLUMNS", "LINES", "FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE",
                   "PYTHONWARNINGS"}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WFBUS_", "XDG_", "AWS_")) and k not in dropped}
        work = self.work
        env.update({
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(work),
            "NO_COLOR": "1",
            "LC_ALL": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "WFBUS_STATE_DIR": str(work / ".local" / "state" / "wfbus"),
            "XDG_CONFIG_HOME": str(work / ".config"),
            "XDG_DATA_HOME": str(work / ".local" / "share"),
            "XDG_STATE_HOME": str(work / ".local" / "state"),
            "XDG_CACHE_HOME": str(work / ".cache"),
        })
        self.env = env

    def run(self, command: str, timeout: float = 120) -> tuple[int, str]:
        """`command` in bash, stderr on stdout (in the order a terminal shows) -> (code, output)."""
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", "exec 2>&1\n" + command],
                              cwd=self.work, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, timeout=timeout)
        return proc.returncode, self.normalise(proc.stdout.decode("utf-8", errors="replace"))

    def normalise(self, output: str) -> str:
        for path in sorted({str(self.work), os.path.realpath(self.work)}, key=len, reverse=True):
            output = output.replace(path, SHOWN_DIR)
        return output


def output_lines(output: str) -> list[str]:
    if not output:
        return []
    return (output[:-1] if output.endswith("\n") else output).split("\n")


# -- the Tour ----------------------------------------------------------------------------------


@dataclass
class Ran:
    step: Step
    actual: list[str]
    code: int = 0


def run_tour(text: str, shell: Shell) -> list[Ran]:
    shutil.copytree(REPO / "sample_events", shell.work / "sample_events")
    shutil.copytree(REPO / "sample_events_invalid", shell.work / "sample_events_invalid")
    for command in install_commands(text):
        code, output = shell.run(command)
        assert code == 0, f"the install line's `{command}` exited {code}:\n{output}"
    ran = []
    for step in tour_steps(text):
        code, output = shell.run(step.command)
        ran.append(Ran(step, output_lines(output), code))
    return ran


def transcript(ran: list[Ran], actual: bool) -> list[str]:
    lines: list[str] = []
    for i, r in enumerate(ran):
        if i:
            lines.append("")
        lines.append("$ " + r.step.command)
        lines.extend(r.actual if actual else r.step.expected)
    return lines


def tour_mismatches(ran: list[Ran]) -> str:
    """'' when every command printed what the README shows; else which ones differ and a diff.

    A command that fails must say so in the README (`...; echo "exit=$?"`), as a terminal user
    would otherwise take it for a success."""
    failed = [r for r in ran if r.code != 0 and "$?" not in r.step.command]
    wrong = [r for r in ran if r.actual != r.step.expected or r in failed]
    if not wrong:
        return ""
    report = ["README Tour does not match what wfbus prints (paths shown as /tmp/readme):"]
    for r in wrong:
        unshown = f" (exited {r.code}; the README shows no exit code)" if r in failed else ""
        report.append(f"  README line {r.step.line}: $ {r.step.command}{unshown}")
    report.append("")
    report.extend(difflib.unified_diff(transcript(ran, actual=False), transcript(ran, actual=True),
                                       "README.md (Tour)", "wfbus output", lineterm="", n=2))
    report.append("")
    report.append("If wfbus is right, make the README's Tour block the +/context lines above.")
    return "\n".join(report)


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> list[Ran]:
    return run_tour(README.read_text(encoding="utf-8"), Shell(tmp_path_factory.mktemp("tour")))


def test_readme_tour_matches_the_tool(tour):
    problems = tour_mismatches(tour)
    assert not problems, problems


def test_a_changed_readme_tour_is_reported(tour):
    """The check itself bites: a README line the tool does not print is reported, with a diff."""
    text = README.read_text(encoding="utf-8")
    steps = tour_steps(text)
    k = next(i for i, s in enumerate(steps) if s.expected and tour[i].actual)  # first with output
    target, original = steps[k], steps[k].expected[0]
    mutated = original.replace(" of ", " out of ", 1) if " of " in original else original + " (x)"
    block_start = text.index("```console", text.index(TOUR_HEADING))
    at = text.index("\n" + original + "\n", block_start) + 1
    changed_text = text[:at] + mutated + text[at + len(original):]

    changed_steps = tour_steps(changed_text)
    assert [s.command for s in changed_steps] == [s.command for s in steps]
    changed = [Ran(step, r.actual, r.code) for step, r in zip(changed_steps, tour)]
    problems = tour_mismatches(changed)
    assert problems, "a mutated README line was not reported"
    assert f"-{mutated}" in problems and f"+{tour[k].actual[0]}" in problems, problems
    assert f"README line {target.line}: $ {target.command}" in problems, problems

    # a line wfbus no longer prints, and a failure the README does not show, are reported too
    shortened = [Ran(r.step, r.actual[:-1], r.code) for r in tour]
    assert tour_mismatches(shortened), "an output line missing from wfbus's output was not reported"
    quiet_failure = [Ran(r.step, r.actual, 0 if "$?" in r.step.command else 1) for r in tour]
    assert "the README shows no exit code" in tour_mismatches(quiet_failure)


def test_tour_parsing():
    text = "\n".join([
        "# x", "pip install -e . && wfbus emit a.json && wfbus depth", "## Tour", "text",
        "```console", "$ wfbus one", "out 1", "", "out 1 after a blank", "", "$ wfbus two",
        "$ wfbus three", "out 3", "", "```", "## Next", "```console", "$ not this", "```",
    ])
    steps = tour_steps(text)
    assert [(s.command, s.expected) for s in steps] == [
        ("wfbus one", ["out 1", "", "out 1 after a blank"]),
        ("wfbus two", []),
        ("wfbus three", ["out 3", ""]),
    ]
    assert install_commands(text) == ["wfbus emit a.json", "wfbus depth"]


# -- the operator's runbook -------------------------------------------------------------------


RUNBOOK_DLQ = [
    # selected by step 5 (`--topic 'order.*' --match payload.region=eu --max-attempt 3`)
    {"topic": "order.submit", "urn": "order-1", "payload": {"region": "eu", "n": 1}, "attempt": 1},
    {"topic": "order.cancel", "urn": "order-2", "payload": {"region": "eu"}, "attempt": 3},
    # not selected: they stay dead-lettered, so step 6 exits 6
    {"topic": "order.submit", "urn": "order-3", "payload": {"region": "us"}, "attempt": 0},
    {"topic": "order.submit", "urn": "order-4", "payload": {"region": "eu"}, "attempt": 4},
    {"topic": "billing.charge", "urn": 5, "payload": {"region": "eu"}, "attempt": 0},
]
RUNBOOK_SELECTED = 2


def run_runbook(text: str, shell: Shell) -> list[str]:
    """Run the runbook's commands on a local `order` broker with a seeded DLQ; -> problems found."""
    (shell.work / "wfbus.yaml").write_text(
        "default_broker: order\n"
        "brokers:\n"
        "  order: {type: local, path: .wfbus/order.db}\n"
    )
    seed = shell.work / "dead.jsonl"
    seed.write_text("".join(json.dumps(e) + "\n" for e in RUNBOOK_DLQ))
    code, output = shell.run("wfbus emit -b order --dead-letter dead.jsonl")
    assert code == 0, f"seeding the runbook's DLQ failed ({code}):\n{output}"

    documented = documented_exit_codes(text)
    problems = []
    for command, line in runbook_commands(text):
        code, output = shell.run(command)
        where = f"README line {line}: `{command}` exited {code}"
        if "Traceback" in output:
            problems.append(f"{where} with a traceback:\n{output}")
        elif code not in documented:
            problems.append(f"{where}, a code the exit-code table does not list:\n{output}")
        elif code == 6 and "--max-" in command:
            pass  # a threshold, as documented: the DLQ still holds the unselected messages
        elif code != 0:
            problems.append(f"{where}:\n{output}")
    if problems:
        return problems

    # what the runbook promises happened: a backup of the whole DLQ, then a replay of the subset
    backups = [shell.work / m for c, _ in runbook_commands(text)
               for m in re.findall(r">\s*(\S+)", c)]
    for backup in backups:
        lines = backup.read_text().splitlines() if backup.exists() else []
        if len(lines) != len(RUNBOOK_DLQ):
            problems.append(f"the backup {backup.name} has {len(lines)} line(s), "
                            f"the DLQ held {len(RUNBOOK_DLQ)}")
    code, output = shell.run("wfbus depth -b order -o json")
    queues = {q["role"]: q["ready"] for q in json.loads(output)["queues"]}
    left = len(RUNBOOK_DLQ) - RUNBOOK_SELECTED
    if queues != {"main": RUNBOOK_SELECTED, "dead-letter": left}:
        problems.append(f"after the runbook the order broker holds {queues}, expected "
                        f"{RUNBOOK_SELECTED} replayed and {left} still dead-lettered")
    return problems


def test_readme_runbook_runs(tmp_path):
    problems = run_runbook(README.read_text(encoding="utf-8"), Shell(tmp_path))
    assert not problems, "README operator's runbook:\n" + "\n".join(problems)


def test_a_renamed_flag_in_the_runbook_is_reported(tmp_path):
    text = README.read_text(encoding="utf-8")
    runbook_start = text.index(RUNBOOK_HEADING)
    assert "--max-dead 0" in text[runbook_start:]
    rest = text[runbook_start:].replace("--max-dead 0", "--max-dead-letters 0", 1)
    changed = text[:runbook_start] + rest
    problems = run_runbook(changed, Shell(tmp_path))
    assert any("--max-dead-letters" in p and "exited 2" in p for p in problems), problems

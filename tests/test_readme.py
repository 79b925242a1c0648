"""The README cannot drift: every ```console block in it runs like a cram test; its links resolve.

- Every ```console block of README.md is executed: each `$ ` line is a command (a trailing `\\`
  continues it), the lines after it (up to a blank line followed by the next `$ `, or the end of
  the block) are what a terminal shows, stdout and stderr together, and the output must equal the
  README's line for line. The commands run in a fresh folder standing for the clone, `~/wfbus` (a
  copy of the sample_events* folders, no config file), with a fresh HOME, no WFBUS_/XDG_/AWS_
  variables (the defaults a new user gets), NO_COLOR=1, output in a pipe; HOME is written as `~`.
- The blocks of "## DLQ runbook" run in a shell of their own (the runbook writes a wfbus.yaml);
  every other block runs in one shell, in the README's order ("## First command", the Tour, ...).
  After the runbook, what it promises is checked by counting: the backup holds the whole DLQ, the
  replay moved exactly the selected events and left the rest dead-lettered.
- The exit-code table lists every code of `wfbus.errors.ExitStatus`, and 128+N; the synopsis shows
  only options `wfbus COMMAND --help` knows; every YAML example of `## Configuration` is accepted.
- Every relative link in README.md and docs/*.md points to a file that exists (and to a heading of
  it, when it names one).

When the tool's output changes on purpose, update the README block to what the failure shows.
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
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SAMPLE_DIRS = ("sample_events", "sample_events_invalid", "sample_events_dlq")

FIRST_HEADING = "## First command"
TOUR_HEADING = "## Tour"
RUNBOOK_HEADING = "## DLQ runbook"
RUNBOOK_DLQ = REPO / "sample_events_dlq" / "order-dlq.jsonl"


# -- reading the README ------------------------------------------------------------------------


@dataclass
class Step:
    command: str
    expected: list[str]  # output lines as a terminal shows them
    line: int  # the README line of the command, 1-based


@dataclass
class Block:
    heading: str  # the `## ` heading the block is under
    lines: list[str]
    offset: int  # 0-based index of the block's first line in the README


def _fences(lines: list[str]) -> list[tuple[int, int, str]]:
    """(opening index, closing index, language) of every fenced block."""
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language = lines[i][3:].strip()
            for j in range(i + 1, len(lines)):
                if lines[j].startswith("```"):
                    out.append((i, j, language))
                    i = j
                    break
            else:
                raise AssertionError(f"README line {i + 1}: a ``` block is not closed")
        i += 1
    return out


def console_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    fences = _fences(lines)
    inside = {k for start, end, _ in fences for k in range(start, end + 1)}
    blocks = []
    for start, end, language in fences:
        if language != "console":
            continue
        heading = next(
            (
                lines[k]
                for k in range(start, -1, -1)
                if k not in inside and re.match(r"## ", lines[k])
            ),
            "",
        )
        blocks.append(Block(heading, lines[start + 1 : end], start + 1))
    return blocks


def steps_of(block: Block) -> list[Step]:
    steps: list[Step] = []
    lines, i = block.lines, 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if line.strip():
                where = f"README line {block.offset + i + 1}"
                raise AssertionError(f"{where}: output before any `$ ` command: {line!r}")
            i += 1
            continue
        command, number = line[2:], block.offset + i + 1
        while command.endswith("\\") and i + 1 < len(lines):  # a command continued on the next line
            i += 1
            command = command[:-1] + "\n" + lines[i].lstrip("> ")
        i += 1
        output: list[str] = []
        while i < len(lines) and not (lines[i].startswith("$ ") and output and output[-1] == ""):
            if lines[i].startswith("$ ") and not output:
                break  # a command with no output, directly followed by the next
            output.append(lines[i])
            i += 1
        if i < len(lines) and output and output[-1] == "":
            output.pop()  # the blank line that separates it from the next command
        steps.append(Step(command, output, number))
    if not steps:
        raise AssertionError(f"README line {block.offset}: a console block with no `$ ` command")
    return steps


def scenarios(text: str) -> tuple[list[Step], list[Step]]:
    """(the steps of the main shell, the steps of the runbook's shell), in README order."""
    blocks = console_blocks(text)
    headings = [b.heading for b in blocks]
    for required in (FIRST_HEADING, TOUR_HEADING, RUNBOOK_HEADING):
        assert required in headings, f"README has no ```console block under {required!r}"
    assert headings[0] == FIRST_HEADING, "the first console block must be the first command's"
    main = [s for b in blocks if b.heading != RUNBOOK_HEADING for s in steps_of(b)]
    runbook = [s for b in blocks if b.heading == RUNBOOK_HEADING for s in steps_of(b)]
    return main, runbook


def section(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if (m := re.match(r"(#+) ", lines[i]))
            and len(m.group(1)) <= level
            and sum(1 for x in lines[start:i] if x.startswith("```")) % 2 == 0
        ),
        len(lines),
    )
    return lines[start:end]


# -- running commands the way a terminal user would ------------------------------------------


class Shell:
    """A fresh HOME, the clone in ~/wfbus (the cwd), `wfbus` on PATH, no WFBUS_/XDG_/AWS_ vars."""

    def __init__(self, root: Path):
        self.home = root / "home"
        self.work = self.home / "wfbus"
        self.work.mkdir(parents=True)
        stray = [f for f in (root, *root.parents) if (f / ".wfbus").is_dir()]
        assert not stray, (
            f"{stray[0] / '.wfbus'} exists: the local broker would keep the README's "
            "events there instead of in ~/.local/share/wfbus (remove it or set TMPDIR)"
        )
        for name in SAMPLE_DIRS:
            shutil.copytree(REPO / name, self.work / name)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        venv_script = Path(sys.executable).with_name("wfbus")
        shim = bin_dir / "wfbus"
        if venv_script.exists():
            shim.symlink_to(venv_script)
        else:
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m wfbus "$@"\n')
            shim.chmod(0o755)
        dropped = {
            "COLUMNS",
            "LINES",
            "FORCE_COLOR",
            "CLICOLOR_FORCE",
            "TTY_COMPATIBLE",
            "PYTHONWARNINGS",
        }
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WFBUS_", "XDG_", "AWS_")) and k not in dropped
        }
        env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                "HOME": str(self.home),
                "NO_COLOR": "1",
                "LC_ALL": "C.UTF-8",
                "PYTHONIOENCODING": "utf-8",
            }
        )
        self.env = env

    def run(self, command: str, timeout: float = 120) -> tuple[int, str]:
        """`command` in bash, stderr on stdout (in the order a terminal shows) -> (code, output)."""
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", "exec 2>&1\n" + command],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            timeout=timeout,
        )
        return proc.returncode, self.normalise(proc.stdout.decode("utf-8", errors="replace"))

    def normalise(self, output: str) -> str:
        for path in sorted({str(self.home), os.path.realpath(self.home)}, key=len, reverse=True):
            output = output.replace(path, "~")
        return output


def output_lines(output: str) -> list[str]:
    if not output:
        return []
    return (output[:-1] if output.endswith("\n") else output).split("\n")


@dataclass
class Ran:
    step: Step
    actual: list[str]
    code: int = 0


def run_steps(steps: list[Step], shell: Shell) -> list[Ran]:
    ran = []
    for step in steps:
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


def mismatches(ran: list[Ran], what: str) -> str:
    """'' when every command printed what the README shows; else which ones differ and a diff.

    A command that fails must say so in the README (`...; echo "exit=$?"`), as a terminal user
    would otherwise take it for a success."""
    failed = [r for r in ran if r.code != 0 and "$?" not in r.step.command]
    wrong = [r for r in ran if r.actual != r.step.expected or r in failed]
    if not wrong:
        return ""
    report = [f"README {what} does not match what wfbus prints (home shown as ~):"]
    for r in wrong:
        unshown = f" (exited {r.code}; the README shows no exit code)" if r in failed else ""
        report.append(f"  README line {r.step.line}: $ {r.step.command}{unshown}")
    report.append("")
    report.extend(
        difflib.unified_diff(
            transcript(ran, actual=False),
            transcript(ran, actual=True),
            f"README.md ({what})",
            "wfbus output",
            lineterm="",
            n=2,
        )
    )
    report.append("")
    report.append("If wfbus is right, make the README's block the +/context lines above.")
    return "\n".join(report)


# -- the first command, the Tour and the other examples -----------------------------------------


@pytest.fixture(scope="module")
def main_run(tmp_path_factory) -> list[Ran]:
    steps, _ = scenarios(README.read_text(encoding="utf-8"))
    return run_steps(steps, Shell(tmp_path_factory.mktemp("readme")))


def test_readme_examples_match_the_tool(main_run):
    problems = mismatches(main_run, "examples")
    assert not problems, problems


def test_every_console_block_is_run(main_run):
    """No block escapes: the two scenarios together hold every `$ ` line of every console block."""
    text = README.read_text(encoding="utf-8")
    main, runbook = scenarios(text)
    dollar_lines = [line for b in console_blocks(text) for line in b.lines if line.startswith("$ ")]
    assert len(main) + len(runbook) == len(dollar_lines) >= 15
    assert [r.step.line for r in main_run] == [s.line for s in main]


def test_a_changed_readme_line_is_reported(main_run):
    """The check itself bites: a README line the tool does not print is reported, with a diff."""
    text = README.read_text(encoding="utf-8")
    steps, _ = scenarios(text)
    k = next(
        i
        for i, s in enumerate(steps)
        if s.expected
        and main_run[i].actual
        and s.line > text[: text.index(TOUR_HEADING)].count("\n")
    )
    target, original = steps[k], steps[k].expected[0]
    mutated = original.replace(" of ", " out of ", 1) if " of " in original else original + " (x)"
    lines = text.splitlines(keepends=True)
    at = target.line  # the first output line follows the command's line
    assert lines[at].rstrip("\n") == original
    changed_text = "".join(lines[:at] + [mutated + "\n"] + lines[at + 1 :])

    changed_steps, _ = scenarios(changed_text)
    assert [s.command for s in changed_steps] == [s.command for s in steps]
    changed = [Ran(step, r.actual, r.code) for step, r in zip(changed_steps, main_run, strict=True)]
    problems = mismatches(changed, "examples")
    assert problems, "a mutated README line was not reported"
    assert f"-{mutated}" in problems and f"+{main_run[k].actual[0]}" in problems, problems
    assert f"README line {target.line}: $ {target.command}" in problems, problems

    # a line wfbus no longer prints, and a failure the README does not show, are reported too
    shortened = [Ran(r.step, r.actual[:-1], r.code) for r in main_run]
    assert mismatches(shortened, "examples"), (
        "an output line missing from wfbus's output was not reported"
    )
    quiet_failure = [Ran(r.step, r.actual, 0 if "$?" in r.step.command else 1) for r in main_run]
    assert "the README shows no exit code" in mismatches(quiet_failure, "examples")


def test_block_parsing():
    text = "\n".join(
        [
            "# x",
            "## First command",
            "```console",
            "$ wfbus zero",
            "```",
            "## Tour",
            "text",
            "```console",
            "$ wfbus one",
            "out 1",
            "",
            "out 1 after a blank",
            "",
            "$ wfbus two",
            "$ wfbus three \\",
            "> --flag",
            "out 3",
            "",
            "```",
            "```bash",
            "## not a heading",
            "```",
            "## DLQ runbook",
            "```console",
            "$ wfbus four",
            "```",
        ]
    )
    main, runbook = scenarios(text)
    assert [(s.command, s.expected, s.line) for s in main] == [
        ("wfbus zero", [], 4),
        ("wfbus one", ["out 1", "", "out 1 after a blank"], 9),
        ("wfbus two", [], 14),
        ("wfbus three \n--flag", ["out 3", ""], 15),
    ]
    assert [s.command for s in runbook] == ["wfbus four"]


# -- the DLQ runbook ---------------------------------------------------------------------------


def runbook_selected(events: list[dict]) -> list[dict]:
    """What the runbook's replay (`--topic 'order.*' --match payload.region=eu --max-attempt 3`)
    selects, computed here independently of wfbus."""
    return [
        e
        for e in events
        if fnmatchcase(e["topic"], "order.*")
        and isinstance(e.get("payload"), dict)
        and e["payload"].get("region") == "eu"
        and e["attempt"] <= 3
    ]


def run_runbook(text: str, shell: Shell) -> tuple[list[Ran], list[str]]:
    """Run the runbook's console blocks in a fresh folder -> (what ran, the promises it broke)."""
    _, steps = scenarios(text)
    ran = run_steps(steps, shell)
    events = [json.loads(line) for line in RUNBOOK_DLQ.read_text().splitlines() if line.strip()]
    selected = runbook_selected(events)
    assert 0 < len(selected) < len(events), "the sample DLQ must leave something unselected"
    broken = []
    backups = [m for s in steps for m in re.findall(r">\s*(\S+\.jsonl)", s.command)]
    assert backups, "the runbook makes no backup"
    for name in backups:
        backup = shell.work / name
        lines = backup.read_text().splitlines() if backup.exists() else []
        if sorted(json.dumps(json.loads(x)["urn"]) for x in lines) != sorted(
            json.dumps(e["urn"]) for e in events
        ):
            broken.append(
                f"the backup {name} holds {len(lines)} event(s), not the DLQ's {len(events)}"
            )
    code, output = shell.run("wfbus depth -b order -o json")
    queues = {q["role"]: q["ready"] for q in json.loads(output)["queues"]} if code == 0 else output
    want = {"main": len(selected), "dead-letter": len(events) - len(selected)}
    if queues != want:
        broken.append(f"after the runbook the order broker holds {queues}, expected {want}")
    return ran, broken


def test_readme_runbook_matches_the_tool(tmp_path):
    ran, broken = run_runbook(README.read_text(encoding="utf-8"), Shell(tmp_path))
    problems = mismatches(ran, "DLQ runbook")
    assert not problems, problems
    assert not broken, "README DLQ runbook:\n" + "\n".join(broken)


def test_a_renamed_flag_in_the_runbook_is_reported(tmp_path):
    text = README.read_text(encoding="utf-8")
    runbook_start = text.index(RUNBOOK_HEADING)
    assert "--max-dead 0" in text[runbook_start:]
    changed = text[:runbook_start] + text[runbook_start:].replace(
        "--max-dead 0", "--max-dead-letters 0", 1
    )
    ran, _ = run_runbook(changed, Shell(tmp_path))
    problems = mismatches(ran, "DLQ runbook")
    assert "--max-dead-letters" in problems and "+exit=2" in problems, problems


# -- the exit codes and the install section ------------------------------------------------------


def test_the_exit_code_table_lists_every_code_of_the_tool():
    from wfbus.errors import ExitStatus

    rows = [
        line
        for line in section(README.read_text(encoding="utf-8"), "## Exit codes")
        if line.startswith("| ")
    ]
    codes = {m.group(1) for line in rows if (m := re.match(r"\|\s*([0-9N+]+)\s*\|", line))}
    wanted = {str(int(s)) for s in ExitStatus if s != ExitStatus.INTERRUPTED} | {"128+N"}
    assert wanted <= codes, f"the README's exit-code table lacks {sorted(wanted - codes)}"
    assert int(ExitStatus.INTERRUPTED) == 128 + 2  # Ctrl-C, as the 128+N row says


def test_the_extras_the_readme_names_exist():
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"\.\[([a-z0-9_-]+)\]", text))
    assert "serve" in named
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is 3.11+
    table = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([A-Za-z0-9_-]+)\s*=\s*\[", table, re.M))
    assert "test" in extras, extras
    assert named <= extras, f"README names extras pyproject.toml does not define: {named - extras}"


# -- links -------------------------------------------------------------------------------------


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.lstrip("#").strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    inside = {k for s, e, _ in _fences(lines) for k in range(s, e + 1)}
    return {
        _slug(line) for k, line in enumerate(lines) if k not in inside and re.match(r"#+ ", line)
    }


def broken_links(path: Path) -> list[str]:
    """Relative links in a Markdown file that point to no file (or to no heading of it)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    inside = {k for s, e, _ in _fences(lines) for k in range(s, e + 1)}
    broken = []
    for k, line in enumerate(lines):
        if k in inside:
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            where = path.parent / file_part if file_part else path
            if not where.exists():
                broken.append(f"{path.relative_to(REPO)}:{k + 1}: {target}: no such file")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{path.relative_to(REPO)}:{k + 1}: {target}: no such heading")
    return broken


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_resolves():
    files = markdown_files()
    assert len(files) >= 5, "README.md and the docs/ pages it links"
    broken = [b for f in files for b in broken_links(f)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_links_the_docs_pages():
    text = README.read_text(encoding="utf-8")
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(text) if t.startswith("docs/")}
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


def test_a_broken_link_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Two words\n")
    page = tmp_path / "README.md"
    page.write_text(
        "\n".join(
            [
                "# t",
                "[ok](docs/a.md) [ok](docs/a.md#two-words) [ok](#t) [web](https://example.com/x)",
                "[gone](docs/missing.md)",
                "[bad anchor](docs/a.md#three)",
                "`[in code](nowhere.md)`",
                "```",
                "[in a block](nowhere.md)",
                "```",
            ]
        )
    )
    assert broken_links(page) == [
        "README.md:3: docs/missing.md: no such file",
        "README.md:4: docs/a.md#three: no such heading",
    ]


# -- the command synopsis ------------------------------------------------------------------------


def synopsis(text: str) -> dict[str, set[str]]:
    """The options the README's `## Commands` block shows, per command (continuation lines too)."""
    lines = section(text, "## Commands")
    start = lines.index("```") + 1
    block = lines[start : lines.index("```", start)]
    shown: dict[str, set[str]] = {}
    command = ""
    for line in block:
        if m := re.match(r"  ([a-z]+)\s", line + " "):
            command = m.group(1)
        if command:
            shown.setdefault(command, set()).update(
                re.findall(r"(?<![\w-])--[a-z][a-z-]*", line.split(" # ")[0])
            )
    return shown


def help_text(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "wfbus", *args, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def unknown_options(shown: dict[str, set[str]]) -> set[str]:
    return {
        f"{command} {option}"
        for command, options in shown.items()
        for option in options - set(re.findall(r"--[a-z][a-z-]*", help_text(command)))
    }


def test_the_command_synopsis_matches_the_help():
    text = README.read_text(encoding="utf-8")
    shown = synopsis(text)
    listed = set(re.findall(r"^  ([a-z]+)\s{2,}", help_text().split("Commands:")[1], re.M))
    assert listed == set(shown), f"wfbus --help lists {sorted(listed)}, the README {sorted(shown)}"
    unknown = unknown_options(shown)
    assert not unknown, (
        f"options the README shows that `wfbus COMMAND --help` does not know: {sorted(unknown)}"
    )
    first = next(line for line in section(text, "## Commands") if line.startswith("wfbus ["))
    global_options = set(re.findall(r"--[a-z][a-z-]*", first))
    offered = set(re.findall(r"^ +(?:-\w, )?(--[a-z][a-z-]*)", help_text(), re.M))
    assert global_options <= offered
    not_global = {"--version", "--install-completion", "--show-completion", "--help"}
    lacking = offered - not_global - global_options
    assert not lacking, f"the synopsis lacks the global options {sorted(lacking)}"
    for command, options in shown.items():  # and every option of each command is shown
        declared = set(re.findall(r"^ +(?:-\w, )?(--[a-z][a-z-]*)", help_text(command), re.M))
        missing = declared - offered - options
        assert not missing, f"the README's synopsis of `{command}` lacks {sorted(missing)}"


def test_a_synopsis_option_the_tool_lacks_is_caught():
    text = README.read_text(encoding="utf-8").replace("[--max-lag N]", "[--max-lagging N]", 1)
    assert unknown_options({"depth": synopsis(text)["depth"]}) == {"depth --max-lagging"}


# -- the configuration snippets ------------------------------------------------------------------


def config_snippets(text: str) -> list[tuple[int, str]]:
    """(README line, YAML) of each ```yaml block of `## Configuration`, broker entries whole."""
    lines = text.splitlines()
    start = lines.index("## Configuration")
    part = section(text, "## Configuration")
    out = []
    for s, e, language in _fences(part):
        if language == "yaml":
            body = "\n".join(part[s + 1 : e]) + "\n"
            out.append((start + s + 2, body if not body.startswith("  ") else "brokers:\n" + body))
    return out


def test_every_config_snippet_is_a_valid_config(tmp_path):
    """Each broker type's example is accepted by wfbus as it stands (keys, values, types)."""
    snippets = config_snippets(README.read_text(encoding="utf-8"))
    assert len(snippets) >= 5, "the general example and one per broker type"
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "ORDER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/o",
        "RABBIT_PASSWORD": "pw-from-env",
        "KAFKA_PASSWORD": "pw-from-env",
    }
    types = set()
    for line, yaml_text in snippets:
        config = tmp_path / f"line{line}.yaml"
        config.write_text(yaml_text)
        proc = subprocess.run(
            [sys.executable, "-m", "wfbus", "-c", str(config), "brokers", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 0, f"README line {line}: the config is refused:\n{proc.stderr}"
        types |= {b["type"] for b in json.loads(proc.stdout)["brokers"]}
    assert types == {"local", "sqs", "kafka", "rabbitmq"}


def test_a_misspelt_key_in_a_config_snippet_is_caught(tmp_path):
    text = README.read_text(encoding="utf-8").replace("sasl_mechanism:", "sasl_mechanisms:", 1)
    ((_, broken),) = [(n, y) for n, y in config_snippets(text) if "sasl_mechanisms" in y]
    config = tmp_path / "c.yaml"
    config.write_text(broken)
    env = {**os.environ, "KAFKA_PASSWORD": "x"}
    proc = subprocess.run(
        [sys.executable, "-m", "wfbus", "-c", str(config), "brokers"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 4 and "sasl_mechanisms" in proc.stderr


# -- the Python API example ----------------------------------------------------------------------


def test_the_python_api_example_prints_what_the_readme_shows(tmp_path):
    part = section(README.read_text(encoding="utf-8"), "## Python API")
    blocks = {language: part[s + 1 : e] for s, e, language in reversed(_fences(part))}
    assert {"python", "text"} <= set(blocks), "## Python API needs a python block and its output"
    shell = Shell(tmp_path)
    (shell.work / "example.py").write_text("\n".join(blocks["python"]) + "\n")
    code, output = shell.run(f'"{sys.executable}" example.py')
    assert code == 0, output
    assert output_lines(output) == blocks["text"], output

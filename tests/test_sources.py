"""The same input given twice is refused (exit 2, naming it), never read and sent twice.

Sameness is the file itself (device + inode), whatever the spelling: `a` and `./a`, a symlink, a
hard link, a file and a directory holding it, nested directories, stdin redirected from a named
file. Distinct files with the same content are different inputs and are both sent.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from conftest import run_process, write_jsonl


def _events(prefix: str, count: int) -> list[dict]:
    return [{"topic": "t", "urn": f"{prefix}{i}", "payload": {"i": i}} for i in range(count)]


def _ready(wfbus) -> int:
    return wfbus("-o", "json", "depth").json()["queues"][0]["ready"]


def _layout(tmp_path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_jsonl(tmp_path / "a.jsonl", _events("a", 3))
    write_jsonl(tmp_path / "in" / "b.jsonl", _events("b", 4))
    write_jsonl(tmp_path / "in" / "sub" / "c.jsonl", _events("c", 5))
    (tmp_path / "link.jsonl").symlink_to("a.jsonl")
    os.link(tmp_path / "a.jsonl", tmp_path / "hard.jsonl")
    (tmp_path / "in-link").symlink_to("in")


DUPLICATES = {
    "same name twice": (["a.jsonl", "a.jsonl"], "a.jsonl"),
    "./path and path": (["a.jsonl", "./a.jsonl"], "a.jsonl"),
    "absolute and relative": (["{tmp}/a.jsonl", "a.jsonl"], "a.jsonl"),
    "a symlink": (["a.jsonl", "link.jsonl"], "link.jsonl"),
    "a hard link": (["hard.jsonl", "a.jsonl"], "a.jsonl"),
    "a file then its directory": (["in/b.jsonl", "in"], "b.jsonl"),
    "a directory then its file": (["in", "in/sub/c.jsonl"], "c.jsonl"),
    "a directory and its subdirectory": (["in/sub", "in"], "c.jsonl"),
    "a directory twice": (["in", "./in/"], "b.jsonl"),
    "a directory and a link to it": (["in", "in-link"], "b.jsonl"),
    "stdin twice": (["-", "-"], "-"),
}


@pytest.mark.parametrize("command", ["emit", "validate"])
@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_the_same_input_twice_is_a_usage_error_naming_it_and_nothing_is_sent(
    wfbus, tmp_path, command, case
):
    _layout(tmp_path)
    specs, named = DUPLICATES[case]
    specs = [s.replace("{tmp}", str(tmp_path)) for s in specs]
    result = wfbus(command, *specs, stdin=b'{"topic": "t", "urn": "s"}\n')
    assert result.code == 2, (case, result.code, result.err)
    assert named in result.err and "twice" in result.err, result.err
    assert "Traceback" not in result.err
    assert _ready(wfbus) == 0


def test_distinct_files_with_the_same_content_are_both_sent(wfbus, tmp_path):
    events = _events("x", 6)
    write_jsonl(tmp_path / "one.jsonl", events)
    write_jsonl(tmp_path / "two.jsonl", events)
    assert wfbus("emit", "one.jsonl", "two.jsonl").code == 0
    assert _ready(wfbus) == 12


def test_many_distinct_sources_are_all_read_once_in_order(wfbus, tmp_path):
    """Generated trees: no false duplicate, every event exactly once, sources in the order given."""
    seed = random.randrange(1 << 30)
    print("seed", seed)
    rng = random.Random(seed)
    expected: list[str] = []
    specs: list[str] = []
    for index in range(rng.randint(3, 9)):
        if rng.random() < 0.4:
            folder = tmp_path / f"d{index}"
            for sub in sorted(rng.sample(range(10), rng.randint(1, 4))):
                path = (
                    folder / f"s{sub}" / "e.jsonl"
                    if rng.random() < 0.5
                    else folder / f"f{sub}.jsonl"
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                write_jsonl(path, _events(f"{index}-{sub}-", rng.randint(1, 5)))
            specs.append(f"d{index}")
            expected += [
                json.loads(line)["urn"]
                for p in sorted(str(p) for p in folder.rglob("*.jsonl"))
                for line in open(p)
            ]
        else:
            events = _events(f"{index}-", rng.randint(1, 5))
            write_jsonl(tmp_path / f"f{index}.jsonl", events)
            specs.append(f"./f{index}.jsonl" if rng.random() < 0.5 else f"f{index}.jsonl")
            expected += [e["urn"] for e in events]
    result = wfbus("emit", *specs)
    assert result.code == 0, (seed, result.err)
    peeked = wfbus("-o", "json", "peek", "--all").json()
    assert [e["urn"] for e in peeked] == expected, seed


def test_stdin_redirected_from_a_named_file_is_the_same_input(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", _events("a", 3))
    with open(tmp_path / "a.jsonl", "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "wfbus", "emit", "a.jsonl", "-"],
            cwd=tmp_path,
            stdin=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert "a.jsonl" in proc.stderr and "twice" in proc.stderr
    depth = run_process("-o", "json", "depth", cwd=tmp_path).json()
    assert depth["queues"][0]["ready"] == 0


def test_stdin_from_another_file_is_not_a_duplicate(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", _events("a", 3))
    write_jsonl(tmp_path / "b.jsonl", _events("b", 2))
    with open(tmp_path / "b.jsonl", "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "wfbus", "emit", "a.jsonl", "-"],
            cwd=tmp_path,
            stdin=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert run_process("-o", "json", "depth", cwd=tmp_path).json()["queues"][0]["ready"] == 5


# --- directories, pipes and hints (issue 15 item 14) ---


def test_a_directory_skips_hidden_files_and_folders(wfbus, tmp_path):
    rng = random.Random(os.environ.get("SEED", "15"))
    root = tmp_path / "in"
    (root / ".git" / "objects").mkdir(parents=True)
    (root / "sub" / ".cache").mkdir(parents=True)
    visible = {"a.jsonl": "a", "sub/b.json": "b", "sub/c.ndjson": "c"}
    hidden = [
        ".hidden.jsonl",
        ".git/x.json",
        ".git/objects/y.jsonl",
        "sub/.cache/z.json",
        "sub/.d.ndjson",
    ]
    for name, urn in visible.items():
        write_jsonl(root / name, [{"topic": "t", "urn": urn}])
    for name in hidden:  # not even valid events: reading them would fail the whole emit
        (root / name).write_text("not json " * rng.randint(1, 5))
    result = wfbus("emit", "in")
    assert result.code == 0, result.err
    assert [e["urn"] for e in json.loads(wfbus("peek", "--limit", "10", "-o", "json").out)] == [
        "a",
        "b",
        "c",
    ]


def test_a_directory_names_the_broken_links_it_skipped(wfbus, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    write_jsonl(root / "a.jsonl", _events("a", 2))
    (root / "gone.jsonl").symlink_to(tmp_path / "missing.jsonl")
    (root / "dangling.json").symlink_to("nowhere.json")
    result = wfbus("emit", "in")
    assert result.code == 0, result.err
    assert (
        "gone.jsonl" in result.err and "dangling.json" in result.err and "broken link" in result.err
    )
    assert _ready(wfbus) == 2


def test_process_substitution_and_dev_stdin_are_read_like_stdin(tmp_path):
    events = _events("p", 7)
    write_jsonl(tmp_path / "e.jsonl", events)
    script = (
        f"{sys.executable} -m wfbus validate <(cat e.jsonl) && "
        f"{sys.executable} -m wfbus emit <(cat e.jsonl) && "
        f"cat e.jsonl | {sys.executable} -m wfbus emit /dev/stdin"
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "7 valid event(s)" in proc.stdout or "7" in proc.stdout, proc.stdout
    assert run_process("-o", "json", "depth", cwd=tmp_path).json()["queues"][0]["ready"] == 14


def test_json_lines_in_a_json_file_get_a_hint_to_name_it_jsonl(wfbus, tmp_path):
    write_jsonl(tmp_path / "e.json", _events("j", 3))
    result = wfbus("validate", "e.json")
    assert result.code == 3
    assert ".jsonl" in result.err and "JSON lines" in result.err, result.err
    (tmp_path / "broken.json").write_text('{"topic": "t", "urn": "u",,}')
    assert ".jsonl" not in wfbus("validate", "broken.json").err


def test_the_sample_events_folder_can_be_emitted_as_a_whole(wfbus):
    from conftest import REPO

    result = wfbus("emit", str(REPO / "sample_events"))
    assert result.code == 0, result.err
    count = sum(
        len(json.load(open(p)))
        if p.suffix == ".json" and json.load(open(p)).__class__ is list
        else (1 if p.suffix == ".json" else sum(1 for line in open(p) if line.strip()))
        for p in (REPO / "sample_events").rglob("*")
        if p.is_file()
    )
    assert _ready(wfbus) == count


def test_a_directory_given_as_dot_names_its_files_without_a_dot_slash(wfbus, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_text('{"topic": "t"}\n')
    result = wfbus("validate", ".")
    assert (
        result.code == 3
        and "sub/a.jsonl:1: urn: required" in result.err
        and "./sub" not in result.err
    )

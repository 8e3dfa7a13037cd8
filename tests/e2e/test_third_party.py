"""The whole loop on a real third-party library: more-itertools 11.2.1, from its sdist.

The project is the library's unmodified source distribution (``tests/data``), in a fresh
git repository, with its own 929 unittest tests as the project's test command. The
model is scripted with the replies a good model would give (a plan, a read of the region
it needs, SEARCH/REPLACE edits, a review); everything else is real: the built agents,
the kernel, the sandboxed test runs, the session, the git commit. ``more_itertools/more.py``
is 175 KB, well over what fits in a prompt, so the Coder must read the part it edits.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.trust_helpers import trust_project

from briotui.cli.main import main

pytestmark = pytest.mark.slow

SDIST = Path(__file__).resolve().parents[1] / "data" / "more_itertools-11.2.1.tar.gz"
MORE = "more_itertools/more.py"
STUB = "more_itertools/more.pyi"
BRIOTUI = [sys.executable, "-m", "briotui"]
GIT = ["git", "-c", "user.name=T", "-c", "user.email=t@e.x"]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The sdist unpacked into a git repository whose tests are the library's own."""
    with tarfile.open(SDIST) as archive:
        archive.extractall(tmp_path, filter="data")
    root = tmp_path / "more_itertools-11.2.1"
    assert (root / MORE).stat().st_size > 100_000
    (root / ".brio").mkdir()
    (root / ".brio" / "config.toml").write_text('[tests]\ncommand = "python -m unittest -q"\n')
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "more-itertools 11.2.1"], cwd=root, check=True)
    trust_project(root)  # its [tests] command applies only in a trusted project
    return root


def plan(*subtasks: dict[str, Any]) -> dict[str, Any]:
    return {"agent": "council", "text": json.dumps({"question": None, "subtasks": list(subtasks)})}


def edit(path: str, old: str, new: str) -> str:
    return f"{path}\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"


def coder(text: str, match: str) -> dict[str, Any]:
    return {"agent": "coder", "text": text, "match": match}


APPROVE = {
    "agent": "reviewer",
    "text": json.dumps({"verdict": "approve", "findings": []}),
}


def run(root: Path, goal: str, replies: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """``briotui run GOAL --json`` with scripted replies, as a user would run it."""
    path = root.parent / "replies.json"
    path.write_text(json.dumps(replies))
    out = root.parent / "run.json"
    with out.open("w") as sink:
        proc = subprocess.run(
            [*BRIOTUI, "-C", str(root), "run", goal, "--json", "--provider", f"scripted:{path}"],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
            check=False,
        )
    text = out.read_text()
    assert text, proc.stderr
    return proc.returncode, json.loads(text)


def test_a_two_file_feature_is_verified_and_committed(
    library: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run(
        library,
        "Add second(iterable, default) with its type stub",
        [
            plan(
                {
                    "title": "second in more.py",
                    "goal": "Add second() to the module",
                    "files": [MORE],
                },
                {
                    "title": "second in the stub",
                    "goal": "Declare second() in the stub",
                    "files": [STUB],
                },
            ),
            coder(
                edit(MORE, "    'first',", "    'first',\n    'second',")
                + edit(
                    MORE,
                    "def last(iterable, default=_marker):",
                    "def second(iterable, default=_marker):\n"
                    '    """Return the second item of *iterable*, or *default*."""\n'
                    "    it = iter(iterable)\n"
                    "    next(it, None)\n"
                    "    return first(it, default)\n\n\n"
                    "def last(iterable, default=_marker):",
                ),
                "Add second() to the module",
            ),
            coder(
                edit(
                    STUB,
                    "def last(iterable: Iterable[_T]) -> _T: ...",
                    "def second(iterable: Iterable[_T], default: _U = ...) -> _T | _U: ...\n"
                    "def last(iterable: Iterable[_T]) -> _T: ...",
                ),
                "Declare second() in the stub",
            ),
            APPROVE,
        ],
    )
    assert code == 0, data
    assert data["outcome"] == "verified"
    session = data["session"]["id"]
    assert main(["-C", str(library), "sessions", "accept", session]) == 0
    assert main(["-C", str(library), "sessions", "commit", session, "--git"]) == 0
    capsys.readouterr()
    shown = subprocess.run(
        ["git", "show", "--stat", "--format=%s", "HEAD"],
        cwd=library,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert MORE in shown
    assert STUB in shown
    check = subprocess.run(
        ["python", "-c", "import more_itertools as m; print(m.second('abc'))"],
        cwd=library,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "b"


def test_a_breaking_change_names_the_failing_test_and_the_loop_fixes_it(
    library: Path, built_agents: list[str]
) -> None:
    body = "    for item in iterable:\n        return item\n    if default is _marker:"
    broken = "    return next(iter(iterable), default)\n    if default is _marker:"
    fixed = (
        "    for item in iterable:\n"
        "        return item  # the first one\n"
        "    if default is _marker:"
    )
    code, data = run(
        library,
        "Simplify first()",
        [
            plan({"title": "simplify first", "goal": "Simplify first()", "files": [MORE]}),
            coder(edit(MORE, body, broken), "Simplify first()"),
            APPROVE,
            # the fix round: the Coder is shown the failing test by name
            coder(edit(MORE, broken, fixed), "test_empty"),
        ],
    )
    assert code == 0, data
    assert data["outcome"] == "verified"
    assert data["fix_rounds"] == 1
    session = data["session"]["id"]
    titles = [t.get("title", "") for t in data["tasks"].values()]
    assert "Fix round 1" in titles
    # the first run's failure is stored with the failing test's name
    store = library / ".brio" / "state.db"
    with sqlite3.connect(store) as db:
        outputs = [
            r[0]
            for r in db.execute(
                "SELECT output FROM command_runs WHERE exit_code != 0 AND session_id = ?",
                (session,),
            )
        ]
    assert any("test_empty" in o and "FirstTests" in o for o in outputs)


def test_an_edit_inside_the_175_kb_module_uses_the_region_the_coder_read(
    library: Path, built_agents: list[str]
) -> None:
    old = "                'last() was called on an empty iterable, '"
    new = "                'last() was called on an empty iterable, '  # say what to pass"
    code, data = run(
        library,
        "Comment last()'s error message",
        [
            plan({"title": "comment", "goal": "Comment last()'s error message", "files": [MORE]}),
            # a good model asks for the region before it edits a file it cannot see whole
            coder(f"```read {MORE}:280-303```", "Comment last()'s error message"),
            coder(edit(MORE, old, new), f"{MORE} lines 280-303 of"),
            APPROVE,
        ],
    )
    assert code == 0, data
    assert data["outcome"] == "verified"
    session = data["session"]["id"]
    diff = subprocess.run(
        [
            sys.executable,
            "-m",
            "briotui",
            "-C",
            str(library),
            "sessions",
            "diff",
            session,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    [hunk] = json.loads(diff.stdout)["hunks"]
    assert f"+{new}\n" in hunk["lines"]


def test_a_failed_subtask_exits_non_zero_and_says_why(
    library: Path, built_agents: list[str]
) -> None:
    missing = edit(MORE, "def no_such_function(x):", "def no_such_function(x, y):")
    code, data = run(
        library,
        "Change no_such_function",
        [
            plan({"title": "change it", "goal": "Change no_such_function", "files": [MORE]}),
            # every round of the Coder, and of the Foreman's one retry, gets the same miss
            *[coder(missing, "Change no_such_function")] * 8,
        ],
    )
    assert code == 2, data
    assert data["outcome"] == "failed"
    [failed] = data["failed_subtasks"]
    assert "applied nothing" in failed["reason"]
    assert f"{MORE}: the SEARCH text was not found" in failed["reason"]

"""Resolving a real merge conflict with `briotui sessions resolve`.

A real pipeline run (real agents, scripted Coders that change the same line
differently) leaves a conflict; the CLI resolves it, and the session's file, the state
(`sessions show --json`), the store and the verification follow: the tests run on the
resolved content, and the session is verified only when they pass there. A commit with
conflicts left is refused without --force; a committed session refuses to resolve.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import edit, repo

from briotui.cli.main import main

from .test_outcomes import council, run

pytestmark = pytest.mark.slow

CALC = (
    "def scale(x):\n    return x\n\n\n"
    "# one\n# two\n# three\n# four\n# five\n# six\n\n\n"
    "def mul(a, b):\n    return a * b\n"
)
TESTS = (
    "from calc import mul, scale\n\n\n"
    "def test_scale():\n    assert scale(2) == 6\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n"
)
RESOLVED = CALC.replace("return x\n", "return 3 * x\n").replace("return a * b\n", "return b * a\n")
"""calc.py once the branch's side is taken: its conflicting line and its clean one."""


def conflicting_run(tmp_path: Path, tests: str = TESTS) -> tuple[Path, list[dict[str, Any]]]:
    project = repo(
        tmp_path / "proj",
        {
            "calc.py": CALC,
            "text.py": "def shout(s):\n    return s.upper()\n",
            "tests/test_calc.py": tests,
        },
    )
    (project / ".brio" / "config.toml").write_text(
        '[tests]\ncommand = "python -m pytest -q"\nfix_rounds = 0\n'
    )
    replies = [
        council(
            {"title": "double", "goal": "Make scale double", "files": ["calc.py"]},
            {"title": "triple", "goal": "Make scale triple, swap mul", "files": ["calc.py"]},
        ),
        {
            "agent": "coder",
            "match": "scale double",
            "text": edit("calc.py", "    return x", "    return 2 * x"),
        },
        {
            "agent": "coder",
            "match": "triple",
            "text": edit("calc.py", "    return x", "    return 3 * x")
            + edit("calc.py", "    return a * b", "    return b * a"),
        },
        {"agent": "reviewer", "text": json.dumps({"verdict": "approve", "findings": []})},
    ]
    return project, replies


def cli(project: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(["-C", str(project), *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in argv else out


def test_resolving_a_real_conflict_with_the_cli(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project, replies = conflicting_run(tmp_path)
    code = run(project, replies, tmp_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 3, data
    session = data["session"]["id"]
    code, shown = cli(project, capsys, "sessions", "show", session, "--json")
    [conflict] = shown["session"]["conflicts"]
    [region] = conflict["regions"]
    assert (region["index"], region["resolved"], region["resolution"]) == (1, False, "")
    assert "2 * x" in region["ours"]
    assert "3 * x" in region["theirs"]
    assert shown["session"]["verified"] is False

    # the errors say what is wrong
    code, err = cli(
        project, capsys, "sessions", "resolve", "s-nope", "calc.py", "--theirs", "--json"
    )
    assert code == 2
    assert err["error"]["kind"] == "session-not-found"
    code, err = cli(
        project, capsys, "sessions", "resolve", session, "text.py", "--theirs", "--json"
    )
    assert code == 2
    assert err["error"]["kind"] == "conflict-not-found"
    assert "calc.py (1 region(s))" in err["error"]["message"]
    code, err = cli(
        project,
        capsys,
        "sessions",
        "resolve",
        session,
        "calc.py",
        "--region",
        "2",
        "--ours",
        "--json",
    )
    assert code == 2
    assert "no region 2" in err["error"]["message"]

    # a commit with the conflict left is refused (it needs --force)
    assert cli(project, capsys, "sessions", "accept", session)[0] == 0
    code, err = cli(project, capsys, "sessions", "commit", session, "--json")
    assert code == 2
    assert err["error"]["kind"] == "commit-unverified"
    assert "not resolved" in err["error"]["message"]
    assert (project / "calc.py").read_text() == CALC

    # ours: nothing changes in the file, the tests run again and fail (exit 1)
    code, done = cli(project, capsys, "sessions", "resolve", session, "calc.py", "--ours", "--json")
    assert code == 1, done
    assert (done["regions"], done["resolution"], done["changed"], done["remaining"]) == (
        [1],
        "ours",
        False,
        0,
    )
    assert done["tests"]["verified"] is False
    assert "tests/test_calc.py::test_scale" in done["tests"]["run"]["failed"]
    code, shown = cli(project, capsys, "sessions", "show", session, "--json")
    [region] = shown["session"]["conflicts"][0]["regions"]
    assert (region["resolved"], region["resolution"]) == (True, "ours")
    assert region["resolved_by"] == "user (cli)"
    assert shown["session"]["verified"] is False

    # the whole file from the user: the tests pass and the session is verified
    mine = tmp_path / "calc.py"
    mine.write_text(RESOLVED)
    code, out = cli(project, capsys, "sessions", "resolve", session, "calc.py", "--file", str(mine))
    assert code == 0, out
    assert "took your text" in out
    assert "the session is verified" in out
    code, shown = cli(project, capsys, "sessions", "show", session, "--json")
    assert shown["session"]["verified"] is True
    assert shown["session"]["tests"]["exit_code"] == 0
    [region] = shown["session"]["conflicts"][0]["regions"]
    assert region["resolution"] == "edited"
    code, text = cli(project, capsys, "sessions", "show", session)
    assert "region 1 (line 2): resolved, took edited by user (cli)" in text
    assert "verification: verified" in text

    # the store keeps who resolved it and when
    from briotui.kernel.paths import ProjectPaths

    with sqlite3.connect(ProjectPaths.at(project).database) as conn:
        [(stored_json,)] = conn.execute("SELECT regions FROM session_conflicts").fetchall()
    [stored] = json.loads(stored_json)
    assert stored["resolved_by"] == "user (cli)"
    assert stored["resolved_at"] > 0
    assert stored["resolution"] == "edited"

    # the new hunks are decided again, then the commit goes through without --force
    assert cli(project, capsys, "sessions", "accept", session)[0] == 0
    code, committed = cli(project, capsys, "sessions", "commit", session, "--json")
    assert code == 0, committed
    assert (project / "calc.py").read_text() == RESOLVED
    # a committed session's conflicts can no longer be resolved
    code, err = cli(
        project, capsys, "sessions", "resolve", session, "calc.py", "--theirs", "--json"
    )
    assert code == 2
    assert "committed" in err["error"]["message"]


def test_taking_theirs_keeps_the_clean_merge_and_an_older_run_does_not_verify_it(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # the tests pass on either side, so the pipeline's run (on ours) passed
    project, replies = conflicting_run(tmp_path, TESTS.replace("== 6\n", "in (4, 6)\n", 1))
    assert run(project, replies, tmp_path, "--json") == 3
    session = json.loads(capsys.readouterr().out)["session"]["id"]
    code, shown = cli(project, capsys, "sessions", "show", session, "--json")
    assert shown["session"]["tests"]["exit_code"] == 0
    code, done = cli(
        project,
        capsys,
        "sessions",
        "resolve",
        session,
        "calc.py",
        "--region",
        "1",
        "--theirs",
        "--no-tests",
        "--json",
    )
    assert code == 0, done
    assert done["changed"]
    assert done["tests"] is None
    code, diff = cli(project, capsys, "sessions", "diff", session, "--json")
    body = "".join(line for h in diff["hunks"] for line in h["lines"])
    assert "+    return 3 * x" in body
    assert "+    return b * a" in body
    assert "2 * x" not in body
    # the passing run was on the session's side, not on what resolving made
    code, shown = cli(project, capsys, "sessions", "show", session, "--json")
    assert shown["session"]["verified"] is False
    # the commit tests what is committed (the session changed after its run) and goes on
    assert cli(project, capsys, "sessions", "accept", session)[0] == 0
    code, out = cli(project, capsys, "sessions", "commit", session)
    assert code == 0, out
    assert (project / "calc.py").read_text() == RESOLVED


def _hunk_authors(shown: dict[str, Any], path: str) -> dict[str, str]:
    """Each hunk of ``path`` in `sessions show --json`: its id -> its agent."""
    [file] = [f for f in shown["session"]["files"] if f["path"] == path]
    return {h["id"]: h["agent"] for h in file["hunks"]}


def test_hunks_the_user_resolved_are_credited_to_the_user(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Observed: the hunk a resolution wrote was credited to the Coder (the session's last
    # writing agent), as if the model had written what the user chose.
    project, replies = conflicting_run(tmp_path)
    assert run(project, replies, tmp_path, "--json") == 3
    session = json.loads(capsys.readouterr().out)["session"]["id"]
    _, shown = cli(project, capsys, "sessions", "show", session, "--json")
    before = _hunk_authors(shown, "calc.py")
    assert set(before.values()) == {"coder"}
    _, done = cli(project, capsys, "sessions", "resolve", session, "calc.py", "--theirs", "--json")
    assert done["changed"] is True, done
    _, shown = cli(project, capsys, "sessions", "show", session, "--json")
    after = _hunk_authors(shown, "calc.py")
    new = {h: who for h, who in after.items() if h not in before}
    assert new, after  # the resolution wrote a hunk of its own
    assert set(new.values()) == {"user (cli)"}
    kept = {h: who for h, who in after.items() if h in before}
    assert set(kept.values()) <= {"coder"}  # the Coders' own hunks keep their credit

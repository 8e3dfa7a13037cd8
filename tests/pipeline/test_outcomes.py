"""Outcomes that are true: `briotui run` on a real repository with real agents says which
subtasks failed and why, never verifies an empty session, merges every conflict-free
change of a conflicting branch, and exits with the code of its outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, edit, repo

from briotui.cli.main import main

pytestmark = pytest.mark.slow

NEVER_MATCHES = edit("calc.py", "    return a - b  # not in the file", "    return 0")


def council(*subtasks: dict[str, Any]) -> dict[str, Any]:
    return {"agent": "council", "text": json.dumps({"subtasks": list(subtasks)})}


def run(project: Path, replies: list[dict[str, Any]], tmp: Path, *extra: str) -> int:
    path = tmp / "replies.json"
    path.write_text(json.dumps(replies))
    return main(["-C", str(project), "run", "Change it", "--provider", f"scripted:{path}", *extra])


INVALID_PATH = edit("../outside.py", "    return a + b", "    return 0")


@pytest.mark.parametrize(
    ("reply", "why"),
    [(NEVER_MATCHES, "SEARCH"), (INVALID_PATH, "outside.py")],
    ids=["search-never-matches", "invalid-path"],
)
def test_a_coder_that_applies_nothing_fails_the_run(
    tmp_path: Path,
    built_agents: list[str],
    capsys: pytest.CaptureFixture[str],
    reply: str,
    why: str,
) -> None:
    project = repo(tmp_path / "proj", FILES)
    # nothing applies: every round of the Coder, and of the Foreman's retry
    replies = [
        council({"title": "sub", "goal": "Add sub to calc.py", "files": ["calc.py"]}),
        *[{"agent": "coder", "text": reply}] * 6,
    ]
    code = run(project, replies, tmp_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 2, data
    assert data["outcome"] == "failed"
    assert data["exit_code"] == 2
    assert data["verified"] is False  # an empty session is never verified
    [failed] = data["failed_subtasks"]
    assert failed["goal"] == "Add sub to calc.py"
    assert why in failed["reason"]
    assert data["session"]["files"] == []
    assert "tests passed" not in data["summary"]
    # the task tree says it too (what the TUI shows)
    [top] = [t for t in data["tasks"].values() if t["parent"] is None]
    assert "failed: " in top["outcome"]["summary"]
    assert why in top["outcome"]["summary"]
    coders = [t for t in data["tasks"].values() if t["agent"] == "coder"]
    assert {t["status"] for t in coders} == {"failed"}
    # and the text output names the subtask and why
    code = run(project, replies, tmp_path)
    out = capsys.readouterr().out
    assert code == 2
    assert "failed: " in out
    assert "why: " in out
    assert "Outcome: failed (nothing was changed)" in out
    assert "verified" not in out


def one_of_two_fails() -> list[dict[str, Any]]:
    """A plan of two subtasks: the shout one is coded, every attempt at sub misses."""
    return [
        council(
            {"title": "shout", "goal": "Make shout add a bang", "files": ["text.py"]},
            {"title": "sub", "goal": "Add sub to calc.py", "files": ["calc.py"]},
        ),
        {
            "agent": "coder",
            "match": "bang",
            "text": edit("text.py", "    return s.upper()", '    return s.upper() + "!"'),
        },
        *[{"agent": "coder", "match": "Add sub", "text": NEVER_MATCHES}] * 6,
        {"agent": "reviewer", "text": json.dumps({"verdict": "approve", "findings": []})},
    ]


def test_one_failed_subtask_of_two_makes_the_run_partial(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    replies = one_of_two_fails()
    code = run(project, replies, tmp_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 3, data
    assert data["outcome"] == "partial"
    assert [f["goal"].split("\n")[0] for f in data["failed_subtasks"]] == ["Add sub to calc.py"]
    assert data["summary"].startswith("1 of 2 subtask(s) coded")
    assert [f["path"] for f in data["session"]["files"]] == ["text.py"]


CALC = (
    "def add(a, b):\n    return a + b\n\n\n"
    "# one\n# two\n# three\n# four\n# five\n# six\n\n\n"
    "def mul(a, b):\n    return a * b\n"
)


def test_a_conflicting_branch_keeps_its_conflict_free_changes(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # the project's test passes on either side of the conflict
    passes = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) in (10, 15)\n"
    project = repo(tmp_path / "proj", {**FILES, "calc.py": CALC, "tests/test_calc.py": passes})
    replies = [
        council(
            {"title": "double", "goal": "Make add double the sum", "files": ["calc.py"]},
            {
                "title": "triple",
                "goal": "Make add triple the sum, mul twice, shout bang",
                "files": ["calc.py", "text.py"],
            },
        ),
        {
            "agent": "coder",
            "match": "double the sum",
            "text": edit("calc.py", "    return a + b", "    return 2 * (a + b)"),
        },
        {
            "agent": "coder",
            "match": "triple",
            "text": edit("calc.py", "    return a + b", "    return 3 * (a + b)")
            + edit("calc.py", "    return a * b", "    return 2 * a * b")
            + edit("text.py", "    return s.upper()", '    return s.upper() + "!"'),
        },
        {"agent": "reviewer", "text": json.dumps({"verdict": "approve", "findings": []})},
    ]
    code = run(project, replies, tmp_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 3, data
    assert data["outcome"] == "partial"
    assert data["verified"] is False
    # the tests passed; the conflict is the user's to resolve, so no fix round ran
    assert data["tests_passed"] is True
    assert data["fix_rounds"] == 0
    assert not [t for t in data["tasks"].values() if "fix" in t["id"].rsplit(".", 1)[-1]]
    assert "tests passed, but not verified while conflicts wait" in data["summary"]
    # the conflicting branch's other file and its conflict-free region were merged
    assert sorted(f["path"] for f in data["session"]["files"]) == ["calc.py", "text.py"]
    [conflict] = data["merge"]["conflicts"]
    assert conflict["merged"] == ["calc.py", "text.py"]
    [file] = conflict["files"]
    [region] = file["regions"]
    assert "2 * (a + b)" in region["ours"]
    assert "3 * (a + b)" in region["theirs"]
    # the counts say what happened
    foreman = next(t for t in data["tasks"].values() if t["agent"] == "foreman")
    assert "1 merged cleanly" in foreman["outcome"]["summary"]
    assert "1 merged with conflicts" in foreman["outcome"]["summary"]
    assert "1 merged cleanly; 1 merged with conflicts" in data["summary"]
    session = data["session"]["id"]
    assert main(["-C", str(project), "sessions", "show", session, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["session"]
    [listed] = shown["conflicts"]
    assert listed["path"] == "calc.py"
    assert "3 * (a + b)" in listed["regions"][0]["theirs"]
    assert shown["verified"] is False


def test_sessions_show_has_verification_review_tests_and_provenance(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    replies = [
        council({"title": "sub", "goal": "Add sub to calc.py", "files": ["calc.py"]}),
        {
            "agent": "coder",
            "text": edit(
                "calc.py",
                "    return a + b",
                "    return a + b\n\n\ndef sub(a, b):\n    return a - b",
            ),
        },
        {
            "agent": "reviewer",
            "text": json.dumps(
                {
                    "verdict": "approve",
                    "findings": [{"hunk": "", "severity": "info", "message": "Test sub too."}],
                }
            ),
        },
    ]
    assert run(project, replies, tmp_path, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "verified"
    assert data["exit_code"] == 0
    session = data["session"]["id"]
    assert main(["-C", str(project), "sessions", "show", session, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["session"]
    assert shown["verified"] is True
    assert shown["review"]["verdict"] == "approve"
    assert shown["review"]["findings"][0]["message"] == "Test sub too."
    assert shown["tests"]["exit_code"] == 0
    assert shown["tests"]["argv"] == ["python", "-m", "pytest", "-q"]
    [file] = shown["files"]
    assert {h["agent"] for h in file["hunks"]} == {"coder"}
    assert {h["model"] for h in file["hunks"]} != {""}
    assert main(["-C", str(project), "sessions", "show", session]) == 0
    text = capsys.readouterr().out
    assert "verification: verified" in text
    assert "review: approve" in text
    assert "Test sub too." in text
    assert "tests: python -m pytest -q passed (exit 0" in text
    assert " by coder" in text
    assert main(["-C", str(project), "sessions", "diff", session, "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    [hunk] = diff["hunks"]
    assert hunk["header"].startswith("@@")
    assert "+def sub(a, b):\n" in hunk["lines"]


def test_branch_sessions_close_when_merged_and_a_failed_run_is_discarded(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    replies = one_of_two_fails()
    run(project, replies, tmp_path, "--json")
    session = json.loads(capsys.readouterr().out)["session"]["id"]
    assert main(["-C", str(project), "sessions", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sessions"]
    assert [s["id"] for s in listed if s["state"] == "open"] == [session]
    assert len(listed) > 1  # the branches are kept in history
    # a run where nothing was changed leaves no open session either
    replies = [
        council({"title": "sub", "goal": "Add sub to calc.py", "files": ["calc.py"]}),
        *[{"agent": "coder", "text": NEVER_MATCHES}] * 6,
    ]
    run(project, replies, tmp_path, "--json")
    failed = json.loads(capsys.readouterr().out)["session"]
    assert failed["state"] == "discarded"
    assert main(["-C", str(project), "sessions", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sessions"]
    assert [s["id"] for s in listed if s["state"] == "open"] == [session]

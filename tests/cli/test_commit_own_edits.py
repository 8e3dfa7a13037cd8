"""`sessions commit --git` with the user's own edits around: the git commit holds only
the accepted hunks, says who really changed a file, and is never empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from briotui.cli.main import main

from .test_run_session_flow import BEFORE, git, run_json

pytestmark = pytest.mark.slow


def block(old: str, new: str) -> str:
    return f"app.py\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"


@pytest.fixture
def lines_project(project: Path) -> Path:
    (project / "app.py").write_text(BEFORE)
    git(project, "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qam", "forty lines")
    return project


def coder_session(project: Path, capsys: pytest.CaptureFixture[str], reply: str) -> str:
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps([reply]))
    code, ran = run_json(
        capsys,
        *("-C", str(project), "run", "edit app.py", "--agent", "coder"),
        *("--provider", f"scripted:{replies}", "--json"),
    )
    assert code == 0, ran
    return str(ran["session"]["id"])


def test_the_git_commit_holds_only_the_accepted_hunks_not_my_edits(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    session = coder_session(project, capsys, block("line 38", "line thirty-eight"))
    # my own uncommitted edit in the same file, after the session started
    (project / "app.py").write_text(BEFORE.replace("line 2\n", "line 2 (mine)\n"))
    assert main(["-C", str(project), "sessions", "accept", session]) == 0
    capsys.readouterr()
    assert main(["-C", str(project), "sessions", "commit", session, "--git", "-m", "38"]) == 0
    out = capsys.readouterr().out
    assert "your own edits stay in the working tree, unstaged" in out
    text = (project / "app.py").read_text()
    assert "line 2 (mine)\n" in text
    assert "line thirty-eight\n" in text
    shown = git(project, "show", "--format=", "HEAD")
    assert "+line thirty-eight" in shown
    assert "mine" not in shown
    assert "mine" not in git(project, "diff", "--cached")
    assert "+line 2 (mine)" in git(project, "diff")  # unstaged, as git add -p leaves it


def test_a_conflict_after_briotuis_own_commit_names_that_commit(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    first = coder_session(project, capsys, block("line 5", "line five"))
    second = coder_session(project, capsys, block("line 5", "line FIVE"))
    for session in (first, second):
        assert main(["-C", str(project), "sessions", "accept", session]) == 0
    assert main(["-C", str(project), "sessions", "commit", first, "--git"]) == 0
    capsys.readouterr()
    assert main(["-C", str(project), "sessions", "commit", second]) == 2
    err = capsys.readouterr().err
    assert f"briotui's commit of session {first} changed it" in err
    assert "You changed" not in err


def test_no_empty_git_commit(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    session = coder_session(project, capsys, block("line 7", "line seven"))
    assert main(["-C", str(project), "sessions", "accept", session]) == 0
    assert main(["-C", str(project), "sessions", "commit", session]) == 0
    git(project, "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qam", "mine")
    head = git(project, "rev-parse", "HEAD")
    capsys.readouterr()
    assert main(["-C", str(project), "sessions", "commit", session, "--git"]) == 2
    assert "Nothing to git-commit" in capsys.readouterr().err
    assert git(project, "rev-parse", "HEAD") == head


def test_a_committed_session_refuses_accept_and_reject(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    session = coder_session(project, capsys, block("line 9", "line nine"))
    assert main(["-C", str(project), "sessions", "accept", session]) == 0
    assert main(["-C", str(project), "sessions", "commit", session]) == 0
    capsys.readouterr()
    for verb in ("accept", "reject"):
        assert main(["-C", str(project), "sessions", verb, session]) == 2
        assert "committed" in capsys.readouterr().err


def test_prune_discards_what_piles_up_and_keeps_it_in_history(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from briotui.kernel.vfs import SessionManager

    project = lines_project
    kept = coder_session(project, capsys, block("line 3", "line three"))
    manager = SessionManager.open(project)
    try:
        empty = manager.create(label="old", task="an empty one").id
        branch = manager.get(kept).fork(label="a merged branch").id
    finally:
        manager.close()
    code, pruned = run_json(capsys, "-C", str(project), "sessions", "prune", "--json")
    assert code == 0
    assert sorted(pruned["discarded"]) == sorted([empty, branch])
    code, listed = run_json(capsys, "-C", str(project), "sessions", "list", "--json")
    states = {s["id"]: s["state"] for s in listed["sessions"]}
    assert states == {kept: "open", empty: "discarded", branch: "discarded"}


def test_a_run_that_changed_nothing_leaves_no_open_session(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps([block("no such line", "x")] * 3))
    _, ran = run_json(
        capsys,
        *("-C", str(project), "run", "edit app.py", "--agent", "coder"),
        *("--provider", f"scripted:{replies}", "--json"),
    )
    assert ran["session"]["files"] == []
    assert ran["session"]["state"] == "discarded"
    _, listed = run_json(capsys, "-C", str(project), "sessions", "list", "--json")
    assert [s["state"] for s in listed["sessions"]] == ["discarded"]

"""Issue 12's smaller things, through the real command line (in-process and as a real
process) over real git repositories: the project root from a subdirectory, a shareable
``.brio/``, a closed pipe, ``-C`` to nowhere, a bad hunk id, an empty request, one doctor
sentence, and one commit message for the TUI and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.scripted import git

from briotui.cli.main import EXIT_BROKEN_PIPE, main
from briotui.kernel.paths import GITIGNORE
from briotui.kernel.vfs import SessionManager

SRC = Path(__file__).resolve().parents[2] / "src"


def session_with_a_change(project: Path, task: str = "comment the sum") -> str:
    """A session of ``project`` with one hunk in app.py; returns its id."""
    manager = SessionManager.open(project)
    try:
        session = manager.create(label="coder", task=task)
        session.write("app.py", b"def add(a, b):\n    return a + b  # the sum\n", False)
        return session.id
    finally:
        manager.close()


@pytest.mark.parametrize(
    "argv",
    [["sessions", "list", "--json"], ["tasks", "list"], ["audit"]],
    ids=["sessions", "tasks", "audit"],
)
def test_a_subdirectory_of_the_repository_uses_its_root(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    session_id = session_with_a_change(project)
    sub = project / "pkg" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert main(argv) == 0
    assert main(["-C", str(project / "pkg"), *argv]) == 0
    assert not (sub / ".brio").exists()
    assert not (project / "pkg" / ".brio").exists()
    capsys.readouterr()
    assert main(["sessions", "list", "--json"]) == 0  # from the subdirectory: the root's
    listed = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in listed["sessions"]] == [session_id]


def test_the_brio_folder_shares_config_and_agents_but_not_local_state(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(project), "sessions", "list"]) == 0
    assert git(project, "status", "--porcelain") == ""  # nothing to commit yet
    (project / ".brio" / "agents" / "mine").mkdir(parents=True)
    (project / ".brio" / "config.toml").write_text("# the team's settings\n")
    (project / ".brio" / "agents" / "mine" / "app.py").write_text("# an agent\n")
    session_with_a_change(project)  # a database and session data in .brio/
    assert main(["-C", str(project), "sessions", "list"]) == 0
    status = git(project, "status", "--porcelain", "--untracked-files=all").split("\n")
    untracked = sorted(line[3:] for line in status if line)
    assert untracked == [".brio/agents/mine/app.py", ".brio/config.toml"]
    assert (project / ".brio" / "state.db").exists()


def test_an_old_brio_gitignore_is_updated_but_a_users_own_is_kept(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, edited = project, tmp_path / "edited"
    edited.mkdir()
    git(edited, "init", "-q")
    for root in (old, edited):
        (root / ".brio").mkdir()
    (old / ".brio" / ".gitignore").write_text("# briotui's local state\n*\n")
    (edited / ".brio" / ".gitignore").write_text("# mine\n*\n!config.toml\n")
    for root in (old, edited):
        assert main(["-C", str(root), "sessions", "list"]) == 0
    assert (old / ".brio" / ".gitignore").read_text() == GITIGNORE
    assert (edited / ".brio" / ".gitignore").read_text() == "# mine\n*\n!config.toml\n"


def test_a_closed_pipe_ends_the_output_quietly(project: Path) -> None:
    session_with_a_change(project)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "briotui", "-C", str(project), "sessions", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # the reader goes away before anything is written (| head -0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert err == ""


def test_a_missing_project_directory_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import briotui.ui.app

    def no_tui(*args: object, **kwargs: object) -> object:
        raise AssertionError("the TUI started")

    monkeypatch.setattr(briotui.ui.app, "make_app", no_tui)
    missing = tmp_path / "nowhere"
    assert main(["-C", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "No such project directory" in err
    assert f"{missing} does not exist" in err
    assert not missing.exists()


def test_a_bad_hunk_id_is_no_such_hunk_and_lists_the_hunks(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = session_with_a_change(project)
    manager = SessionManager.open(project)
    try:
        [hunk] = manager.get(session_id).diff().hunks()
    finally:
        manager.close()
    assert main(["-C", str(project), "sessions", "accept", session_id, "h-ffff0000"]) == 2
    err = capsys.readouterr().err
    assert "No such hunk" in err
    assert "No such file" not in err
    assert f"h-{hunk.id} (app.py)" in err


@pytest.mark.parametrize("request_text", ["", "   "])
def test_an_empty_request_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str], request_text: str
) -> None:
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps([]))
    code = main(
        ["-C", str(project), "run", request_text, "--provider", f"scripted:{replies}", "--json"]
    )
    assert code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["kind"] == "empty-request"
    manager = SessionManager.open(project)
    try:
        assert manager.list() == []  # no pipeline ran, no session was made
    finally:
        manager.close()


def test_doctor_says_what_to_do_about_a_broken_config_once(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".brio").mkdir()
    (project / ".brio" / "config.toml").write_text("[llm\n")
    main(["-C", str(project), "doctor", "--json"])
    [check] = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "config"]
    said = f"{check['detail']} {check['fix']}"
    assert said.count("Fix") == 1, said


LONG_TASK = (
    "Add a --verbose flag to the command line interface so that users can see what the "
    "tool is doing while it runs"
)


def test_the_cli_commit_message_has_a_whole_word_subject_and_the_provenance(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in (("NAME", "Test"), ("EMAIL", "test@example.com")):
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", value)
    session_id = session_with_a_change(project, task=LONG_TASK)
    assert main(["-C", str(project), "sessions", "accept", session_id]) == 0
    assert main(["-C", str(project), "sessions", "commit", session_id, "--git"]) == 0
    subject, _, body = git(project, "log", "-1", "--format=%B").partition("\n")
    assert subject.endswith("…")
    assert len(subject) <= 72
    assert LONG_TASK.startswith(subject[:-1])
    assert LONG_TASK[len(subject) - 1] == " "  # cut between words
    assert LONG_TASK in body  # nothing of the request is lost
    assert f"Approved hunk by hunk in briotui (session {session_id})." in body

"""``briotui sessions ...`` end to end through ``briotui.cli.main.main``."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from briotui.cli.main import main
from briotui.kernel.vfs import SessionManager


def _session(repo_dir: Path) -> str:
    m = SessionManager.open(repo_dir)
    s = m.create(task="Make util return 2")
    s.write("src/util.py", b"def f():\n    return 2\n", False)
    s.write("extra.txt", b"extra\n", False)
    m.close()
    return s.id


def _json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    out = capsys.readouterr().out
    return json.loads(out)  # type: ignore[no-any-return]


def test_list_show_diff(repo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sid = _session(repo_dir)
    assert main(["-C", str(repo_dir), "sessions", "list", "--json"]) == 0
    data = _json(capsys)
    assert data["sessions"][0]["id"] == sid
    assert data["sessions"][0]["changed_files"] == 2
    assert main(["-C", str(repo_dir), "sessions", "list"]) == 0
    assert sid in capsys.readouterr().out
    assert main(["-C", str(repo_dir), "sessions", "show", sid, "--json"]) == 0
    files = _json(capsys)["session"]["files"]
    assert {f["path"] for f in files} == {"src/util.py", "extra.txt"}
    assert main(["-C", str(repo_dir), "sessions", "diff", sid]) == 0
    out = capsys.readouterr().out
    assert "+    return 2" in out
    assert "#h-" in out
    assert "\x1b[" not in out
    assert main(["-C", str(repo_dir), "sessions", "diff", sid, "--color", "always"]) == 0
    assert "\x1b[" in capsys.readouterr().out


def test_accept_reject_commit_rollback(repo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sid = _session(repo_dir)
    main(["-C", str(repo_dir), "sessions", "show", sid, "--json"])
    files = {f["path"]: f for f in _json(capsys)["session"]["files"]}
    util_hunk = files["src/util.py"]["hunks"][0]["id"]
    extra_hunk = files["extra.txt"]["hunks"][0]["id"]
    assert main(["-C", str(repo_dir), "sessions", "accept", sid, f"h-{util_hunk}", "--json"]) == 0
    assert _json(capsys)["hunks"] == [util_hunk]
    assert (
        main(
            [
                "-C",
                str(repo_dir),
                "sessions",
                "reject",
                sid,
                extra_hunk[:6],
                "--reason",
                "not needed",
                "--json",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["-C", str(repo_dir), "sessions", "commit", sid, "--git", "-m", "msg", "--json"]) == 0
    )
    result = _json(capsys)
    assert result["written"] == ["src/util.py"]
    assert result["git_commit"]
    message = str(git.Repo(repo_dir).head.commit.message).strip()
    assert message == f"msg\n\nApproved hunk by hunk in briotui (session {sid})."
    assert not (repo_dir / "extra.txt").exists()
    assert main(["-C", str(repo_dir), "sessions", "rollback", sid, "--json"]) == 0
    assert _json(capsys)["git_reverted"] is True
    assert (repo_dir / "src/util.py").read_text() == "def f():\n    return 1\n"


def test_errors_are_title_and_message(repo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(repo_dir), "sessions", "show", "s-missing"]) == 2
    err = capsys.readouterr().err
    assert "No such session" in err
    assert "Traceback" not in err
    sid = _session(repo_dir)
    assert main(["-C", str(repo_dir), "sessions", "commit", sid, "--json"]) == 2
    assert _json(capsys)["error"]["kind"] == "commit-refused"


def test_non_git_project_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    assert main(["-C", str(tmp_path), "sessions", "list"]) == 0
    assert "not a git repository" in capsys.readouterr().out

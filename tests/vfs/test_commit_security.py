"""Commit attacks from the security review, reproduced through the real CLI and sessions.

* A repository that plants symlinks at the commit's temporary-file names, or makes a
  parent directory a symlink, must not make ``sessions commit`` write through them.
* A ``--git`` commit interrupted between the file update and the git commit is
  finished (by recovery, or by running ``sessions commit ID --git`` again).
* A repository with a required git filter whose command fails does not break sessions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import git
import pytest

from briotui.cli.main import main
from briotui.kernel.errors import PathDenied, PathRefused
from briotui.kernel.vfs import SessionManager
from briotui.kernel.vfs.commit import JournalFile, apply_journaled

NEW_UTIL = b"def f():\n    return 2\n"


def _cli(root: Path, *args: str) -> int:
    return main(["-C", str(root), "sessions", *args])


def _session(root: Path, files: dict[str, bytes], *, task: str = "change util") -> str:
    m = SessionManager.open(root)
    try:
        s = m.create(task=task)
        for rel, data in files.items():
            s.write(rel, data, False)
        return s.id
    finally:
        m.close()


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, check=True
    ).stdout.decode()


# -- 1. symlinks planted by the repository ---------------------------------------------


def test_planted_temp_name_symlinks_are_not_written_through(
    repo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The repository commits symlinks at every temp name the old commit would use."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    for commit_id in range(1, 4):
        for seq in range(4):
            for d, name in (("src", "util.py"), ("", "new.txt")):
                link = repo_dir / d / f".{name}.brio-{commit_id}-{seq}.tmp"
                link.symlink_to(victim)
    repo = git.Repo(repo_dir)
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "plant links", "--no-verify")
    sid = _session(repo_dir, {"src/util.py": NEW_UTIL, "new.txt": b"new\n"})
    assert _cli(repo_dir, "accept", sid) == 0
    assert _cli(repo_dir, "commit", sid) == 0
    capsys.readouterr()
    assert victim.read_bytes() == b"precious\n"
    for rel, data in (("src/util.py", NEW_UTIL), ("new.txt", b"new\n")):
        p = repo_dir / rel
        assert not p.is_symlink()
        assert p.read_bytes() == data
    # the planted links are the repository's content: untouched
    assert (repo_dir / "src/.util.py.brio-1-0.tmp").is_symlink()


def test_symlinked_parent_directory_is_refused(
    repo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A parent that is a symlink (even one inside the project) is never followed."""
    sid = _session(repo_dir, {"lib/new.py": b"x = 1\n", "src/util.py": NEW_UTIL})
    (repo_dir / "lib").symlink_to("src")
    assert _cli(repo_dir, "accept", sid) == 0
    capsys.readouterr()
    assert _cli(repo_dir, "commit", sid) != 0
    err = capsys.readouterr().err
    assert "symlink" in err
    assert "lib" in err
    assert "Traceback" not in err
    assert not (repo_dir / "src/new.py").exists()
    assert (repo_dir / "src/util.py").read_bytes() == b"def f():\n    return 1\n"
    m = SessionManager.open(repo_dir)
    assert m.get(sid).state == "open"
    m.close()


_COMMIT_CHILD = """
import sys
from briotui.cli.main import main
sys.exit(main(["-C", sys.argv[1], "sessions", "commit", sys.argv[2], *sys.argv[3:]]))
"""


def _commit_killed_at(root: Path, sid: str, point: str, *extra: str) -> None:
    env = {**os.environ, "BRIOTUI_FAILPOINT": point}
    proc = subprocess.run(
        [sys.executable, "-c", _COMMIT_CHILD, str(root), sid, *extra],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_recovery_does_not_follow_a_symlink_planted_after_a_crash(
    repo_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    sid = _session(repo_dir, {"added/new.txt": b"new\n", "src/util.py": NEW_UTIL})
    m = SessionManager.open(repo_dir)
    m.get(sid).accept()
    m.close()
    _commit_killed_at(repo_dir, sid, "after-journal:1")
    (repo_dir / "added").symlink_to(outside)
    m = SessionManager.open(repo_dir)  # recovers, without following ``added``
    try:
        assert list(outside.iterdir()) == []
        assert any("added/new.txt" in n for n in m.recovery_notices)
        assert (repo_dir / "src/util.py").read_bytes() == NEW_UTIL
        assert m.get(sid).state == "committed"
    finally:
        m.close()


def test_symlink_entries_are_applied_as_links(manager: SessionManager, repo_dir: Path) -> None:
    """A journaled symlink entry becomes a link (target = blob bytes), never a write
    through an existing link; rolling back restores what was there."""
    outside = repo_dir.parent / "outside.txt"
    outside.write_bytes(b"outside\n")
    (repo_dir / "trap").symlink_to(outside)
    old_readme = (repo_dir / "README.md").read_bytes()
    target = manager.blobs.put(b"README.md")
    data = manager.blobs.put(b"not a link\n")
    files = [
        JournalFile("link", None, False, target, False, new_symlink=True),
        JournalFile(
            "trap", manager.blobs.put(os.fsencode(outside)), False, data, False, old_symlink=True
        ),
        JournalFile(
            "README.md", manager.blobs.put(old_readme), False, target, False, new_symlink=True
        ),
    ]
    s = manager.create()
    apply_journaled(manager, s.id, files, message="links", mark_session=None)
    assert os.readlink(repo_dir / "link") == "README.md"
    assert (repo_dir / "README.md").is_symlink()
    assert not (repo_dir / "trap").is_symlink()
    assert (repo_dir / "trap").read_bytes() == b"not a link\n"
    assert outside.read_bytes() == b"outside\n"


# -- 2. --git commits are finished after a crash ---------------------------------------


def _prepared(repo_dir: Path) -> str:
    sid = _session(repo_dir, {"src/util.py": NEW_UTIL, "added.txt": b"added\n"})
    assert _cli(repo_dir, "accept", sid) == 0
    return sid


def test_crash_after_files_before_git_commit_is_finished_on_open(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _git(repo_dir, "rev-parse", "HEAD").strip()
    sid = _prepared(repo_dir)
    # after-done: the old code had applied the files and marked the session committed,
    # but not made the git commit yet
    _commit_killed_at(repo_dir, sid, "after-done:1", "--git")
    m = SessionManager.open(repo_dir)
    m.close()
    new_head = _git(repo_dir, "rev-parse", "HEAD").strip()
    assert new_head != head
    assert _git(repo_dir, "rev-parse", "HEAD^").strip() == head
    assert _git(repo_dir, "show", "HEAD:src/util.py").encode() == NEW_UTIL
    assert _git(repo_dir, "show", "HEAD:added.txt") == "added\n"
    assert _git(repo_dir, "diff-index", "--cached", "--name-only", "HEAD") == ""


def test_git_step_that_could_not_happen_is_completed_by_commit_again(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed between the files and the git commit; the user commits in git meanwhile,
    so recovery cannot finish it on the old HEAD; ``sessions commit ID --git`` does."""
    sid = _prepared(repo_dir)
    for point in ("before-done:1", "after-done:1"):
        # whichever of the two is between the files and the git commit
        _commit_killed_at(repo_dir, sid, point, "--git")
        if (repo_dir / "added.txt").exists():
            break
    assert (repo_dir / "added.txt").read_bytes() == b"added\n"
    (repo_dir / "other.txt").write_text("user's own\n")
    _git(repo_dir, "add", "other.txt")
    _git(repo_dir, "-c", "user.name=U", "-c", "user.email=u@x", "commit", "-qm", "user")
    user_head = _git(repo_dir, "rev-parse", "HEAD").strip()
    capsys.readouterr()
    assert _cli(repo_dir, "list") == 0
    err = capsys.readouterr().err
    assert f"sessions commit {sid} --git" in err
    assert _cli(repo_dir, "commit", sid, "--git") == 0
    out = capsys.readouterr().out
    assert "git commit" in out
    assert _git(repo_dir, "rev-parse", "HEAD^").strip() == user_head
    assert _git(repo_dir, "show", "HEAD:src/util.py").encode() == NEW_UTIL
    assert _git(repo_dir, "show", "HEAD:other.txt") == "user's own\n"
    assert _git(repo_dir, "diff-index", "--cached", "--name-only", "HEAD") == ""
    # and now it is done: a third attempt is refused
    assert _cli(repo_dir, "commit", sid, "--git") != 0


def test_git_step_failure_keeps_files_and_can_be_retried(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index is locked by another git: the files are applied, the error says how to
    finish, and ``sessions commit ID --git`` finishes once the lock is gone."""
    head = _git(repo_dir, "rev-parse", "HEAD").strip()
    sid = _prepared(repo_dir)
    lock = repo_dir / ".git" / "index.lock"
    lock.write_bytes(b"")
    capsys.readouterr()
    assert _cli(repo_dir, "commit", sid, "--git") != 0
    err = capsys.readouterr().err
    assert f"sessions commit {sid} --git" in err
    assert (repo_dir / "added.txt").read_bytes() == b"added\n"
    assert _git(repo_dir, "rev-parse", "HEAD").strip() == head
    lock.unlink()
    assert _cli(repo_dir, "commit", sid, "--git") == 0
    assert _git(repo_dir, "rev-parse", "HEAD^").strip() == head
    assert _git(repo_dir, "show", "HEAD:added.txt") == "added\n"
    assert _cli(repo_dir, "rollback", sid) == 0
    assert _git(repo_dir, "rev-parse", "HEAD").strip() == head
    assert not (repo_dir / "added.txt").exists()


# -- 3. required filters ----------------------------------------------------------------


@pytest.mark.parametrize("clean", ["false", None])
def test_required_failing_filter_does_not_break_sessions(
    repo_dir: Path, clean: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = repo_dir.parent / "filter-ran"
    (repo_dir / ".gitattributes").write_text("* filter=lfs\n")
    _git(repo_dir, "add", ".gitattributes")
    _git(repo_dir, "-c", "user.name=U", "-c", "user.email=u@x", "commit", "-qm", "attrs")
    _git(repo_dir, "config", "filter.lfs.required", "true")
    if clean is not None:
        _git(repo_dir, "config", "filter.lfs.clean", f"touch {marker}; {clean}")
        _git(repo_dir, "config", "filter.lfs.smudge", f"touch {marker}; {clean}")
    # make files stat-dirty, so git has to hash them (and would run the clean filter)
    for rel in ("README.md", "src/app.py"):
        os.utime(repo_dir / rel, ns=(1, 1))
    (repo_dir / "README.md").write_text("# Project\n\nuser edit\n")
    head = _git(repo_dir, "rev-parse", "HEAD").strip()
    sid = _prepared(repo_dir)
    assert _cli(repo_dir, "commit", sid, "--git") == 0, capsys.readouterr().err
    assert _git(repo_dir, "rev-parse", "HEAD^").strip() == head
    assert _git(repo_dir, "show", "HEAD:src/util.py").encode() == NEW_UTIL
    assert _cli(repo_dir, "rollback", sid) == 0, capsys.readouterr().err
    assert _git(repo_dir, "rev-parse", "HEAD").strip() == head
    assert not marker.exists()


# -- 4. names git refuses on other platforms ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        ".g\u200cit/config",
        ".git\u200b/config",
        "git~1/config",
        "GIT~1",
        ".git::$INDEX_ALLOCATION/config",
        ".git:stream",
        ".git . ./x",
        ".\ufeffgit/x",
        ".b\u200drio/state.db",
        "a\u0085b",
        "x\u2028y",
        "evil\u202etxt.exe",
        "bidi\u2066x\u2069",
        "mark\u200f",
        "c1\x9b[31m",
    ],
)
def test_names_git_refuses_elsewhere_are_refused(manager: SessionManager, name: str) -> None:
    s = manager.create()
    with pytest.raises(PathRefused):
        s.write(name, b"x", False)


@pytest.mark.parametrize(
    "name", ["gitmodules.txt", "git~1x", "note:1.txt", ".gitignore", "emoji\u200d"]
)
def test_harmless_neighbours_are_accepted(manager: SessionManager, name: str) -> None:
    s = manager.create()
    s.write(name, b"x", False)
    assert s.read(name) == b"x"


@pytest.mark.parametrize(
    "name", [".gitmodules", ".GITMODULES ", "gitmod~1", "gi7eba~9", ".gitattributes", ".mailmap"]
)
def test_symlink_named_like_git_metadata_is_refused(manager: SessionManager, name: str) -> None:
    with pytest.raises(PathDenied):
        manager.policy.normalize(f"sub/{name}", symlink=True)
    assert manager.policy.normalize(f"sub/{name}") == f"sub/{name}"


def test_commit_git_after_a_plain_commit_makes_the_git_commit(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _git(repo_dir, "rev-parse", "HEAD").strip()
    sid = _prepared(repo_dir)
    assert _cli(repo_dir, "commit", sid) == 0
    assert _git(repo_dir, "rev-parse", "HEAD").strip() == head
    (repo_dir / "added.txt").write_text("edited since\n")
    capsys.readouterr()
    assert _cli(repo_dir, "commit", sid, "--git") != 0  # not the session's content any more
    assert "added.txt" in capsys.readouterr().err
    (repo_dir / "added.txt").write_text("added\n")
    assert _cli(repo_dir, "commit", sid, "--git", "-m", "later") == 0
    assert _git(repo_dir, "rev-parse", "HEAD^").strip() == head
    assert _git(repo_dir, "log", "-1", "--format=%s") == "later\n"
    assert _git(repo_dir, "show", "HEAD:src/util.py").encode() == NEW_UTIL


def test_a_link_replaced_by_a_file_comes_back_as_a_link_on_rollback(
    repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo_dir / "link").symlink_to("README.md")
    readme = (repo_dir / "README.md").read_bytes()
    sid = _session(repo_dir, {"link": b"a file now\n"})
    assert _cli(repo_dir, "accept", sid) == 0
    assert _cli(repo_dir, "commit", sid) == 0
    assert not (repo_dir / "link").is_symlink()
    assert (repo_dir / "link").read_bytes() == b"a file now\n"
    assert (repo_dir / "README.md").read_bytes() == readme
    assert _cli(repo_dir, "rollback", sid) == 0
    assert os.readlink(repo_dir / "link") == "README.md"
    assert (repo_dir / "README.md").read_bytes() == readme


def test_commit_interrupted_under_an_older_schema_is_recovered_after_upgrade(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal written before the symlink/token/git columns existed (schema v2, the
    old predictable temp names) is migrated, rolled forward and its temp file removed."""
    import briotui.kernel.store.db as db
    from briotui.kernel.store import latest_version, migrations

    old_util = (repo_dir / "src/util.py").read_bytes()
    with monkeypatch.context() as mp:
        v2 = migrations.MIGRATIONS[:2]
        mp.setattr(db, "MIGRATIONS", v2)
        mp.setattr(migrations, "MIGRATIONS", v2)
        m = SessionManager.open(repo_dir)
        s = m.create(task="old briotui")
        with m.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO commits (session_id, state, message, created)"
                " VALUES (?, 'applying', 'old', 0)",
                (s.id,),
            )
            cid = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO commit_files (commit_id, seq, path, old_blob, old_exec, new_blob,"
                " new_exec) VALUES (?, 0, 'src/util.py', ?, 0, ?, 0)",
                (cid, m.blobs.put(old_util), m.blobs.put(NEW_UTIL)),
            )
        m.close()
    legacy = repo_dir / "src" / f".util.py.brio-{cid}-0.tmp"
    legacy.write_bytes(b"half wri")
    m = SessionManager.open(repo_dir)
    try:
        assert m.store.query("SELECT version FROM schema_version")[0][0] == latest_version()
        assert (repo_dir / "src/util.py").read_bytes() == NEW_UTIL
        assert not legacy.exists()
        assert m.get(s.id).state == "committed"
    finally:
        m.close()

"""Crash safety: SIGKILL a committing process at every failpoint, recover, check files.

Each kill point runs a real commit in a child process with ``BRIOTUI_FAILPOINT`` set;
the child dies by SIGKILL at that point. The parent then reopens the project (which
recovers) and checks that every file is entirely old or entirely new, that the set is
all-old or all-new, that the session is intact, and ``PRAGMA integrity_check``.

``sessions commit --git`` is killed over 200 times, in children forked from one
server process: at every failpoint, at random failpoints, at random moments (the whole
process group, git included, like a power cut), sometimes during recovery too. Each
outcome must be all-old files and HEAD, or all-new files with the matching git commit
(made by the commit, by recovery, or, when recovery said it could not because a killed
git left a lock behind, by ``sessions commit ID --git`` as its notice says).
``BRIOTUI_KILL_SEED`` replays a run (its seed is printed).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from briotui.cli.main import main
from briotui.kernel.vfs import SessionManager
from briotui.kernel.vfs.gitio import run_git

from .conftest import BASE_FILES, make_repo

NEW = {
    "src/util.py": b"def f():\n    return 2\n",
    "src/app.py": b"".join(f"line {i}\n".encode() for i in range(1, 41)).replace(
        b"line 7\n", b"seven\n"
    ),
    "added/new.txt": b"brand new\n" * 1000,
    "bin/run.sh": b"#!/bin/sh\necho changed\n",
}
DELETED = ("README.md", "notes.txt")
# The user edits one of the session's files after the session started (another line):
# the commit merges, and its old bytes (yours) and new ones are new blobs, written and
# flushed before the journal. Every other old file is HEAD's, named in git, not copied.
APP_BASE = "".join(f"line {i}\n" for i in range(1, 41)).encode()
USER_EDITED = {"src/app.py": APP_BASE.replace(b"line 35\n", b"thirty-five\n")}
MERGED = {"src/app.py": NEW["src/app.py"].replace(b"line 35\n", b"thirty-five\n")}

# (failpoint, how many times it is hit during one commit)
POINTS = {
    "blob-written": 2,
    "before-journal": 1,
    "after-journal": 1,
    "tmp-partial": 4,
    "tmp-synced": 4,
    "renamed": 4,
    "file-deleted": 2,
    "before-done": 1,
    "after-done": 1,
}

CHILD = """
import sys
from briotui.kernel.vfs import SessionManager
m = SessionManager.open(sys.argv[1])
m.get(sys.argv[2]).commit()
"""


def _old(rel: str) -> bytes | None:
    if rel in USER_EDITED:
        return USER_EDITED[rel]
    data = BASE_FILES.get(rel)
    return data.encode() if isinstance(data, str) else data


def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for rel in [*NEW, *DELETED]:
        p = root / rel
        out[rel] = p.read_bytes() if p.exists() else None
    return out


def _prepare(template: Path, dest: Path) -> str:
    shutil.copytree(template, dest, symlinks=True)
    m = SessionManager.open(dest)
    s = m.create(task="kill test")
    for rel, data in NEW.items():
        s.write(rel, data, rel == "bin/run.sh")
    for rel in DELETED:
        s.delete(rel)
    s.accept()
    m.close()
    for rel, data in USER_EDITED.items():
        (dest / rel).write_bytes(data)
    return s.id


def _run_child(root: Path, sid: str, failpoint: str | None) -> int:
    env = dict(os.environ)
    env.pop("BRIOTUI_FAILPOINT", None)
    if failpoint:
        env["BRIOTUI_FAILPOINT"] = failpoint
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), sid],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return proc.returncode


def _check(root: Path, sid: str) -> str:
    m = SessionManager.open(root)  # recovers
    try:
        assert m.store.integrity_check() == "ok"
        files = _snapshot(root)
        states = set()
        for rel, now in files.items():
            new = MERGED.get(rel, NEW.get(rel))
            old = _old(rel)
            assert now in (old, new), f"{rel} is neither old nor new"
            states.add("new" if now == new else "old")
        assert len(states) == 1, f"mixed old and new files: {files}"
        assert not list(root.rglob("*.brio-*.tmp")), "stray temp files"
        s = m.get(sid)
        state = states.pop()
        if state == "new":
            assert s.state == "committed"
            assert os.stat(root / "bin/run.sh").st_mode & 0o100
        else:
            assert s.state == "open"
            assert {f.path for f in s.diff().files} == {*NEW, *DELETED}
        return state
    finally:
        m.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill") / "template"
    make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    return root


def test_sigkill_at_every_failpoint(template: Path, tmp_path: Path) -> None:
    killed = 0
    outcomes: dict[str, str] = {}
    for name, hits in POINTS.items():
        for count in range(1, hits + 1):
            root = tmp_path / f"{name}-{count}"
            sid = _prepare(template, root)
            code = _run_child(root, sid, f"{name}:{count}")
            assert code == -signal.SIGKILL, f"{name}:{count} exited {code}, not killed"
            killed += 1
            outcomes[f"{name}:{count}"] = _check(root, sid)
    # Killed before the journal: all old. After it: recovery rolls forward, all new.
    before = {k for k in outcomes if k.startswith(("blob-written", "before-journal"))}
    assert all(outcomes[k] == "old" for k in before)
    assert all(v == "new" for k, v in outcomes.items() if k not in before)
    print(f"\n{killed} kill points tried, every file entirely old or new")


def test_sigkill_during_recovery(template: Path, tmp_path: Path) -> None:
    """A crash while recovering is itself recovered from."""
    kills = 0
    for point in ("renamed:1", "renamed:3", "tmp-partial:2", "file-deleted:1"):
        root = tmp_path / point.replace(":", "-")
        sid = _prepare(template, root)
        assert _run_child(root, sid, "tmp-synced:2") == -signal.SIGKILL
        # The child only opens the project, which recovers, and is killed there.
        env = dict(os.environ, BRIOTUI_FAILPOINT=point)
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom briotui.kernel.vfs import SessionManager\n"
                "SessionManager.open(sys.argv[1])",
                str(root),
            ],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        assert _check(root, sid) == "new"
    assert kills >= 2
    print(f"\n{kills} kill points tried during recovery")


def test_rollback_after_a_recovered_commit_restores_every_old_file(
    template: Path, tmp_path: Path
) -> None:
    """Killed among the renames, rolled forward by recovery, then undone: every file
    is back, the ones HEAD held read from git (never copied), the one the user had
    edited from the blob store."""
    root = tmp_path / "undo"
    sid = _prepare(template, root)
    assert _run_child(root, sid, "renamed:2") == -signal.SIGKILL
    assert _check(root, sid) == "new"
    m = SessionManager.open(root)
    try:
        kept_in_git = {
            r["path"]
            for r in m.store.query("SELECT path FROM commit_files WHERE old_git IS NOT NULL")
        }
        assert kept_in_git == {"src/util.py", "bin/run.sh", *DELETED}
        m.get(sid).rollback()
    finally:
        m.close()
    assert _snapshot(root) == {rel: _old(rel) for rel in [*NEW, *DELETED]}
    assert os.stat(root / "bin/run.sh").st_mode & 0o100


def test_commit_without_failpoint_completes(template: Path, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    sid = _prepare(template, root)
    assert _run_child(root, sid, None) == 0
    assert _check(root, sid) == "new"


# -- `sessions commit --git`: random kills, in forked children ----------------------------

GIT_POINTS = {**POINTS, "git-index": 1, "git-ref": 1}
# Kill points that recovery itself passes through (a crash while recovering).
RECOVERY_POINTS = ("tmp-partial", "tmp-synced", "renamed", "file-deleted", "git-index", "git-ref")

# A fork server: imports briotui once, then forks one child per job, so a job costs a
# fork instead of an interpreter start. Each child is its own process group; a kill
# (a failpoint's SIGKILL, or the server's after a random delay) takes the whole group,
# git included, like a power cut. The server reads one JSON job a line and answers one.
SERVER = r"""
import json, os, signal, sys, time
from briotui.cli.main import main
from briotui.kernel.vfs import failpoints

for line in sys.stdin:
    job = json.loads(line)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setpgid(0, 0)
            failpoints._counts.clear()
            os.environ.pop("BRIOTUI_FAILPOINT", None)
            if job["failpoint"]:
                os.environ["BRIOTUI_FAILPOINT"] = job["failpoint"]
            null = os.open(os.devnull, os.O_WRONLY)
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(null, 1)
            os.dup2(log, 2)
            code = main(job["argv"])
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    if job["delay"] is not None:
        time.sleep(job["delay"])
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever it left running (a git) stops too
    except OSError:
        pass
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    out = {"killed": killed, "code": os.waitstatus_to_exitcode(status),
           "seconds": time.monotonic() - start}
    print(json.dumps(out), flush=True)
"""


class ForkServer:
    """Runs ``briotui`` CLI jobs in forked children of one long-lived process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "BRIOTUI_FAILPOINT"},
        )

    def run(
        self, argv: list[str], log: Path, failpoint: str | None = None, delay: float | None = None
    ) -> dict:  # type: ignore[type-arg]
        """Run ``briotui ARGV`` in a forked child (its stderr to ``log``)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        job = {"argv": argv, "log": str(log), "failpoint": failpoint, "delay": delay}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _git_out(root: Path, *args: str, check: bool = True) -> str:
    return run_git(list(args), root, check=check).stdout.decode().strip()


def _head(root: Path) -> tuple[str, str, str]:
    """HEAD, its parent ("" for none) and its tree."""
    head, tree, *parents = _git_out(root, "log", "-1", "--format=%H %T %P").split()
    return head, " ".join(parents), tree


def _entry(root: Path, rel: str) -> tuple[str, bytes] | None:
    p = root / rel
    if p.is_symlink():
        return ("link", os.fsencode(os.readlink(p)))
    return ("file", p.read_bytes()) if p.exists() else None


def _git_template(root: Path) -> tuple[str, str]:
    repo = make_repo(root, BASE_FILES, executable=("bin/run.sh",))
    for sample in (root / ".git" / "hooks").glob("*.sample"):
        sample.unlink()  # less to copy per kill
    m = SessionManager.open(root)
    s = m.create(task="kill test with git")
    for rel, data in NEW.items():
        s.write(rel, data, rel == "bin/run.sh")
    for rel in DELETED:
        s.delete(rel)
    s.accept()
    m.close()
    return s.id, repo.head.commit.hexsha


def _copy(src: str, dst: str) -> None:
    """Copy a file; git objects and session blobs (never changed in place) are linked."""
    if f"{os.sep}objects{os.sep}" in src or f"{os.sep}blobs{os.sep}" in src:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def _remove_stale_locks(root: Path) -> list[str]:
    """What a user does after git says "index.lock exists": remove the stale locks."""
    locks = [p for p in (root / ".git").rglob("*.lock") if p.is_file()]
    for p in locks:
        p.unlink()
    return [p.name for p in locks]


def _check_git(
    root: Path,
    sid: str,
    head0: str,
    tree1: str,
    old: dict[str, tuple[str, bytes] | None],
    told: str = "",
) -> str:
    """Recover (open), then: all-old files and HEAD; or all-new with the matching git
    commit, made by the commit, by recovery, or by `sessions commit --git` again when
    recovery said it could not (here, or in ``told``: what an earlier recovery printed).
    Returns the outcome's name."""
    m = SessionManager.open(root)
    try:
        assert m.store.integrity_check() == "ok"
        notices = list(m.recovery_notices)
        state = m.get(sid).state
        rows = m.store.query("SELECT git_commit FROM commits WHERE session_id = ?", (sid,))
        recorded = [r["git_commit"] for r in rows]
    finally:
        m.close()
    new: dict[str, tuple[str, bytes] | None] = {rel: ("file", data) for rel, data in NEW.items()}
    new.update({rel: None for rel in DELETED})
    now = {rel: _entry(root, rel) for rel in new}
    assert not list(root.rglob(".brio-*.tmp")), "stray temp files"
    head, parent, tree = _head(root)
    if now == old:
        assert state == "open", notices
        assert head == head0
        return "old"
    mixed = {rel for rel in new if now[rel] not in (old[rel], new[rel])}
    assert not mixed, f"files neither old nor new: {mixed}"
    assert now == new, f"mixed old and new files: {now}"
    assert state == "committed", notices
    assert os.stat(root / "bin/run.sh").st_mode & 0o100
    outcome = "new"
    if head == head0:
        # recovery could not finish the git step (a stale lock from a killed git): it
        # must have said so; doing what it says finishes it
        assert any(f"sessions commit {sid} --git" in n for n in [*notices, told]), notices
        _remove_stale_locks(root)
        assert main(["-C", str(root), "sessions", "commit", sid, "--git"]) == 0
        outcome = "new after commit --git again"
        head, parent, tree = _head(root)
        m = SessionManager.open(root)
        try:
            rows = m.store.query("SELECT git_commit FROM commits WHERE session_id = ?", (sid,))
            recorded = [r["git_commit"] for r in rows]
        finally:
            m.close()
    assert (parent, tree) == (head0, tree1)
    assert recorded == [head]
    assert _git_out(root, "diff-index", "--cached", "--name-only", "HEAD") == ""
    return outcome


def test_sigkill_during_commit_git_random(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Over 200 SIGKILLs during `sessions commit --git` (every failpoint, random
    failpoints, random moments, some during recovery too): every outcome is all-old, or
    all-new files with the matching git commit."""
    seed = int(os.environ.get("BRIOTUI_KILL_SEED", "0")) or random.randrange(1 << 30)
    rng = random.Random(seed)
    base = tmp_path_factory.mktemp("gitkill")
    template = base / "template"
    sid, head0 = _git_template(template)
    old = {rel: _entry(template, rel) for rel in [*NEW, *DELETED]}
    server = ForkServer()
    started = time.monotonic()
    try:
        # a clean run: the tree every finished commit must have, and how long one takes
        clean = base / "clean"
        shutil.copytree(template, clean, symlinks=True)
        argv = ["-C", str(clean), "sessions", "commit", sid, "--git"]
        done = server.run(argv, base / "clean.log")
        assert done["code"] == 0, done
        tree1 = _git_out(clean, "rev-parse", "HEAD^{tree}")
        assert _check_git(clean, sid, head0, tree1, old) == "new"
        span = done["seconds"]
        jobs: list[tuple[str | None, float | None]] = [
            (f"{name}:{n}", None) for name, hits in GIT_POINTS.items() for n in range(1, hits + 1)
        ]
        kills = attempts = recovery_kills = 0
        outcomes: Counter[str] = Counter()
        while kills < 210 and attempts < 600:
            if jobs:
                point, delay = jobs.pop()
            elif rng.random() < 0.4:
                name = rng.choice(list(GIT_POINTS))
                point, delay = f"{name}:{rng.randint(1, GIT_POINTS[name])}", None
            else:
                point, delay = None, rng.uniform(0.0, span * 1.2)
            root = base / f"k{attempts}"
            attempts += 1
            shutil.copytree(template, root, symlinks=True, copy_function=_copy)
            argv = ["-C", str(root), "sessions", "commit", sid, "--git"]
            result = server.run(argv, base / "commit.log", point, delay)
            if not result["killed"]:
                assert result["code"] == 0, (point, delay, result)
                outcomes[_check_git(root, sid, head0, tree1, old)] += 1
                continue
            kills += 1
            told = ""
            if rng.random() < 0.15:  # crash the recovery too
                name = rng.choice(RECOVERY_POINTS)
                log = base / "recover.log"
                again = server.run(["-C", str(root), "sessions", "list"], log, f"{name}:1")
                recovery_kills += again["killed"]
                told = log.read_text()
            outcomes[_check_git(root, sid, head0, tree1, old, told)] += 1
            shutil.rmtree(root)
    finally:
        server.close()
    wall = time.monotonic() - started
    print(
        f"\nseed {seed}: {attempts} commits, {kills} killed (+{recovery_kills} during "
        f"recovery), outcomes {dict(outcomes)}, {wall:.1f}s"
    )
    assert kills >= 200
    assert outcomes["old"]
    assert outcomes["new"]

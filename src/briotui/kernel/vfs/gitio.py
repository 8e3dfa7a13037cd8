"""Running git without running anything else: no hooks, pager, fsmonitor, filters, drivers.

Every git command briotui runs goes through :func:`run_git`. It pins the config so git
runs no program the repository or the user configured (hooks, fsmonitor, pager,
external diff, textconv, clean/smudge/process filters, gpg signing) and scrubs the
environment of variables that redirect git (``GIT_DIR``, ``GIT_INDEX_FILE``...). The
user's identity (``user.name``/``user.email``) is still read from their config.

Filters: every filter driver configured for the repository (``filter.<name>.*``, e.g.
git-lfs) gets empty ``clean``/``smudge``/``process`` commands and ``required=false``,
so git reads and stores the bytes as they are instead of running the program, and a
*required* filter whose command fails or is missing does not make git die ("clean
filter 'lfs' failed"). Content briotui writes into git is hashed with
``hash-object --no-filters``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from briotui.kernel.errors import GitError

_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.editor=true",
    "core.sshCommand=false",
    "core.askPass=",
    "credential.helper=",
    "diff.external=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "protocol.allow=never",
)

_SCRUB_PREFIX = ("GIT_",)
_KEEP = {"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"}


def git_binary() -> str | None:
    """The path of the git executable, or None when git is not installed."""
    return shutil.which("git")


def git_env() -> dict[str, str]:
    """A copy of the environment with git redirections and pagers removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIX) or k in _KEEP}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_OPTIONAL_LOCKS="0",
        GIT_CONFIG_NOSYSTEM="1",
        LC_ALL="C",
    )
    return env


_DURABLE_CONFIG = ("core.fsync=added", "core.fsyncMethod=fsync")
"""For the commit step: objects, refs and the index reach the disk before git exits."""


@lru_cache(maxsize=64)
def _filter_overrides(cwd: str) -> tuple[str, ...]:
    """``-c filter.X.clean=`` etc. for every filter driver configured for ``cwd``."""
    proc = subprocess.run(
        [_need_git(), "config", "--name-only", "--get-regexp", r"^filter\."],
        cwd=cwd,
        env=git_env(),
        capture_output=True,
        check=False,
    )
    names: dict[str, None] = {}
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        key = line.strip()
        name, dot, _var = key[len("filter.") :].rpartition(".")
        if dot and name:
            names[name] = None
    out: list[str] = []
    for name in names:
        for var in ("clean=", "smudge=", "process=", "required=false"):
            out += ["-c", f"filter.{name}.{var}"]
    return tuple(out)


def _need_git() -> str:
    git = git_binary()
    if git is None:
        raise GitError("git is not installed or not on PATH. Install git to use this.")
    return git


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    input: bytes | None = None,
    check: bool = True,
    index_file: Path | None = None,
    durable: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` in ``cwd`` with the safe config; returns the completed process.

    Args:
        args: The git command and its arguments.
        cwd: Where to run it (the working tree).
        input: Bytes for git's stdin.
        check: Raise on a non-zero exit.
        index_file: Use this index file instead of the repository's (``GIT_INDEX_FILE``).
        durable: fsync the objects, refs and index git writes.

    Raises:
        GitError: git is missing, or it exited non-zero and ``check`` is true.
    """
    cmd = _git_cmd(args, cwd, durable=durable)
    env = git_env()
    if index_file is not None:
        env["GIT_INDEX_FILE"] = str(index_file)
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, input=input, capture_output=True, check=False)
    if check:
        _check(proc, args, cwd)
    return proc


def _git_cmd(args: Sequence[str], cwd: Path, *, durable: bool = False) -> list[str]:
    cmd = [_need_git()]
    for item in (*_SAFE_CONFIG, *(_DURABLE_CONFIG if durable else ())):
        cmd += ["-c", item]
    cmd += list(_filter_overrides(str(cwd)))
    cmd += list(args)
    return cmd


def _check(proc: subprocess.CompletedProcess[bytes], args: Sequence[str], cwd: Path) -> None:
    if proc.returncode != 0:
        words = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise GitError(f"git {' '.join(args[:2])} failed in {cwd}: {words}")


class GitRun:
    """A git command started by :func:`start_git`, running while the caller works."""

    def __init__(self, proc: subprocess.Popen[bytes], args: Sequence[str], cwd: Path) -> None:
        self._proc = proc
        self._args = list(args)
        self._cwd = cwd

    def result(self) -> subprocess.CompletedProcess[bytes]:
        """Wait for git and return what it did.

        Raises:
            GitError: git exited non-zero.
        """
        out, err = self._proc.communicate()
        proc = subprocess.CompletedProcess(self._args, self._proc.returncode, out, err)
        _check(proc, self._args, self._cwd)
        return proc

    def cancel(self) -> None:
        """Stop git (its result is not wanted) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        self._proc.communicate()


def start_git(args: Sequence[str], cwd: Path) -> GitRun:
    """Start ``git ARGS`` in ``cwd`` as :func:`run_git` would run it (same config and
    environment, no input), without waiting: :meth:`GitRun.result` waits.

    Raises:
        GitError: git is missing.
    """
    cmd = _git_cmd(args, cwd)
    proc = subprocess.Popen(
        cmd,
        cwd=str(cwd),
        env=git_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return GitRun(proc, args, cwd)


def is_git_worktree(root: Path) -> bool:
    """Whether ``root`` is the top of a git working tree (``.git`` dir or file)."""
    return (root / ".git").exists() and git_binary() is not None


def head_commit(root: Path) -> str | None:
    """The commit HEAD points at, or None (unborn branch, not a repo)."""
    proc = run_git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], root, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def git_blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob (SHA-1, as ``git hash-object`` computes it)."""
    h = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


def head_blobs(root: Path, items: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """Which of ``items`` (path, bytes) are exactly HEAD's blob of that path, stored in
    the repository's own object database: path -> git blob id.

    Read in-process with libgit2 (:mod:`pygit2`: objects only, no program runs). Empty
    when that cannot be told: ``root`` is not the top of a git working tree, HEAD is
    unborn, or libgit2 refuses the repository (an unsupported format, another owner).
    A blob git does not have locally (a partial clone) is not named.
    """
    if not items or not (root / ".git").exists():
        return {}
    import pygit2

    try:
        repo = pygit2.Repository(str(root))
        if repo.workdir is None or not os.path.samefile(repo.workdir, root):
            return {}
        if repo.head_is_unborn:
            return {}
        tree = repo.head.peel(pygit2.Tree)
        odb = repo.odb
        out: dict[str, str] = {}
        for path, data in items:
            try:
                entry = tree[path]
            except KeyError:
                continue
            if entry.type_str != "blob":
                continue
            sha = str(entry.id)
            if sha == git_blob_id(data) and odb.exists(entry.id):
                out[path] = sha
        return out
    except (pygit2.GitError, KeyError, ValueError, OSError):
        return {}


def read_blob(root: Path, sha: str) -> bytes | None:
    """The bytes of git blob ``sha`` in the repository at ``root`` (None: git does not
    have it, or it is not a blob). Read in-process with libgit2, no program runs."""
    import pygit2

    try:
        obj = pygit2.Repository(str(root)).get(sha)
    except (pygit2.GitError, KeyError, ValueError, OSError):
        return None
    if not isinstance(obj, pygit2.Blob):
        return None
    return bytes(obj.data)

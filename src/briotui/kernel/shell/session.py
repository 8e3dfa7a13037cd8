"""Commands over sessions: run an allowed argv in a session's materialized copy.

:func:`run_in_session` materializes a session into a directory, runs the command there
(:mod:`briotui.kernel.shell.runner`) and copies back what the process changed (tool
caches excluded). :class:`ShellService` is the kernel's one object behind the agents'
shell import: it holds the project's command policy and the user's sandbox settings, and
without an OS sandbox runs a command only as the user's ``[shell] unsandboxed`` setting
says (``ask``: the caller must have asked the user first, see
:meth:`ShellService.needs_confirmation`). The capability checks happen in the host
functions before it is called.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from briotui.kernel.errors import (
    CommandNotFound,
    CommandRefused,
    CommandTimeout,
)
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.settings import load_settings
from briotui.kernel.shell.policy import CommandPolicy, Decision
from briotui.kernel.shell.runner import (
    INSTALL_HINT,
    CommandOutput,
    ProjectEnv,
    SandboxStatus,
    ShellSettings,
    project_env,
    run_command,
    sandbox_status,
)
from briotui.kernel.vfs import Session, safefs
from briotui.kernel.vfs.materialize import Materialized

CACHE_DIRS: Final[frozenset[str]] = frozenset(
    {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
)
"""Directories whose contents a command's run never copies back into the session."""
CACHE_SUFFIXES: Final[tuple[str, ...]] = (".pyc", ".pyo")
"""File suffixes never copied back."""


def is_cache_path(rel: str) -> bool:
    """Whether ``rel`` is a tool cache: under a :data:`CACHE_DIRS` directory or a ``.pyc``."""
    parts = rel.split("/")
    return any(p in CACHE_DIRS for p in parts[:-1]) or rel.endswith(CACHE_SUFFIXES)


@dataclass(frozen=True)
class SessionRun:
    """A command run in a session.

    Attributes:
        output: What the command printed and how it exited.
        changed: Session paths written or deleted from what the process changed,
            sorted (caches excluded).
    """

    output: CommandOutput
    changed: list[str]


def run_in_session(
    session: Session,
    argv: Sequence[str],
    *,
    workdir: Path,
    cwd: str = "",
    timeout_s: float,
    max_output_bytes: int,
    sandbox: bool | None = None,
    path: str | None = None,
    materialized: Materialized | None = None,
    readonly: Sequence[Path] = (),
    should_stop: Callable[[], bool] | None = None,
    executable: str | None = None,
) -> SessionRun:
    """Run ``argv`` over a session's files and bring its file changes into the session.

    The session is materialized into ``workdir`` (:meth:`Materialized.sync_out`: copies,
    never links), the command runs in ``workdir/cwd``, then
    :meth:`Materialized.sync_back` copies what it created, changed or deleted into the
    session through the session's path policy.

    The cache rule: tool caches (:func:`is_cache_path`: ``__pycache__/``,
    ``.pytest_cache/``, ``.ruff_cache/``, ``.mypy_cache/``, ``*.pyc``) are never copied
    back. New cache files are removed from ``workdir`` before the sync; a cache file the
    session already had keeps the session's content even if the process changed or
    deleted it.

    On a timeout nothing is copied back and :class:`CommandTimeout` propagates; the
    caller should then drop ``workdir`` (a half-finished run's files are not trusted).

    Args:
        session: The session to run over.
        argv: Program and arguments (already checked by the caller).
        workdir: The directory to materialize into.
        cwd: Working directory relative to the session root ("" for the root).
        timeout_s: See :func:`run_command`.
        max_output_bytes: See :func:`run_command`.
        sandbox: See :func:`run_command`.
        path: See :func:`run_command`.
        materialized: A :class:`Materialized` from an earlier run over the same session
            and ``workdir`` (sync is then incremental and the directory is kept); if
            None, a new one is made and ``workdir`` is removed afterwards.
        readonly: See :func:`run_command`.
        should_stop: See :func:`run_command`.
        executable: See :func:`run_command`.

    Returns:
        The output and the changed session paths.

    Raises:
        PathRefused: ``cwd`` is not a valid session path.
        CommandRefused, CommandNotFound, CommandFailed, CommandTimeout: as for
            :func:`run_command`.
    """
    rel_cwd = session.manager.policy.normalize(cwd, allow_root=True)
    own = materialized is None
    mat = materialized if materialized is not None else Materialized(session, workdir)
    try:
        mat.sync_out()
        run_dir = mat.ensure_dir(rel_cwd)  # never through a link a process planted
        kept_caches = {
            e.path: (session.read(e.path), e.executable)
            for e in session.list_dir("", True)
            if e.kind == "file" and is_cache_path(e.path)
        }
        output = run_command(
            argv,
            cwd=run_dir,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            sandbox=sandbox,
            path=path,
            readonly=readonly,
            should_stop=should_stop,
            executable=executable,
        )
        _drop_new_caches(mat.dest, set(kept_caches))
        changed = []
        for rel in mat.sync_back():
            if rel in kept_caches:
                data, is_exe = kept_caches[rel]
                session.write(rel, data, is_exe)
            elif not is_cache_path(rel):
                changed.append(rel)
        return SessionRun(output=output, changed=sorted(changed))
    finally:
        if own:
            mat.remove()


def _drop_new_caches(root: Path, keep: set[str]) -> None:
    # Through directory fds: a link a process planted is removed, never followed.
    for found in safefs.walk(root, skip_dir=lambda _name: False, nofollow_root=True):
        if is_cache_path(found.rel) and found.rel not in keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(found.name, dir_fd=found.dir_fd)


class ShellService:
    """Runs agents' allowed commands in their sessions.

    Args:
        paths: The project's paths.
        shell: The ``[shell]`` table (see :meth:`briotui.kernel.settings.Settings.shell`,
            which applies the trust gate), or None for the defaults.
        max_output_bytes: Upper bound on a command's captured output.
        settings: The user's sandbox settings (see
            :meth:`briotui.kernel.settings.Settings.shell_settings`; never the project's);
            None reads the user's settings through the one loader (the kernel passes them).
        user_command: The project's ``[tests] command`` as the user wrote it (trusted
            settings only); it may name its program by a path (e.g.
            ``.venv/bin/python -m pytest``), which no agent-chosen command may.
        env: The project's Python environment: its virtualenv's ``bin`` comes first on
            commands' PATH and is shown to them read-only. None: :func:`project_env` of
            the root with no trusted project virtualenv (the kernel passes the one the
            user trusted, see :meth:`~briotui.kernel.settings.Settings.trusted_venv`).
    """

    def __init__(
        self,
        paths: ProjectPaths,
        *,
        shell: Mapping[str, object] | None = None,
        max_output_bytes: int = 256 * 1024,
        settings: ShellSettings | None = None,
        user_command: Sequence[str] | None = None,
        env: ProjectEnv | None = None,
    ) -> None:
        self.paths = paths
        self.policy = CommandPolicy.from_config(shell)
        self.max_output_bytes = max_output_bytes
        self.settings = settings if settings is not None else load_settings().shell_settings()
        self.status: SandboxStatus = sandbox_status(self.settings)
        self.env = env if env is not None else project_env(paths.root)
        self.user_command = tuple(user_command) if user_command else None
        self._dirs: dict[str, Materialized] = {}
        self._lock = threading.Lock()

    def reconfigure(
        self,
        *,
        policy: CommandPolicy,
        user_command: Sequence[str] | None,
        env: ProjectEnv,
    ) -> None:
        """Take new project settings (the user trusted the project, or it changed):
        the allowlist, the user's ``[tests] command`` and the Python environment.
        Materialized work directories are kept."""
        with self._lock:
            self.policy = policy
            self.user_command = tuple(user_command) if user_command else None
            self.env = env

    def workdir(self, session: Session) -> Path:
        """Where ``session`` is materialized for commands."""
        return self.paths.sessions / "work" / session.id

    def release(self, session: Session) -> None:
        """Drop the directory ``session`` was materialized into (a scratch session's)."""
        with self._lock:
            materialized = self._dirs.pop(session.id, None)
        if materialized is not None:
            materialized.remove()

    def needs_confirmation(self) -> bool:
        """Whether each command must be confirmed by the user first (unsandboxed, "ask")."""
        return not self.status.sandboxed and self.settings.unsandboxed == "ask"

    def _readonly(self) -> list[Path]:
        return [self.env.venv] if self.env.venv is not None else []

    def check(self, argv: Sequence[str]) -> Decision:
        """Whether ``argv`` may run: the policy's answer, except that the user's own
        ``[tests] command`` always may (the user wrote it, program path and all)."""
        if self.user_command is not None and tuple(argv) == self.user_command:
            return Decision(True, "[tests] command", "the project's test command (your setting)")
        return self.policy.check(argv)

    def _executable(self, argv: Sequence[str]) -> str | None:
        """The program of the user's own test command when it is given as a path.

        A relative path is taken from the project root (where the user wrote it).

        Raises:
            CommandNotFound: There is no executable program at that path.
        """
        program = argv[0] if argv else ""
        if self.user_command is None or tuple(argv) != self.user_command:
            return None
        if "/" not in program:
            return None
        exe = Path(program) if os.path.isabs(program) else self.paths.root / program
        if not exe.is_file() or not os.access(exe, os.X_OK):
            raise CommandNotFound(
                f"The program of your [tests] command, {program!r}, is not an executable "
                f"file (looked at {exe}). Fix [tests] command in .brio/config.toml."
            )
        return os.path.abspath(exe)

    def run(
        self,
        session: Session,
        argv: Sequence[str],
        *,
        cwd: str,
        timeout_s: float,
        confirmed: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> SessionRun:
        """Run ``argv`` over ``session``; its file changes come back into the session.

        Args:
            session: The session to run over.
            argv: The command, already checked against the policy and capabilities.
            cwd: Working directory relative to the session root.
            timeout_s: Wall-clock limit.
            confirmed: The user said yes to running it without a sandbox (needed when
                :meth:`needs_confirmation`).
            should_stop: Whether the agent's run was stopped; the command is then
                killed and its changes dropped (CommandStopped).

        Raises:
            CommandRefused: No OS sandbox here and the user's setting refuses it
                (``deny``, or ``ask`` without ``confirmed``); says how to fix it.
            CommandTimeout: it ran out of time (its work directory is dropped).
            CommandError: it could not be started.
        """
        if not self.status.sandboxed:
            mode = self.settings.unsandboxed
            if mode == "deny" or (mode == "ask" and not confirmed):
                why = (
                    'your setting refuses them ([shell] unsandboxed = "deny")'
                    if mode == "deny"
                    else "nobody confirmed this one"
                )
                raise CommandRefused(
                    f"No OS sandbox is available here ({self.status.detail}) and {why}. "
                    + INSTALL_HINT,
                    argv=list(argv),
                )
        with self._lock:
            materialized = self._dirs.get(session.id)
            if materialized is None:
                materialized = Materialized(session, self.workdir(session))
                self._dirs[session.id] = materialized
        try:
            return run_in_session(
                session,
                list(argv),
                workdir=self.workdir(session),
                cwd=cwd,
                timeout_s=timeout_s,
                max_output_bytes=self.max_output_bytes,
                sandbox=self.status.sandboxed,
                path=self.env.path,
                materialized=materialized,  # kept: the next run syncs only what changed
                readonly=self._readonly(),
                should_stop=should_stop,
                executable=self._executable(argv),
            )
        except CommandTimeout:
            with self._lock:
                self._dirs.pop(session.id, None)
            materialized.remove()
            raise

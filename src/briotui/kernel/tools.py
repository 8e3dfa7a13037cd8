"""The kernel's services behind the shell and sql imports: one object per kernel.

:class:`ShellService` runs an allowed command over a session (materialized into a
work directory under ``.brio/sessions/work``, changes copied back) with the project's
command policy; :class:`SqlService` opens each agent instance's private SQL connection
to ``.brio/agents.db``, fenced to its own table prefix. The capability checks happen in
the host functions before either is called.
"""

from __future__ import annotations

import secrets
import threading
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from briotui.kernel.errors import CommandTimeout, ConfigError
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.shelltool import CommandPolicy, SessionRun, run_in_session
from briotui.kernel.sqlpolicy import AgentSql
from briotui.kernel.vfs import Session
from briotui.kernel.vfs.materialize import Materialized


def _section(paths: ProjectPaths, name: str) -> dict[str, Any] | None:
    if not paths.config_file.is_file():
        return None
    try:
        data = tomllib.loads(paths.config_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{paths.config_file} is not valid TOML: {exc}") from None
    section = data.get(name)
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"[{name}] in {paths.config_file} must be a table.")
    return section


class ShellService:
    """Runs agents' allowed commands in their sessions."""

    def __init__(self, paths: ProjectPaths, *, max_output_bytes: int = 256 * 1024) -> None:
        self.paths = paths
        self.policy = CommandPolicy.from_config(_section(paths, "shell"))
        self.max_output_bytes = max_output_bytes
        self._dirs: dict[str, Materialized] = {}
        self._lock = threading.Lock()

    def workdir(self, session: Session) -> Path:
        """Where ``session`` is materialized for commands."""
        return self.paths.sessions / "work" / session.id

    def run(
        self, session: Session, argv: Sequence[str], *, cwd: str, timeout_s: float
    ) -> SessionRun:
        """Run ``argv`` over ``session``; its file changes come back into the session.

        Raises:
            CommandTimeout: it ran out of time (its work directory is dropped).
            CommandError: it could not be started.
        """
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
                materialized=materialized,  # kept: the next run syncs only what changed
            )
        except CommandTimeout:
            with self._lock:
                self._dirs.pop(session.id, None)
            materialized.remove()
            raise


class SqlService:
    """Opens agent instances' private SQL connections."""

    def __init__(self, paths: ProjectPaths, *, max_seconds: float = 10.0) -> None:
        self.path = paths.brio / "agents.db"
        self.max_seconds = max_seconds
        """Wall-clock budget of one statement (stopped, or abandoned, past it)."""

    def open(self) -> AgentSql:
        """A connection with a fresh prefix for one agent instance."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return AgentSql.open(
            self.path,
            "a" + secrets.token_hex(4),
            max_rows=10_000,
            max_result_bytes=4 * 1024 * 1024,
            max_steps=50_000_000,
            max_seconds=self.max_seconds,
        )

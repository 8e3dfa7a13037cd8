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
from collections.abc import Mapping, Sequence
from pathlib import Path

from briotui.kernel.errors import CommandTimeout
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.shelltool import CommandPolicy, SessionRun, run_in_session
from briotui.kernel.sqlpolicy import AgentSql
from briotui.kernel.vfs import Session
from briotui.kernel.vfs.materialize import Materialized


class ShellService:
    """Runs agents' allowed commands in their sessions.

    Args:
        paths: The project's paths.
        shell: The ``[shell]`` table (see :meth:`briotui.kernel.settings.Settings.shell`,
            which applies the trust gate), or None for the defaults.
        max_output_bytes: Upper bound on a command's captured output.
    """

    def __init__(
        self,
        paths: ProjectPaths,
        *,
        shell: Mapping[str, object] | None = None,
        max_output_bytes: int = 256 * 1024,
    ) -> None:
        self.paths = paths
        self.policy = CommandPolicy.from_config(shell)
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

    def __init__(self, paths: ProjectPaths) -> None:
        self.path = paths.brio / "agents.db"

    def open(self) -> AgentSql:
        """A connection with a fresh prefix for one agent instance."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return AgentSql.open(
            self.path,
            "a" + secrets.token_hex(4),
            max_rows=10_000,
            max_result_bytes=4 * 1024 * 1024,
            max_steps=50_000_000,
        )

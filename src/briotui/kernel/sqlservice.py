"""The kernel's service behind the agents' sql import: one private SQL connection each.

:class:`SqlService` opens each agent instance's private SQL connection to
``.brio/agents.db``, fenced to its own table prefix by :mod:`briotui.kernel.sqlpolicy`.
The capability checks happen in the host functions before it is called.
"""

from __future__ import annotations

import secrets

from briotui.kernel.paths import ProjectPaths
from briotui.kernel.sqlpolicy import AgentSql


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

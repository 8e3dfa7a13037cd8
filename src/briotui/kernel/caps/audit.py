"""The append-only audit log: every capability check, allowed or denied, by whom and why.

Rows are written from agents' worker threads through a connection of its own in WAL
mode with ``synchronous=NORMAL``: each row is committed before the call it describes
goes on, so a SIGKILL never loses one (power loss may lose the last few, which NORMAL
trades for speed on the hot path of every host call). SQLite triggers refuse UPDATE
and DELETE on the table.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from briotui.kernel import telemetry
from briotui.kernel.caps.model import CapabilityRequest
from briotui.kernel.store import Store


@dataclass(frozen=True)
class AuditRow:
    """One audited decision."""

    id: int
    at: float
    agent: str
    instance: str
    task_id: str
    capability: str
    target: str
    decision: str
    decided_by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return dict(self.__dict__)


class AuditLog:
    """Writes and reads the ``audit`` table of the project database."""

    def __init__(self, path: Path) -> None:
        Store.open(path).close()  # create and migrate through the one schema source
        self.path = path
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.Lock()

    def record(
        self, request: CapabilityRequest, decision: str, decided_by: str, reason: str = ""
    ) -> None:
        """Append one row (committed before this returns); a denial is counted in the
        ``briotui.capability.denials`` metric when metrics are on."""
        if decision == "denied":
            telemetry.count(
                "briotui.capability.denials",
                1,
                {"briotui.agent": request.agent, "briotui.capability": request.capability},
            )
        with self._lock:
            self._conn.execute(
                "INSERT INTO audit (at, agent, instance, task_id, capability, target, decision,"
                " decided_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    request.agent,
                    request.instance,
                    request.task_id,
                    request.capability,
                    request.target[:2000],
                    decision,
                    decided_by,
                    reason[:2000],
                ),
            )

    def record_command(
        self, client: str, command: str, target: str, *, ok: bool, reason: str = ""
    ) -> None:
        """Append one row for a command a served kernel's client issued.

        The row's ``agent`` is ``client:<id>``, its ``capability`` ``command``, its
        ``target`` the command and what it named, and ``decided_by`` the client.
        """
        with self._lock:
            self._conn.execute(
                "INSERT INTO audit (at, agent, instance, task_id, capability, target, decision,"
                " decided_by, reason) VALUES (?, ?, '', '', 'command', ?, ?, ?, ?)",
                (
                    time.time(),
                    f"client:{client}",
                    f"{command} {target}".strip()[:2000],
                    "allowed" if ok else "denied",
                    f"client:{client}",
                    reason[:2000],
                ),
            )

    def rows(
        self, *, limit: int = 200, agent: str | None = None, decision: str | None = None
    ) -> list[AuditRow]:
        """The newest ``limit`` rows (oldest first), optionally filtered."""
        where, params = _filters(agent, decision)
        with self._lock:
            found = self._conn.execute(_newest(where), (*params, limit)).fetchall()
        return [AuditRow(*row) for row in found]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _newest(where: str) -> str:
    """The query for the newest rows matching ``where``, returned oldest first."""
    return (
        "SELECT * FROM (SELECT id, at, agent, instance, task_id, capability, target, decision,"
        f" decided_by, reason FROM audit{where} ORDER BY id DESC LIMIT ?) ORDER BY id"
    )


def _filters(agent: str | None, decision: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if agent:
        clauses.append("agent = ?")
        params.append(agent)
    if decision:
        clauses.append("decision = ?")
        params.append(decision)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def read_audit(
    path: Path, *, limit: int = 200, agent: str | None = None, decision: str | None = None
) -> list[AuditRow]:
    """The newest audit rows, read with aiosqlite (for front ends on the event loop)."""
    from briotui.kernel.store import open_async

    where, params = _filters(agent, decision)
    conn = await open_async(path)
    try:
        cursor = await conn.execute(_newest(where), (*params, limit))
        found = await cursor.fetchall()
    finally:
        await conn.close()
    return [AuditRow(*row) for row in found]

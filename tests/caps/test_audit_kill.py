"""An audit row is on disk as soon as the decision it records is made.

The kernel's other records of a run are queued for the store's writer thread; audit
rows are not: a process killed (SIGKILL) right after an agent's capability check still
leaves that check's row in the project database.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.runtime.test_build import write_agent
from tests.runtime.test_hostile_agent import HOSTILE

pytestmark = pytest.mark.slow

KILL_AFTER_DECISION = """
import asyncio, os, signal, sys
from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.context import RunBindings

recorded = AuditLog.record

def record_then_die(self, request, decision, decided_by, reason=""):
    recorded(self, request, decision, decided_by, reason)
    if request.agent == "hostile":
        os.kill(os.getpid(), signal.SIGKILL)  # right after the decision, mid-run

AuditLog.record = record_then_die

async def main():
    kernel = Kernel(sys.argv[1])
    await kernel.load("hostile", build=True)
    await kernel.run_agent("hostile", "sql SELECT 1", bindings=RunBindings(sql=kernel.sql()))

asyncio.run(main())
"""


def test_audit_row_of_a_run_survives_sigkill_right_after_the_decision(
    project: Path, built_agents: list[str]
) -> None:
    write_agent(project, "hostile", {"agent.toml": 'world = "foreman"\n', "app.py": HOSTILE})
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_DECISION, str(project)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with sqlite3.connect(project / ".brio" / "state.db") as conn:
        rows = conn.execute(
            "SELECT agent, capability, decision FROM audit WHERE agent = 'hostile'"
        ).fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows == [("hostile", "sql", "denied")]

"""A cancelled agent's command stops with it: killed with its children, changes dropped."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest

from briotui.kernel.errors import AgentCancelled
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.instance import RunFailed

from .conftest import needs_bwrap

pytestmark = pytest.mark.slow


def _alive_with(token: str) -> list[int]:
    """Pids of processes whose command line holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


@needs_bwrap
async def test_cancel_kills_the_agents_running_command(kernel: Kernel) -> None:
    token = "sleepy_" + uuid.uuid4().hex[:10]
    session = kernel.new_session(label="t", task="cancel a command")
    session.write(
        f"test_{token}.py",
        b"import time\n\ndef test_slow():\n"
        b"    open('made_by_the_command.txt', 'w').write('x')\n"
        b"    time.sleep(60)\n",
        False,
    )
    argv = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"test_{token}.py"]
    run = asyncio.create_task(
        kernel.run_agent(
            "smart",
            "run the tests",
            bindings=RunBindings(workspace=session, session_id=session.id),
            context=[("command", json.dumps(argv))],
            task_id="cancel-cmd",
        )
    )
    for _ in range(300):  # the command is running
        if _alive_with(token):
            break
        await asyncio.sleep(0.05)
    assert _alive_with(token), "the command never started"
    await asyncio.sleep(0.5)
    assert kernel.cancel("cancel-cmd")
    with pytest.raises(RunFailed) as caught:
        await asyncio.wait_for(run, 30)
    assert isinstance(caught.value.error, AgentCancelled), caught.value.error
    for _ in range(100):  # killed at once, not at its own timeout
        if not _alive_with(token):
            break
        await asyncio.sleep(0.05)
    assert not _alive_with(token), "the cancelled agent's command is still running"
    await asyncio.sleep(0.5)  # nothing comes back into the session later
    assert "made_by_the_command.txt" not in {e.path for e in session.list_dir("", True)}

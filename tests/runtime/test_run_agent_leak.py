"""``Kernel.run_agent`` never leaks a pool instance: when something fails after the
instance was handed out but before it ran (here: invalid ``[agents]`` grants in a
trusted project, found when the run's capabilities are opened), the instance is
discarded and its worker thread ends. Real kernel, real built agent."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from tests.conftest import make_git_project
from tests.trust_helpers import trust_project

from briotui.kernel.errors import ConfigError
from briotui.kernel.kernel import Kernel


def agent_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("agent-echo#") and t.is_alive()}


async def test_a_run_that_fails_before_it_starts_leaves_no_instance(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = make_git_project(tmp_path / "proj")
    (project / ".brio").mkdir()
    (project / ".brio" / "config.toml").write_text("[agents.echo]\nbogus = 1\n")
    trust_project(project)
    before = agent_threads()
    kernel = Kernel(project)
    try:
        with pytest.raises(ConfigError):
            await kernel.run_agent("echo", "hello")
    finally:
        await kernel.close()
    for _ in range(50):  # the worker thread ends once its instance is discarded
        left = agent_threads() - before
        if not left:
            break
        await asyncio.sleep(0.1)
    assert not left, [t.name for t in left]

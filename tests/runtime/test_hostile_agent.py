"""A hostile user agent against the runtime's bounds: SQL that cannot be interrupted,
and subtasks that would get more than their parent may do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from briotui.kernel.errors import AgentCancelled, AgentTimeout, GuestError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, RunFailed
from briotui.kernel.sqlservice import SqlService

from .test_build import write_agent

pytestmark = pytest.mark.slow

HOSTILE = """
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import sql, tasks, types


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        action, _, rest = task.goal.partition(" ")
        try:
            if action == "sql":
                rows = sql.execute(rest, [])
                return agent.Outcome(summary="sql done", data=str(len(rows.rows)))
            if action == "spawn":
                name, _, goal = rest.partition(" ")
                sub = tasks.Subtask(agent=name, goal=goal, scope=[], acceptance=[])
                result = tasks.run_subtask(sub)
                return agent.Outcome(
                    summary=result.summary, data=json.dumps({"ok": result.ok, "id": result.id})
                )
        except Err as failure:
            raise Err(types.Error(kind=failure.value.kind, message=failure.value.message))
        raise Err(types.Error(kind=types.ErrorKind.INVALID, message="unknown action " + action))
"""
"""A user agent in the foreman world (tasks and sql): runs one SQL statement, or one
subtask by another agent."""

BOMB = "SELECT " + ", ".join(["printf('%.*c', 2000000000, 'x')"] * 2)
"""Two calls of a SQLite function that runs for about 6 s each (idle 2-core machine)
inside SQLite's C code, where neither the step counter nor ``sqlite3_interrupt`` reaches
it. Two outlast every bound asserted here; the abandoned statement burns a core until it
ends, so more would only slow the rest of the suite."""


@pytest.fixture
async def hostile(project: Path, built_agents: list[str]) -> AsyncIterator[Kernel]:
    write_agent(project, "hostile", {"agent.toml": 'world = "foreman"\n', "app.py": HOSTILE})
    kernel = Kernel(project)
    try:
        await kernel.load("hostile", build=True)
        yield kernel
    finally:
        await kernel.close()


async def hostile_instance(kernel: Kernel, **limits: int) -> AgentInstance:
    loaded = await kernel.load("hostile")
    spec = replace(loaded.spec, limits=replace(loaded.spec.limits, **limits))
    instance = AgentInstance(
        replace(loaded, spec=spec), loop=kernel.loop, events=kernel.events.publish
    )
    await instance.start()
    return instance


def sql_bindings(kernel: Kernel, service: SqlService | None = None) -> RunBindings:
    caps = kernel.capabilities()
    caps.grant("hostile", "sql", "*")
    return RunBindings(capabilities=caps, sql=service or kernel.sql())


async def test_uninterruptible_sql_stops_at_the_deadline(hostile: Kernel) -> None:
    instance = await hostile_instance(hostile, deadline_ms=2000)
    started = time.perf_counter()
    with pytest.raises(RunFailed) as caught:
        await instance.run(AgentTask("q", "sql " + BOMB), sql_bindings(hostile))
    elapsed = time.perf_counter() - started
    assert isinstance(caught.value.error, AgentTimeout), caught.value.error
    assert elapsed < 10  # not the 11 s or more the statement runs
    print(f"\nuninterruptible SQL: deadline 2.000 s, failed after {elapsed:.3f} s")


async def test_uninterruptible_sql_stops_on_cancel(hostile: Kernel) -> None:
    instance = await hostile_instance(hostile)
    run = asyncio.create_task(instance.run(AgentTask("q", "sql " + BOMB), sql_bindings(hostile)))
    await asyncio.sleep(0.5)  # into its statement
    started = time.perf_counter()
    instance.cancel()
    with pytest.raises(RunFailed) as caught:
        await asyncio.wait_for(run, 20)
    elapsed = time.perf_counter() - started
    assert isinstance(caught.value.error, AgentCancelled), caught.value.error
    assert elapsed < 10
    print(f"\nuninterruptible SQL: cancel to failure {elapsed:.3f} s")


async def test_uninterruptible_sql_is_cut_at_its_statement_budget(hostile: Kernel) -> None:
    instance = await hostile_instance(hostile)
    service = SqlService(hostile.paths, max_seconds=1.0)
    started = time.perf_counter()
    with pytest.raises(RunFailed) as caught:
        await instance.run(AgentTask("q", "sql " + BOMB), sql_bindings(hostile, service))
    elapsed = time.perf_counter() - started
    assert isinstance(caught.value.error, GuestError), caught.value.error
    assert "time budget" in caught.value.error.message
    assert elapsed < 10


async def test_a_subtask_gets_no_more_than_its_parent(hostile: Kernel) -> None:
    # hostile (a user agent) holds no shell grant; smart's profile allows pytest. The
    # child must not run it on its own profile.
    provider = ScriptedProvider(
        [ScriptedReply('{"argv": ["pytest", "-q"], "why": "run the tests"}'), ScriptedReply("ok")]
    )
    task_id = await hostile.submit("spawn smart run the tests", agent="hostile", provider=provider)
    result = await hostile.wait(task_id)
    assert result.status == "done", result
    rows = hostile.capabilities().audit.rows(agent="smart")
    shell = [(r.target, r.decision) for r in rows if r.capability == "shell"]
    assert shell == [("pytest -q", "denied")], shell
    denied = next(r for r in rows if r.capability == "shell")
    assert "hostile" in denied.reason
    assert "denied" in result.summary
    assert not any(r.decision == "allowed" for r in rows if r.capability == "shell")


async def test_a_subtask_keeps_what_its_parent_may_do(hostile: Kernel) -> None:
    # the parent holds the grant: the child's own profile grant applies
    hostile.capabilities().grant("hostile", "shell", "pytest *")
    provider = ScriptedProvider(
        [ScriptedReply('{"argv": ["pytest", "-q"], "why": "run the tests"}'), ScriptedReply("ok")]
    )
    task_id = await hostile.submit("spawn smart run the tests", agent="hostile", provider=provider)
    result = await hostile.wait(task_id)
    rows = hostile.capabilities().audit.rows(agent="smart")
    assert [(r.target, r.decision) for r in rows if r.capability == "shell"] == [
        ("pytest -q", "allowed")
    ]
    assert result.status == "done", result

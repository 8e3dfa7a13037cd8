"""The mesh and SQL host imports, called as a guest's worker thread calls them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from tests.runtime.guest import in_thread

from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.checker import Capabilities
from briotui.kernel.caps.profiles import build_profiles
from briotui.kernel.limits import Limits
from briotui.kernel.mesh import Mesh
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.runtime import context as ctxmod
from briotui.kernel.runtime import host
from briotui.kernel.runtime.context import CallContext, RunBindings
from briotui.kernel.runtime.values import Case, Err, Ok
from briotui.kernel.sqlservice import SqlService
from briotui.kernel.store import Store


def make_ctx(
    agent: str, n: int, bindings: RunBindings, loop: asyncio.AbstractEventLoop
) -> CallContext:
    ctx = CallContext(
        agent=agent, instance_id=f"{agent}#{n}", limits=Limits(), loop=loop, events=lambda _e: None
    )
    ctx.begin(bindings)
    return ctx


@pytest.fixture
def caps(tmp_path: Path) -> Capabilities:
    db = tmp_path / "state.db"
    return Capabilities(Store.open(db), AuditLog(db), build_profiles([]))


async def test_mesh_between_allowed_agents_and_denial(caps: Capabilities) -> None:
    loop = asyncio.get_running_loop()
    mesh = Mesh()
    bindings = RunBindings(task_id="t", capabilities=caps, mesh=mesh)
    coder = make_ctx("coder", 1, bindings, loop)
    foreman = make_ctx("foreman", 2, bindings, loop)
    echo = make_ctx("echo", 3, bindings, loop)
    assert in_thread(foreman, host.mesh_receive, 0) == Ok(None)  # registers the foreman
    sent = in_thread(coder, host.mesh_send, "foreman", "status", "half done")
    assert sent == Ok(None)
    got = in_thread(foreman, host.mesh_receive, 1000)
    assert got.value["sender"] == "coder#1"
    assert got.value["body"] == "half done"
    denied = in_thread(echo, host.mesh_send, "foreman", "hi", "x")  # echo has no mesh grant
    assert isinstance(denied, Err)
    assert denied.value["kind"] == "denied"
    missing = in_thread(coder, host.mesh_send, "reviewer", "hi", "x")  # allowed, not running
    assert missing.value["kind"] == "not-found"

    # request / reply across two worker threads
    def answer() -> None:
        ctxmod.bind_thread(foreman)
        env = host.mesh_receive(foreman, 5000).value
        host.mesh_reply(foreman, env["request_id"], "ack: " + env["body"])

    t = threading.Thread(target=answer)
    t.start()
    reply = in_thread(coder, host.mesh_request, "foreman", "ask", "ping", 5000)
    t.join(5)
    assert reply.value["body"] == "ack: ping"
    for ctx in (coder, foreman, echo):
        ctx.release()


async def test_sql_import_is_fenced_and_granted(tmp_path: Path, caps: Capabilities) -> None:
    loop = asyncio.get_running_loop()
    service = SqlService(ProjectPaths.at(tmp_path))
    foreman = make_ctx("foreman", 1, RunBindings(capabilities=caps, sql=service), loop)
    other = make_ctx("smart", 2, RunBindings(capabilities=caps, sql=service), loop)
    prefix = in_thread(foreman, host.sql_prefix)
    assert prefix
    table = f"{prefix}_notes"
    assert isinstance(
        in_thread(foreman, host.sql_execute, f"CREATE TABLE {table} (x TEXT)", []), Ok
    )
    assert isinstance(
        in_thread(
            foreman, host.sql_execute, f"INSERT INTO {table} VALUES (?)", [Case("text", "secret")]
        ),
        Ok,
    )
    rows = in_thread(foreman, host.sql_execute, f"SELECT x FROM {table}", [])
    assert rows.value["rows"] == [[Case("text", "secret")]]
    stolen = in_thread(other, host.sql_execute, f"SELECT x FROM {table}", [])
    assert isinstance(stolen, Err)
    assert stolen.value["kind"] == "denied"
    echo = make_ctx("echo", 3, RunBindings(capabilities=caps, sql=service), loop)
    assert in_thread(echo, host.sql_execute, "SELECT 1", []).value["kind"] == "denied"
    for ctx in (foreman, other, echo):
        ctx.release()

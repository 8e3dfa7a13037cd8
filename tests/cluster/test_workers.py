"""Agents on workers over a real NATS server: real ``briotui worker`` processes, real
components, host calls relayed to the kernel and checked there."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from tests.cluster.conftest import NatsServer
from tests.cluster.workers import SRC, start_worker, workers
from tests.scripted import FILES, edit, repo, sub_and_whisper
from tests.trust_helpers import trust_project

from briotui.kernel import contract
from briotui.kernel.caps.model import Answer, CapabilityRequest
from briotui.kernel.cluster.config import ClusterConfig
from briotui.kernel.cluster.dispatch import Dispatcher
from briotui.kernel.errors import ClusterError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime import hostcodec
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import LogLine, StateChanged
from briotui.kernel.runtime.instance import AgentTask

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return repo(tmp_path / "proj", FILES)


def placed(dispatcher: Dispatcher, task_id: str) -> list[str]:
    """The workers the runs of ``task_id``'s tree ran on (the last attempt of each)."""
    return [w for tid, w in sorted(dispatcher.placements.items()) if tid.startswith(task_id)]


async def until(predicate: Callable[[], bool], limit_s: float = 60) -> bool:
    """Whether ``predicate`` became true within ``limit_s`` (polled)."""
    end = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


def placed_task(dispatcher: Dispatcher, task_id: str) -> str:
    """The id of the run of ``task_id``'s tree that went to a worker."""
    [tid] = [t for t in dispatcher.placements if t.startswith(task_id)]
    return tid


def cluster(server: NatsServer, **kw: object) -> ClusterConfig:
    return ClusterConfig(nats=server.url, token=server.token, **kw)  # type: ignore[arg-type]


async def test_pipeline_runs_its_coders_on_two_workers(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    provider = ScriptedProvider(sub_and_whisper(acceptance=["sub(5, 3) == 2"], delay_ms=300))
    with workers(nats_server.url, nats_server.token, "wa", "wb"):
        kernel = Kernel(project)
        try:
            dispatcher = await kernel.join_cluster(
                # a long offer window: on a loaded machine a worker may take seconds to
                # answer, and the assertion is about where the Coders ran
                cluster(nats_server, agents=frozenset({"coder"}), offer_ms=15_000)
            )
            task_id = await kernel.submit(
                "Add sub to calc.py and whisper to text.py", provider=provider
            )
            result = await kernel.wait(task_id)
            assert result.status == "done", result
            tree = kernel.state.get(["tasks"])
            coders = [tid for tid, t in tree.items() if t["agent"] == "coder"]
            assert len(coders) == 2
            # each Coder ran on a worker, one on each (one slot each)
            assert {dispatcher.placements[tid] for tid in coders} == {"wa", "wb"}
            # the task tree says where each ran (and still fits the state contract)
            assert {tree[tid]["worker"] for tid in coders} == {"wa", "wb"}
            assert all("worker" not in t for t in tree.values() if t["agent"] != "coder")
            contract.validate_tree(kernel.state.get(""))
            assert not any(t["agent"] != "coder" for t in (tree[k] for k in dispatcher.placements))
            session = kernel.sessions().get(result.session_id)
            assert sorted(f.path for f in session.diff().files) == ["calc.py", "text.py"]
            assert b"def sub(a, b)" in session.read("calc.py")
            assert b"def whisper(s)" in session.read("text.py")
            assert result.verified is True
            assert (project / "calc.py").read_text() == FILES["calc.py"]
        finally:
            await kernel.close()


CODER_EDIT = edit(
    "calc.py", "    return a + b", "    return a + b\n\n\ndef sub(a, b):\n    return a - b"
)


async def test_a_capability_prompt_raised_on_a_worker_is_answered_in_the_kernel(
    tmp_path: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    project = repo(
        tmp_path / "proj", FILES, config='[agents.coder]\nread = ["**"]\nwrite = ["src/**"]\n'
    )
    trust_project(project)  # the grants apply: calc.py is outside the Coder's writes
    asked: list[CapabilityRequest] = []

    async def prompt(request: CapabilityRequest) -> Answer:
        asked.append(request)
        return "once"

    provider = ScriptedProvider([ScriptedReply(CODER_EDIT, agent="coder")])
    with workers(nats_server.url, nats_server.token, "wp"):
        kernel = Kernel(project)
        kernel.set_approvals("ask", prompt)
        try:
            dispatcher = await kernel.join_cluster(cluster(nats_server, offer_ms=2000))
            task_id = await kernel.submit("Add sub", agent="coder", provider=provider)
            result = await kernel.wait(task_id)
            assert result.status == "done", result
            assert placed(dispatcher, task_id) == ["wp"]
            # the worker's write reached the kernel's check, which asked the user here
            assert [(r.capability, r.target) for r in asked] == [("write", "calc.py")]
            session = kernel.sessions().get(result.session_id)
            assert b"def sub(a, b)" in session.read("calc.py")
            with sqlite3.connect(project / ".brio" / "state.db") as conn:
                rows = list(
                    conn.execute(
                        "SELECT instance, decision, decided_by FROM audit WHERE target = ?",
                        ("calc.py",),
                    )
                )
            # the audit row is the kernel's, naming the instance on the worker
            assert rows[-1][1:] == ("allowed", "user:once")
            assert "@wp#" in rows[-1][0]
        finally:
            await kernel.close()


async def test_a_worker_killed_mid_run_is_lost_and_the_task_retried_elsewhere(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    provider = ScriptedProvider(
        [
            ScriptedReply(CODER_EDIT, agent="coder", delay_ms=6000),
            ScriptedReply(CODER_EDIT, agent="coder"),
        ]
    )
    with workers(nats_server.url, nats_server.token, "wk1", "wk2") as started:
        by_id = {w.id: w for w in started}
        kernel = Kernel(project)
        try:
            dispatcher = await kernel.join_cluster(
                cluster(nats_server, offer_ms=2000, lost_after_ms=1000)
            )
            task_id = await kernel.submit("Add sub", agent="coder", provider=provider)
            # wait until the Coder is inside its (slow) model call, relayed from a worker
            end = time.monotonic() + 60
            first = None
            while time.monotonic() < end:
                running = [r for r in dispatcher.runs.values() if r.ctx.host_calls > 0]
                if running:
                    first = running[0]
                    break
                await asyncio.sleep(0.05)
            assert first is not None
            await asyncio.sleep(0.5)
            by_id[first.worker].process.send_signal(signal.SIGKILL)
            result = await kernel.wait(task_id)
            assert result.status == "done", result
            [second] = placed(dispatcher, task_id)
            assert second != first.worker
            assert second in by_id
            session = kernel.sessions().get(result.session_id)
            assert session.read("calc.py").count(b"def sub(a, b)") == 1
            assert sorted(f.path for f in session.diff().files) == ["calc.py"]
        finally:
            await kernel.close()


async def test_no_nats_configured_keeps_the_embedded_path(
    project: Path, built_agents: list[str]
) -> None:
    kernel = Kernel(project)
    try:
        assert await kernel.join_configured_cluster() is None
        assert kernel.cluster is None
        provider = ScriptedProvider([ScriptedReply(CODER_EDIT, agent="coder")])
        seen: list[object] = []
        kernel.events.subscribe(seen.append)
        result = await kernel.wait(await kernel.submit("Add sub", agent="coder", provider=provider))
        assert result.status == "done"
        # a local instance ran it (its id has no worker)
        ids = {e.instance for e in seen if isinstance(e, StateChanged) and e.agent == "coder"}
        assert ids
        assert all("@" not in i for i in ids)
    finally:
        await kernel.close()


def test_a_wrong_token_is_a_clear_error(nats_server: NatsServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("not-the-token\n")
    proc = subprocess.run(
        [sys.executable, "-m", "briotui", "worker", "--nats", nats_server.url,
         "--token-file", str(token)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "NATS refused the token" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_token_in_the_project_config_is_refused(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    project = repo(tmp_path / "proj", FILES, config=f'[cluster]\ntoken = "{nats_server.token}"\n')
    kernel = Kernel(project)
    try:
        with pytest.raises(ClusterError, match="never go in a repository file"):
            await kernel.join_configured_cluster(nats=nats_server.url)
        assert kernel.cluster is None
    finally:
        await kernel.close()


async def test_a_worker_without_the_component_fetches_it_by_hash_and_compiles_it_once(
    project: Path, built_agents: list[str], nats_server: NatsServer, tmp_path: Path
) -> None:
    empty = {  # a machine that never built anything
        "BRIOTUI_CACHE_DIR": str(tmp_path / "wcache"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "BRIOTUI_CACHE_ALSO": "",
    }
    compiled_dir = tmp_path / "wcache" / "cluster"
    kernel = Kernel(project)
    try:
        dispatcher = await kernel.join_cluster(cluster(nats_server, offer_ms=3000))

        async def echo(goal: str) -> str:
            provider = ScriptedProvider([ScriptedReply("hello")])
            outcome = await kernel.run_agent(
                "echo", goal, task_id=f"t-{goal}", bindings=RunBindings(provider=provider)
            )
            return outcome.summary

        worker = start_worker(nats_server.url, nats_server.token, "fresh", extra_env=empty)
        try:
            assert await echo("one")
            [artifact] = compiled_dir.glob("*.cwasm")  # fetched from the store, compiled
            made = artifact.stat().st_mtime_ns
            assert await echo("two")
        finally:
            worker.stop()
        again = start_worker(nats_server.url, nats_server.token, "again", extra_env=empty)
        try:
            assert await echo("three")  # a new process: its own compiled copy, no recompile
        finally:
            again.stop()
        assert [p.stat().st_mtime_ns for p in compiled_dir.glob("*.cwasm")] == [made]
        assert dispatcher.placements == {"t-one": "fresh", "t-two": "fresh", "t-three": "again"}
        # the object name is the component's content hash, checked on the worker
        assert artifact.name.split("-")[0] in {
            hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (kernel.builder.entry_for(kernel.agent("echo")).component,)
        }
    finally:
        await kernel.close()


def test_briotui_run_sends_the_agent_to_a_worker_when_the_user_config_names_nats(
    project: Path, built_agents: list[str], nats_server: NatsServer, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(f'[cluster]\nnats = "{nats_server.url}"\n')
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([CODER_EDIT]))
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "BRIOTUI_CONFIG_DIR": str(config_dir),
        "BRIOTUI_NATS_TOKEN": nats_server.token,
    }
    trust_project(project, user_dir=config_dir)
    with workers(nats_server.url, nats_server.token, "wcli"):
        proc = subprocess.run(
            [sys.executable, "-m", "briotui", "-C", str(project), "run", "Add sub", "--agent",
             "coder", "--provider", f"scripted:{replies}", "--approve", "never", "--json"],
            capture_output=True, text=True, timeout=180, env=env, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with sqlite3.connect(project / ".brio" / "state.db") as conn:
        instances = {row[0] for row in conn.execute("SELECT instance FROM audit")}
    # the kernel's audit rows name the instance that ran on the worker
    assert instances
    assert all("@wcli#" in i for i in instances)


SCRIBE = """
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, workspace_write


def ask(text):
    request = llm.CompletionRequest(
        messages=[llm.Message(role=llm.Role.USER, content=text)],
        max_tokens=100, temperature=None, stop=[], purpose="scribe",
    )
    return llm.complete(request).text.strip()


class Agent(exports.Agent):
    def run(self, task):
        name = ask("name a file")
        workspace_write.write(name, b"written\\n", False)
        ask("finish")
        workspace_write.write("final.txt", b"done\\n", False)
        return agent.Outcome(summary="wrote " + name, data="")
"""


async def test_what_a_lost_run_wrote_is_dropped_before_the_retry(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    directory = project / ".brio" / "agents" / "scribe"
    directory.mkdir(parents=True)
    (directory / "agent.toml").write_text('world = "coder"\n')
    (directory / "app.py").write_text(SCRIBE)
    trust_project(project)
    provider = ScriptedProvider(
        [
            ScriptedReply("lost.txt", match="name a file"),
            ScriptedReply("ok", match="finish", delay_ms=8000),
            ScriptedReply("kept.txt", match="name a file"),
            ScriptedReply("ok", match="finish"),
        ]
    )
    with workers(nats_server.url, nats_server.token, "ws1", "ws2") as started:
        by_id = {w.id: w for w in started}
        kernel = Kernel(project)
        kernel.set_approvals("all")
        # unjournaled, the retry starts again from nothing (with its journal it resumes
        # from it: tests/cluster/test_move.py)
        kernel.journaling = False
        try:
            dispatcher = await kernel.join_cluster(
                cluster(nats_server, offer_ms=2000, lost_after_ms=1000)
            )
            task_id = await kernel.submit("scribe", agent="scribe", provider=provider)
            end = time.monotonic() + 60
            first = None
            while time.monotonic() < end and first is None:
                # asked for a name, wrote lost.txt, now in its slow second model call
                busy = [r for r in dispatcher.runs.values() if r.ctx.host_calls >= 3]
                first = busy[0] if busy else None
                await asyncio.sleep(0.05)
            assert first is not None
            session = kernel.session_of(placed_task(dispatcher, task_id))
            assert session is not None
            assert session.read("lost.txt") == b"written\n"  # the lost run's write landed
            await asyncio.sleep(0.3)
            by_id[first.worker].process.send_signal(signal.SIGKILL)
            result = await kernel.wait(task_id)
            assert result.status == "done", result
            session = kernel.sessions().get(result.session_id)
            # the retry started from the session as it was: lost.txt is gone
            assert sorted(f.path for f in session.diff().files) == ["final.txt", "kept.txt"]
            [second] = placed(dispatcher, task_id)
            assert second != first.worker
        finally:
            await kernel.close()


async def test_a_cancel_reaches_the_run_on_its_worker(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    provider = ScriptedProvider([ScriptedReply(CODER_EDIT, agent="coder", delay_ms=30000)])
    with workers(nats_server.url, nats_server.token, "wc"):
        kernel = Kernel(project)
        try:
            dispatcher = await kernel.join_cluster(cluster(nats_server, offer_ms=2000))
            task_id = await kernel.submit("Add sub", agent="coder", provider=provider)
            assert await until(lambda: any(r.ctx.host_calls for r in dispatcher.runs.values()))
            assert kernel.cancel(task_id)
            result = await kernel.wait(task_id)
            assert result.status == "cancelled", result
            # the worker stopped the run and freed its slot (a later heartbeat says so)
            info = dispatcher.workers["wc"]
            ended = time.monotonic()
            assert await until(lambda: info.last_seen > ended and info.free == 1 and not info.runs)
            assert placed(dispatcher, task_id) == ["wc"]
            assert not dispatcher.runs  # the run ended in the kernel too
        finally:
            await kernel.close()


async def test_a_relayed_call_sent_twice_is_applied_once(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    kernel = Kernel(project)
    nc = await nats.connect(nats_server.url, token=nats_server.token)
    try:
        dispatcher = await kernel.join_cluster(cluster(nats_server, lost_after_ms=60_000))
        loaded = await kernel.load("echo", build=True)

        async def take(msg: Msg) -> None:  # a stand-in worker: takes the offer
            await msg.respond(b'{"worker": "stand-in"}')

        await nc.subscribe(f"brio.{dispatcher.ns}.run.*", queue="brio-workers", cb=take)
        task = AgentTask("t-dup", "dup")
        remote = await dispatcher.offer(loaded, task)
        assert remote is not None
        seen: list[object] = []
        kernel.events.subscribe(seen.append)
        runner = asyncio.ensure_future(remote.run(task, RunBindings(task_id="t-dup")))
        call = json.dumps(
            {"seq": 1, "iface": "log", "name": "emit", "args": hostcodec.encode(("info", "once"))}
        ).encode()
        subject = f"brio.{dispatcher.ns}.call.{dispatcher.id}.{remote.run_id}"
        first = await nc.request(subject, call, timeout=10)
        again = await nc.request(subject, call, timeout=10)  # a retry: same run, same seq
        assert first.data == again.data
        assert json.loads(first.data) == {"ok": None}
        await asyncio.sleep(0.2)
        lines = [e for e in seen if isinstance(e, LogLine) and e.message == "once"]
        assert len(lines) == 1  # served once
        assert remote.ctx.host_calls == 1
        remote.finish({"outcome": {"summary": "ok", "data": ""}})
        outcome = await runner
        assert outcome.summary == "ok"
    finally:
        await nc.close()
        await kernel.close()


@pytest.fixture
def clone(project: Path, tmp_path: Path) -> Path:
    """Another clone of ``project`` (the same first commit: the same namespace)."""
    where = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(where)], check=True)
    (where / ".brio").mkdir(exist_ok=True)
    trust_project(where)
    return where


async def test_two_kernels_of_one_project_share_workers_without_crossing_calls(
    project: Path, clone: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    kernels = [Kernel(project), Kernel(clone)]
    with workers(nats_server.url, nats_server.token, "shared", slots=2):
        try:
            dispatchers = [
                await k.join_cluster(cluster(nats_server, offer_ms=2000)) for k in kernels
            ]
            assert dispatchers[0].ns == dispatchers[1].ns  # the same project's namespace
            ids = [
                await k.submit(
                    "Add sub",
                    agent="coder",
                    provider=ScriptedProvider(
                        [ScriptedReply(CODER_EDIT, agent="coder", delay_ms=500)]
                    ),
                )
                for k in kernels
            ]
            results = [await k.wait(i) for k, i in zip(kernels, ids, strict=True)]
            assert [r.status for r in results] == ["done", "done"], results
            for kernel, dispatcher, task_id in zip(kernels, dispatchers, ids, strict=True):
                assert placed(dispatcher, task_id) == ["shared"]
                session = kernel.sessions().get(results[kernels.index(kernel)].session_id)
                assert b"def sub(a, b)" in session.read("calc.py")
        finally:
            for kernel in kernels:
                await kernel.close()


TUI = """
import asyncio, json, sys
from pathlib import Path
import briotui.ui.app as ui
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

async def main():
    provider = ScriptedProvider([ScriptedReply("Hello from a worker.")])
    app = ui.BrioApp(sys.argv[1], provider=provider, config_dir=Path(sys.argv[2]), build=False)
    seen = {}
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(600):
            if app.kernel is not None and app.kernel.cluster is not None:
                break
            await pilot.pause(0.05)
        await pilot.click("#request")
        await pilot.press(*"@echo hi", "enter")
        for _ in range(1200):
            tasks = app.mirror.get("tasks") or {}
            if tasks and all(t["status"] in ("done", "failed") for t in tasks.values()):
                break
            await pilot.pause(0.05)
        tasks = (app.mirror.get("tasks") or {}).values()
        seen["tasks"] = [[t["agent"], t["status"], t.get("worker")] for t in tasks]
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_the_tui_runs_agents_on_workers_when_the_user_config_names_nats(
    project: Path, built_agents: list[str], nats_server: NatsServer, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(f'[cluster]\nnats = "{nats_server.url}"\n')
    trust_project(project, user_dir=config_dir)
    env = {**os.environ, "PYTHONPATH": str(SRC), "BRIOTUI_NATS_TOKEN": nats_server.token}
    with workers(nats_server.url, nats_server.token, "wtui"):
        proc = subprocess.run(
            [sys.executable, "-c", TUI, str(project), str(config_dir)],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # the request's run went to the worker (the task around it stays in the kernel)
    assert ["echo", "done", "wtui"] in seen["tasks"], seen
    assert all(status == "done" for _, status, _ in seen["tasks"]), seen


READER = """
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import workspace, workspace_write


class Agent(exports.Agent):
    def run(self, task):
        data = workspace.read("big.bin")
        workspace_write.write("copy.bin", data, False)
        return agent.Outcome(summary=str(len(data)), data="")
"""


async def test_payloads_over_the_servers_limit_travel_through_the_blob_store(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    directory = project / ".brio" / "agents" / "reader"
    directory.mkdir(parents=True)
    (directory / "agent.toml").write_text('world = "coder"\n')
    (directory / "app.py").write_text(READER)
    trust_project(project)
    big = bytes(range(256)) * (5 * 1024)  # 1.25 MiB: over NATS's 1 MiB max_payload
    (project / "big.bin").write_bytes(big)
    with workers(nats_server.url, nats_server.token, "wbig"):
        kernel = Kernel(project)
        kernel.set_approvals("all")
        try:
            dispatcher = await kernel.join_cluster(cluster(nats_server, offer_ms=2000))
            session = kernel.sessions().create(label="big", task="copy")
            outcome = await kernel.run_agent(
                "reader", "copy it", task_id="t-big", bindings=RunBindings(workspace=session)
            )
            assert dispatcher.placements == {"t-big": "wbig"}
            assert outcome.summary == str(len(big))
            assert session.read("copy.bin") == big
        finally:
            await kernel.close()


def test_an_unreachable_server_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "briotui", "worker", "--nats", f"nats://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,  # nats-py alone retries a refused first connection forever
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
    )
    assert proc.returncode == 2
    assert "NATS server unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr

"""A real kernel's state over NATS: a run followed by observers, the TUI and the CLI.

The kernel runs the real Coder (built component, scripted model reply) in a real git
project; its state tree is published with :func:`publish_state` on the real
``nats-server``. Followers that joined before and during the run end with the kernel's
tree; ``briotui attach --nats`` shows the run read-only and refuses a request clearly.
"""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from tests.cluster.conftest import NatsServer
from tests.conftest import make_git_project
from tests.serve.helpers import served
from tests.ui.helpers import README_REPLY, wait_until

from briotui.cli.main import main
from briotui.kernel import contract
from briotui.kernel.cluster.follower import StateFollower
from briotui.kernel.cluster.observer import ObserverKernel
from briotui.kernel.cluster.statefeed import publish_state
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.serve.client import RemoteClient
from briotui.kernel.tasktree import TaskTree
from briotui.ui.app import make_app


@pytest.mark.slow
async def test_a_kernel_run_reaches_followers_in_order_and_late_joiners_converge(
    nats_server: NatsServer, tmp_path: Path, built_agents: list[str]
) -> None:
    project = make_git_project(tmp_path / "proj")
    kernel = Kernel(project)
    kernel.set_approvals("all")
    provider = ScriptedProvider([ScriptedReply(README_REPLY, agent="coder")])
    pub_nc = await nats.connect(nats_server.url, token=nats_server.token)
    sub_nc = await nats.connect(nats_server.url, token=nats_server.token)
    prefix = "brio.kernelrun"
    publisher = await publish_state(
        kernel.state, pub_nc, prefix, project=project.name, events=kernel.events
    )
    try:
        early = StateFollower(sub_nc, prefix)
        seqs: list[int] = []
        early.listeners.append(lambda p: seqs.append(p.seq) if p else None)
        streamed: list[str] = []
        early.event_listeners.append(lambda kind, fields: streamed.append(kind))
        await early.start()
        first = early.seq
        task_id = await kernel.submit("edit the readme", agent="coder", provider=provider)
        late = StateFollower(sub_nc, prefix)  # joins while the run goes on
        await late.start()
        result = await kernel.wait(task_id)
        assert result.status == "done"
        kernel.state.flush()
        for follower in (early, late):
            await follower.wait_seq(kernel.state.seq, within_s=20)
            assert follower.tree == kernel.state.get("")  # the same state as the kernel
            assert follower.resyncs == 0
        assert seqs == list(range(first + 1, kernel.state.seq + 1))  # every patch, in order
        view = contract.task(early.tree, task_id)
        assert view is not None
        assert view["status"] == "done"
        session = view["session"]
        assert session
        assert contract.session(late.tree, session) is not None
        assert "ModelReply" in streamed  # the conversation streamed too
        await early.close()
        await late.close()
    finally:
        await publisher.close()
        await pub_nc.close()
        await sub_nc.close()
        await kernel.close()


@pytest.mark.slow
async def test_the_observer_tui_follows_and_refuses_a_request(
    nats_server: NatsServer, tmp_path: Path, built_agents: list[str]
) -> None:
    project = make_git_project(tmp_path / "proj")
    kernel = Kernel(project)
    kernel.set_approvals("all")
    provider = ScriptedProvider([ScriptedReply(README_REPLY, agent="coder")])
    pub_nc = await nats.connect(nats_server.url, token=nats_server.token)
    prefix = "brio.observed"
    publisher = await publish_state(kernel.state, pub_nc, prefix, project="proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    async def observe() -> ObserverKernel:
        return await ObserverKernel.follow(nats_server.url, prefix, token=nats_server.token)

    try:
        app = make_app(
            elsewhere,
            attach=nats_server.url,
            observe=observe,
            config_dir=tmp_path / "cfg",
            build=False,
        )
        async with app.run_test(size=(110, 32)) as pilot:
            await wait_until(pilot, lambda: app.kernel_started.is_set())
            assert "read-only" in str(app.sub_title)
            task_id = await kernel.submit("edit the readme", agent="coder", provider=provider)
            await kernel.wait(task_id)
            await wait_until(
                pilot, lambda: app.mirror["tasks"].get(task_id, {}).get("status") == "done", 30
            )
            await pilot.click("#request")
            await pilot.press(*"@coder do more", "enter")
            await app.workers.wait_for_complete()
            refused = [n for n in app._notifications if n.title == "Read-only observer"]
            assert refused, [(n.title, n.message) for n in app._notifications]
            assert "cannot submit a request" in refused[0].message
            roots = [t for t in contract.tasks(kernel.state.get("")).values() if not t["parent"]]
            assert [t["id"] for t in roots] == [task_id]  # nothing reached the kernel
            main_screen = app._main_screen()
            assert main_screen is not None
            await main_screen.select_task(task_id)
            app.action_cancel_task()  # refused with a notice, not a crash
            await pilot.pause()
            notices = [n.message for n in app._notifications if n.title == "Read-only observer"]
            assert any("cannot cancel a task" in m for m in notices), notices
    finally:
        await publisher.close()
        await pub_nc.close()
        await kernel.close()


def test_attach_nats_with_a_wrong_token_is_a_clear_error(
    nats_server: NatsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    code = main(["attach", "--nats", nats_server.url, "--token-file", str(token_file)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "NATS refused the connection" in out + err
    assert "refused the token" in out + err
    assert "Traceback" not in out + err


def test_attach_nats_without_a_kernel_or_a_token_file_is_a_clear_error(
    nats_server: NatsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(nats_server.token)
    code = main(
        ["attach", "--nats", nats_server.url, "--token-file", str(token_file), "--namespace", "x"]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert "No kernel answers on brio.x.state.snapshot" in out + err
    assert "Traceback" not in out + err
    code = main(["attach", "--nats", nats_server.url, "--token-file", str(tmp_path / "none")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Cannot read the token file" in out + err
    assert "Traceback" not in out + err
    code = main(["attach", "ws://127.0.0.1:1/?token=x", "--nats", nats_server.url])
    out, err = capsys.readouterr()
    assert code == 2
    assert "either a ws://... URL or --nats" in out + err


async def test_a_served_kernel_relays_its_state_to_websocket_and_nats_alike(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """What ``briotui serve --nats`` does: one kernel, its WebSocket clients and NATS
    followers all see the same state."""
    project = make_git_project(tmp_path / "proj")
    async with served(project) as (kernel, server):
        nc = await nats.connect(nats_server.url, token=nats_server.token)
        publisher = await publish_state(kernel.state, nc, "brio.relay", project=project.name)
        try:
            watcher = RemoteClient(server.url, name="watcher")
            await watcher.connect()
            observer = await ObserverKernel.follow(
                nats_server.url, "brio.relay", token=nats_server.token
            )
            assert observer.client.hello["project"] == "proj"
            tasks = TaskTree(kernel.state)
            for i in range(20):
                tasks.add_task(f"t{i}", title=f"task {i}", agent="coder", parent=None)
                tasks.set_progress(f"t{i}", 50, "half way")
            tasks.set_status("t3", "done")
            kernel.state.flush()
            await watcher.wait_seq(kernel.state.seq)
            await observer.client.wait_for(lambda _t: observer.state.seq >= kernel.state.seq)
            assert observer.client.tree == watcher.tree == kernel.state.get("")
            await watcher.close()
            await observer.close()
        finally:
            await publisher.close()
            await nc.close()

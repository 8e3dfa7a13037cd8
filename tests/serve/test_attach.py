"""``briotui attach``: the TUI driving a served kernel (same process, real loopback socket).

The whole loop from the attached TUI — request, capability prompt, review, accept,
commit — against real agents with scripted replies; a second client sees every step
and ends with the same state; a prompt answered by another client leaves the TUI.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_git_project
from tests.trust_helpers import trust_project
from tests.ui.helpers import README_REPLY, finished, tasks_of, wait_until

from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.serve.client import RemoteClient
from briotui.ui.app import make_app
from briotui.ui.screens.capability import CapabilityPrompt
from briotui.ui.screens.review import ReviewScreen

from .helpers import served

pytestmark = pytest.mark.slow


@pytest.fixture
def restricted(tmp_path: Path, built_agents: list[str]) -> Path:
    """A project whose Coder may write only under src/: editing README.md asks."""
    project = make_git_project(tmp_path / "proj")
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[agents.coder]\nread = ["**"]\nwrite = ["src/**"]\n'
    )
    trust_project(project)
    return project


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=project, capture_output=True, text=True, check=True
    ).stdout


async def test_the_attached_tui_does_the_whole_loop(restricted: Path, tmp_path: Path) -> None:
    provider = ScriptedProvider([ScriptedReply(README_REPLY, agent="coder")])
    elsewhere = tmp_path / "elsewhere"  # the attached TUI runs in another directory
    elsewhere.mkdir()
    async with served(restricted, provider=provider) as (kernel, server):
        watcher = RemoteClient(server.url, name="watcher")
        await watcher.connect()
        app = make_app(elsewhere, attach=server.url, config_dir=tmp_path / "cfg", build=False)
        async with app.run_test(size=(110, 32)) as pilot:
            await pilot.click("#request")
            await pilot.press(*"@coder edit the readme", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, CapabilityPrompt), 120)
            prompt = app.screen
            assert isinstance(prompt, CapabilityPrompt)
            assert (prompt.request.capability, prompt.request.target) == ("write", "README.md")
            assert watcher.tree.get("prompts")  # the other client sees it waiting
            await pilot.press("y")
            await wait_until(pilot, lambda: finished(app), 120)
            [root] = [t for t in tasks_of(app).values() if not t.get("parent")]
            assert root["status"] == "done"
            session = root["session"]
            # the conversation streamed over the socket into the attached TUI
            await wait_until(pilot, lambda: "demo, edited" in app.transcript(root["id"]))

            await pilot.press("ctrl+r")  # review: the diff comes over the socket
            await app.workers.wait_for_complete()
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen))
            review = app.screen
            assert isinstance(review, ReviewScreen)
            await wait_until(pilot, lambda: bool(review.hunks))
            assert [h.path for h in review.hunks] == ["README.md"]
            await pilot.press("ctrl+a")  # accept all
            await app.workers.wait_for_complete()

            def accepted(tree: dict[str, Any]) -> bool:
                files = tree["sessions"][session]["files"]
                return files[0]["hunks"][0]["decision"] == "accepted"

            await watcher.wait_for(accepted)  # the other client sees the decision
            await pilot.press("c")  # commit
            await app.workers.wait_for_complete()
            await wait_until(pilot, lambda: not isinstance(app.screen, ReviewScreen), 60)
            await watcher.wait_for(lambda t: t["sessions"][session]["state"] == "committed")
            assert app.mirror["sessions"][session]["state"] == "committed"
        # the served project changed (and got its git commit), not the attached one's dir
        assert (restricted / "README.md").read_text() == "# demo, edited\n"
        assert git(restricted, "log", "-1", "--format=%s").strip() == "edit the readme"
        assert not (elsewhere / "README.md").exists()
        # leaving the TUI leaves the kernel as it was; the watcher's mirror is exact
        kernel.state.flush()
        await watcher.wait_seq(kernel.state.seq)
        assert watcher.tree == kernel.state.get("")
        await watcher.close()


async def test_what_another_client_does_shows_in_the_attached_tui(
    restricted: Path, tmp_path: Path
) -> None:
    provider = ScriptedProvider([ScriptedReply(README_REPLY, agent="coder")])
    async with served(restricted, provider=provider) as (_kernel, server):
        other = RemoteClient(server.url, name="other")
        await other.connect()
        app = make_app(tmp_path, attach=server.url, config_dir=tmp_path / "cfg", build=False)
        async with app.run_test(size=(110, 32)) as pilot:
            await pilot.click("#request")
            await pilot.press(*"@coder edit the readme", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, CapabilityPrompt), 120)
            [prompt_id] = other.tree["prompts"]
            await other.command("answer", prompt=prompt_id, answer="once")
            await wait_until(pilot, lambda: not isinstance(app.screen, CapabilityPrompt))
            await wait_until(pilot, lambda: finished(app), 120)
            [root] = [t for t in tasks_of(app).values() if not t.get("parent")]
            assert root["status"] == "done"
            # a hunk decided by the other client shows in the open review
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen))
            review = app.screen
            assert isinstance(review, ReviewScreen)
            await wait_until(pilot, lambda: bool(review.hunks))
            [hunk] = review.hunks
            assert review.decisions.get(hunk.id, ("pending", ""))[0] == "pending"
            await other.command(
                "decide", session=root["session"], decision="rejected", reason="not now"
            )
            await wait_until(
                pilot, lambda: review.decisions.get(hunk.id) == ("rejected", "not now")
            )
        await other.close()


async def test_attaching_with_a_wrong_token_exits_with_the_reason(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = make_git_project(tmp_path / "proj")
    async with served(project) as (_kernel, server):
        url = server.url.split("?")[0] + "?token=wrong-token-0123456789"
        app = make_app(tmp_path, attach=url, config_dir=tmp_path / "cfg", build=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await asyncio.sleep(0.2)
        assert app.return_code == 2


async def test_the_attached_tui_rejoins_after_the_connection_drops(tmp_path: Path) -> None:
    project = make_git_project(tmp_path / "proj")
    async with served(project) as (kernel, server):
        app = make_app(tmp_path, attach=server.url, config_dir=tmp_path / "cfg", build=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: bool(server.clients))
            [(_, connected)] = list(server.clients.items())
            await connected.ws.close()  # the network blips
            kernel.state.set(["usage", "cost_usd"], 4.5)
            await wait_until(pilot, lambda: app.mirror["usage"]["cost_usd"] == 4.5, 20)
            assert app.mirror == kernel.state.get("")
            titles = [n.title for n in app._notifications]
            assert "Kernel connection lost" in titles
        await asyncio.sleep(0.1)
        assert not server.clients  # quitting the TUI left the kernel


async def test_the_attached_tui_follows_a_restarted_serve(tmp_path: Path) -> None:
    """`briotui serve` restarted on the same port numbers its patches from 1 again: the
    attached TUI shows the new kernel's state (it once kept the old one, dropping every
    patch numbered below the old seq)."""
    from briotui.kernel.kernel import Kernel
    from briotui.kernel.serve.server import KernelServer
    from briotui.kernel.tasktree import TaskTree

    from .helpers import TOKEN

    project = make_git_project(tmp_path / "proj")
    async with served(project) as (kernel, server):
        tasks = TaskTree(kernel.state)
        for i in range(30):
            tasks.add_task(f"t{i}", title=f"task {i}", agent="coder", parent=None)
        port = server.port
        app = make_app(tmp_path, attach=server.url, config_dir=tmp_path / "cfg", build=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: len(app.mirror.get("tasks", {})) == 30)
            await server.close()
            await kernel.close()
            again = Kernel(project)
            restarted = KernelServer(again, TOKEN, port=port)
            await restarted.start()
            try:
                TaskTree(again.state).add_task("new", title="new", agent="coder", parent=None)
                await wait_until(pilot, lambda: "new" in app.mirror.get("tasks", {}), 30)
                assert app.mirror == again.state.get("")
            finally:
                await restarted.close()
                await again.close()

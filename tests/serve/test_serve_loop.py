"""The whole loop through a served kernel, only by commands over the socket: a request,
a capability prompt answered by one client while another watches, review, accept and
commit — real agents, scripted model replies, a real git repository.

And ``briotui serve`` itself as a process: it prints the URL, serves, stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import make_git_project
from tests.trust_helpers import trust_project

from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.serve.client import RemoteClient

from .helpers import audit_commands, served

pytestmark = pytest.mark.slow

REPLY = "README.md\n```\n<<<<<<< SEARCH\n# demo\n=======\n# demo, edited\n>>>>>>> REPLACE\n```\n"


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


async def test_request_prompt_review_commit_over_the_socket(restricted: Path) -> None:
    provider = ScriptedProvider([ScriptedReply(REPLY, agent="coder")])
    async with served(restricted, provider=provider) as (kernel, server):
        driver = RemoteClient(server.url, name="driver")
        watcher = RemoteClient(server.url, name="watcher")
        await driver.connect()
        await watcher.connect()

        task = (await driver.command("submit", goal="edit the readme", agent="coder"))["task"]
        tree = await watcher.wait_for(lambda t: bool(t.get("prompts")), within_s=120)
        [(prompt_id, prompt)] = tree["prompts"].items()
        assert (prompt["agent"], prompt["capability"], prompt["target"]) == (
            "coder",
            "write",
            "README.md",
        )
        await driver.command("answer", prompt=prompt_id, answer="once")
        tree = await watcher.wait_for(
            lambda t: t["tasks"].get(task, {}).get("status") in ("done", "failed"), within_s=120
        )
        assert tree["tasks"][task]["status"] == "done", tree["tasks"][task]
        session = tree["tasks"][task]["session"]
        [hunk] = [h for f in tree["sessions"][session]["files"] for h in f["hunks"]]
        assert hunk["decision"] == "pending"

        decided = await driver.command(
            "decide", session=session, hunks=[hunk["id"]], decision="accepted"
        )
        assert decided == {"hunks": [hunk["id"]]}
        await watcher.wait_for(
            lambda t: t["sessions"][session]["files"][0]["hunks"][0]["decision"] == "accepted"
        )
        committed = await driver.command("commit", session=session, force=True)
        assert committed["written"] == ["README.md"]
        assert (restricted / "README.md").read_text() == "# demo, edited\n"
        await watcher.wait_for(lambda t: t["sessions"][session]["state"] == "committed")

        # both mirrors are the kernel's state exactly
        kernel.state.flush()
        for client in (driver, watcher):
            await client.wait_seq(kernel.state.seq)
            assert client.tree == kernel.state.get("")
        # the prompt's answer and every command are audited with the client
        rows = kernel.capabilities().audit.rows()
        [asked] = [r for r in rows if r.target == "README.md" and r.decided_by == "user:once"]
        assert asked.reason == f"answered by client:{driver.client_id}"
        assert [(r["target"].split()[0], r["decided_by"]) for r in audit_commands(kernel)] == [
            ("submit", f"client:{driver.client_id}"),
            ("answer", f"client:{driver.client_id}"),
            ("decide", f"client:{driver.client_id}"),
            ("commit", f"client:{driver.client_id}"),
        ]
        await driver.close()
        await watcher.close()


async def test_briotui_serve_prints_the_url_serves_and_stops(tmp_path: Path) -> None:
    project = make_git_project(tmp_path / "proj")
    (project / "replies.json").write_text("[]")
    proc = subprocess.Popen(  # noqa: ASYNC220 - the real command, stopped below
        [
            sys.executable,
            "-m",
            "briotui",
            "-C",
            str(project),
            "serve",
            "--port",
            "0",
            "--json",
            "--provider",
            f"scripted:{project / 'replies.json'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = ""
        while not printed.rstrip().endswith("}"):  # one JSON object, indented
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, proc.stderr.read() if proc.stderr else ""
            printed += line
        info = json.loads(printed)
        assert info["url"].startswith("ws://127.0.0.1:")
        assert "token=" in info["url"]
        assert info["tls"] is False
        client = RemoteClient(info["url"], name="cli")
        await client.connect()
        assert set(client.tree) >= {"tasks", "sessions", "agents"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        await client.closed.wait()
        await client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

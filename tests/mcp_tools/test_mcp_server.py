"""``briotui mcp`` driven by the official SDK's client over stdio, on a temp git repo.

The server is the real CLI in a subprocess; the Coder is the real component, scripted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.cli.test_run_session_flow import BEFORE, REPLY
from tests.scripted import git

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"


def _params(project: Path, user_dir: Path, replies: Path) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "briotui", "-C", str(project), "mcp", "--provider", f"scripted:{replies}"],
        env={
            "PYTHONPATH": str(SRC),
            "BRIOTUI_CONFIG_DIR": str(user_dir),
            "BRIOTUI_CACHE_DIR": os.environ["BRIOTUI_CACHE_DIR"],
        },
    )


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    value = result.structured_content
    if isinstance(value, dict) and set(value) == {"result"}:
        value = value["result"]
    if not isinstance(value, dict):
        value = json.loads(result.content[0].text)
    return value


async def _session(project: Path, user_dir: Path, replies: Path, steps: Any) -> Any:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    with (project.parent / "server-stderr.txt").open("w") as errlog:
        async with (
            stdio_client(_params(project, user_dir, replies), errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await steps(session)


@pytest.fixture
def lines_project(project: Path) -> Path:
    (project / "app.py").write_text(BEFORE)
    git(project, "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qam", "forty lines")
    return project


async def test_submit_diff_accept_commit_through_the_sdk_client(
    lines_project: Path, tmp_path: Path, built_agents: list[str]
) -> None:
    project = lines_project
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "config.toml").write_text("[mcp]\nclients_may_commit = true\n")
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([REPLY]))

    async def steps(session: Any) -> dict[str, Any]:
        names = {t.name for t in (await session.list_tools()).tools}
        assert names >= {"submit", "wait", "diff", "accept", "reject", "commit"}
        started = _data(
            await session.call_tool(
                "submit", {"request": "rename two lines in app.py", "agent": "coder"}
            )
        )
        ended = _data(
            await session.call_tool("wait", {"task_id": started["task_id"], "timeout_s": 300})
        )
        assert ended["status"] == "ended", ended
        diff = _data(await session.call_tool("diff", {"session_id": started["session_id"]}))
        assert len(diff["hunks"]) == 2
        assert all(h["decision"] == "pending" for h in diff["hunks"])
        assert "findings" in diff
        first = diff["hunks"][0]["id"]
        accepted = _data(
            await session.call_tool(
                "accept", {"session_id": started["session_id"], "hunk_ids": [first]}
            )
        )
        assert accepted["hunks"] == [first]
        return _data(
            await session.call_tool(
                "commit", {"session_id": started["session_id"], "message": "from mcp"}
            )
        )

    committed = await _session(project, user_dir, replies, steps)
    assert committed["written"] == ["app.py"]
    assert committed["git_commit"]
    text = (project / "app.py").read_text()
    assert "line two\n" in text  # the accepted hunk
    assert "line 38\n" in text  # the other one was not accepted
    assert "from mcp" in git(project, "log", "-1", "--format=%s")


async def test_commit_is_left_to_the_user_unless_their_config_allows_it(
    lines_project: Path, tmp_path: Path, built_agents: list[str]
) -> None:
    project = lines_project
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    # a project cannot allow it for the user
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text("[mcp]\nclients_may_commit = true\n")
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([REPLY]))

    async def steps(session: Any) -> Any:
        started = _data(
            await session.call_tool("submit", {"request": "rename lines", "agent": "coder"})
        )
        await session.call_tool("wait", {"task_id": started["task_id"], "timeout_s": 300})
        await session.call_tool("accept", {"session_id": started["session_id"]})
        return await session.call_tool("commit", {"session_id": started["session_id"]})

    result = await _session(project, user_dir, replies, steps)
    assert result.is_error
    assert "stays for the user" in result.content[0].text
    assert (project / "app.py").read_text() == BEFORE
    assert git(project, "status", "--porcelain", "app.py") == ""


def test_a_client_reads_and_decides_only_the_sessions_it_started(
    lines_project: Path,
    tmp_path: Path,
    built_agents: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Observed: any MCP client could read, accept (and, allowed to commit, commit) the
    # user's own sessions, e.g. one the user is reviewing in the TUI, by its id.
    from briotui.cli.main import main

    project = lines_project
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "config.toml").write_text("[mcp]\nclients_may_commit = true\n")
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(user_dir))
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([REPLY]))
    code = main(
        ["-C", str(project), "run", "rename two lines", "--agent", "coder", "--provider",
         f"scripted:{replies}", "--json"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    users = json.loads(captured.out)["session"]["id"]
    assert code == 0

    async def steps(session: Any) -> list[Any]:
        return [
            await session.call_tool(name, {"session_id": users})
            for name in ("diff", "accept", "commit")
        ]

    for result in asyncio.run(_session(project, user_dir, replies, steps)):
        assert result.is_error
        assert "not started through this MCP server" in result.content[0].text
    code = main(["-C", str(project), "sessions", "show", users, "--json"])
    shown = json.loads(capsys.readouterr().out)["session"]
    decisions = {h["decision"] for f in shown["files"] for h in f["hunks"]}
    assert decisions == {"pending"}  # the user's session is as the user left it
    assert (project / "app.py").read_text() == BEFORE

"""Issue 12's commands through a served kernel: a merge conflict resolved by a client
over the socket (audited as that client, tests run again), a follow-up request that
continues the open session, and a commit that names the hunks it saw verified — real
agents, scripted replies, a real git repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, conflicting_coders, edit, repo

from briotui.kernel import contract
from briotui.kernel.errors import RemoteCommandFailed
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.serve.client import RemoteClient

from .helpers import audit_commands, served

pytestmark = pytest.mark.slow

PASSES = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) in (10, 15)\n"


async def test_a_client_resolves_a_conflict_continues_the_session_and_commits(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", {**FILES, "tests/test_calc.py": PASSES})
    provider = ScriptedProvider(
        [
            *conflicting_coders("calc.py"),
            ScriptedReply(
                edit("text.py", "    return s.upper()", '    return s.upper() + "!"'),
                agent="coder",
                match="shout louder",
            ),
        ]
    )
    async with served(project, provider=provider) as (kernel, server):
        client = RemoteClient(server.url, name="cli")
        await client.connect()
        first = (await client.command("submit", goal="Change add"))["task"]
        await kernel.wait(first)
        session = kernel.state.get(["tasks", first, "session"])

        def view(tree: dict[str, Any]) -> contract.SessionView | None:
            return contract.session(tree, session)

        await client.wait_for(lambda t: bool((view(t) or {}).get("conflicts")))
        with pytest.raises(RemoteCommandFailed, match="ours, theirs, both or text"):
            await client.command("resolve", session=session, path="calc.py", choice="x")
        done = await client.command(
            "resolve", session=session, path="calc.py", choice="theirs", region=1
        )
        assert done["remaining"] == 0
        assert done["resolution"] == "theirs"
        retest = await client.command("retest", session=session)
        assert retest["verified"] is True, retest
        await client.wait_for(lambda t: (view(t) or {}).get("verified") is True)
        assert b"3 * (a + b)" in kernel.sessions().get(session).read("calc.py")
        rows = [str(row) for row in audit_commands(kernel)]
        assert any("resolve" in row and "client:cli" in row for row in rows), rows

        # a follow-up continues the same session: its hunks join the earlier ones
        second = (
            await client.command("submit", goal="shout louder", agent="coder", session=session)
        )["task"]
        await kernel.wait(second)
        await client.wait_for(
            lambda t: (
                sorted(f["path"] for f in (view(t) or {"files": []})["files"])
                == ["calc.py", "text.py"]
            )
        )
        # the commit names the hunks it saw; a decision changed since is refused
        await client.command("decide", session=session, decision="accepted")
        check = await client.command("verify_commit", session=session)
        with pytest.raises(RemoteCommandFailed, match="changed"):
            await client.command("commit", session=session, force=True, expected=["h-not-these"])
        result = await client.command(
            "commit", session=session, force=True, expected=check["accepted"]
        )
        assert sorted(result["written"]) == ["calc.py", "text.py"]
        await client.close()

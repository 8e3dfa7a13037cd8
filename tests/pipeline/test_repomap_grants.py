"""The repository map follows the agent's read grants: with ``[agents.coder] read =
["src/**"]`` the Coder's map names nothing outside ``src/`` (neither file names nor
signatures), through the real kernel, the real built Coder and scripted replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import make_git_project
from tests.scripted import Recording, edit
from tests.trust_helpers import trust_project

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedReply

pytestmark = pytest.mark.slow


async def test_the_coders_map_shows_only_what_it_may_read(
    tmp_path: Path, built_agents: list[str]
) -> None:
    root = make_git_project(tmp_path / "proj")
    (root / "src").mkdir()
    (root / "src" / "visible.py").write_text("def visible_helper(x):\n    return x\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "vault.py").write_text("def rotate_master_key(token):\n    pass\n")
    (root / ".env").write_text("API_TOKEN=hunter2\n")
    (root / ".brio").mkdir()
    (root / ".brio" / "config.toml").write_text(
        '[agents.coder]\nread = ["src/**"]\nwrite = ["src/**"]\n'
    )
    trust_project(root)
    provider = Recording(
        [
            ScriptedReply(
                edit("src/visible.py", "    return x", "    return x  # same"),
                agent="coder",
            )
        ]
    )
    kernel = Kernel(root)
    try:
        task = await kernel.submit("Document visible_helper", agent="coder", provider=provider)
        result = await kernel.wait(task)
        assert result.status == "done", result
        prompt = provider.asked_by("coder")[0].messages[-1].content
        repo_map = prompt.split("Repository map", 1)[1]
        assert "visible_helper" in repo_map
        for hidden in ("secrets/vault.py", "rotate_master_key", ".env", "README.md", "app.py"):
            assert hidden not in repo_map, (hidden, repo_map)
    finally:
        await kernel.close()

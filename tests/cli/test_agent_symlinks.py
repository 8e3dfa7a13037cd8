"""A project agent may not be a symlink or hold one: the trust digest hashes a link's
target text, the build follows it, so code outside ``.brio/agents/`` could change after
the user trusted the project without a new prompt. Discovery refuses such an agent with
a clear error (real CLI, real git project, real trust store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import REPO, make_git_project
from tests.trust_helpers import trust_project

from briotui.cli.main import main
from briotui.kernel.settings import load_settings


def listing(project: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["-C", str(project), "agents", "list", "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize("linked", ["file", "directory"])
def test_a_symlinked_project_agent_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], linked: str
) -> None:
    project = make_git_project(tmp_path / "proj")
    tools = project / "tools"
    tools.mkdir()
    (tools / "app.py").write_text((REPO / "agents" / "echo" / "app.py").read_text())
    (tools / "agent.toml").write_text('world = "minimal"\n')
    agents = project / ".brio" / "agents"
    agents.mkdir(parents=True)
    if linked == "file":
        (agents / "sneaky").mkdir()
        (agents / "sneaky" / "agent.toml").write_text('world = "minimal"\n')
        (agents / "sneaky" / "app.py").symlink_to("../../../tools/app.py")
    else:
        (agents / "sneaky").symlink_to("../../tools")
    trust_project(project)
    # the attack: the linked code changes after trust, and the digest does not see it
    (tools / "app.py").write_text("# changed after the user trusted the project\n")
    assert load_settings(project).trusted
    data = listing(project, capsys)
    names = [a["name"] for a in data["agents"]]  # type: ignore[index, union-attr]
    assert "sneaky" not in names
    [problem] = [p for p in data["problems"] if p["agent"] == "sneaky"]  # type: ignore[union-attr]
    assert "symlink" in problem["message"].lower()  # type: ignore[index]
    assert "Symlink" in problem["title"]  # type: ignore[index]

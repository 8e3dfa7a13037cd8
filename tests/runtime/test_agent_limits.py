"""A project's own agents may only lower their limits; raising them is the user's call,
and a project agent cannot take over a built-in's name (and its grants)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from briotui.cli.main import main
from briotui.kernel.agents import discover
from briotui.kernel.limits import MIB
from briotui.kernel.paths import ProjectPaths

from .test_build import write_agent

APP = "x = 1\n"


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user config dir (empty unless a test writes config.toml)."""
    config = tmp_path / "user-config"
    config.mkdir()
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(config))
    return config / "config.toml"


def agents_list(project: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["-C", str(project), "agents", "list", "--json"]) == 0
    listed: dict[str, object] = json.loads(capsys.readouterr().out)
    return listed


@pytest.mark.parametrize(
    ("manifest", "needle"),
    [
        ('security = "relaxed"\n', 'security = "relaxed"'),
        ("[limits]\nmemory_bytes = 4294967296\n", "memory_bytes = 4294967296"),
        ("[limits]\nfuel = 999999999999999\n", "fuel = 999999999999999"),
        ('security = "strict"\n[limits]\ndeadline_ms = 200000\n', "deadline_ms = 200000"),
    ],
)
def test_a_project_agent_cannot_raise_its_own_limits(
    project: Path,
    user_config: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: str,
    needle: str,
) -> None:
    write_agent(project, "greedy", {"app.py": APP, "agent.toml": manifest})
    listed = agents_list(project, capsys)
    names = [a["name"] for a in listed["agents"]]  # type: ignore[attr-defined]
    assert "greedy" not in names
    [problem] = [p for p in listed["problems"] if p["agent"] == "greedy"]  # type: ignore[attr-defined]
    assert problem["title"] == "Agent asks for more than it may"
    assert needle.split(" = ")[0] in problem["message"]
    assert str(user_config) in problem["message"]  # says where to raise it
    assert "[agents.greedy]" in problem["message"]
    # running it is refused with the same explanation, before anything is built
    replies = project / "replies.json"
    replies.write_text('["hi"]')
    code = main(
        ["-C", str(project), "run", "hi", "--agent", "greedy", "--provider", f"scripted:{replies}"]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "[agents.greedy]" in err
    assert "Traceback" not in err


def test_the_user_config_raises_a_project_agents_limits(project: Path, user_config: Path) -> None:
    write_agent(
        project,
        "greedy",
        {
            "app.py": APP,
            "agent.toml": 'security = "relaxed"\n[limits]\nmemory_bytes = 4294967296\n',
        },
    )
    user_config.write_text('[agents.greedy]\nsecurity = "relaxed"\nmemory_bytes = 4294967296\n')
    spec = discover(ProjectPaths.at(project)).agents["greedy"]
    assert spec.security == "relaxed"
    assert spec.limits.memory_bytes == 4294967296


def test_a_project_agent_may_lower_its_limits(project: Path) -> None:
    write_agent(
        project,
        "modest",
        {"app.py": APP, "agent.toml": 'security = "strict"\n[limits]\nmemory_bytes = 67108864\n'},
    )
    found = discover(ProjectPaths.at(project))
    assert not [p for p in found.problems if p.agent == "modest"]
    spec = found.agents["modest"]
    assert spec.security == "strict"
    assert spec.limits.memory_bytes == 64 * MIB
    default = discover(None).agents["echo"].limits  # a shipped manifest is trusted as is
    assert default.memory_bytes == 128 * MIB  # echo is strict


def test_a_project_agent_cannot_take_a_builtins_name(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_agent(project, "smart", {"app.py": APP, "agent.toml": 'world = "smart"\n'})
    listed = agents_list(project, capsys)
    [smart] = [a for a in listed["agents"] if a["name"] == "smart"]  # type: ignore[attr-defined]
    assert smart["origin"] == "builtin"
    [problem] = [p for p in listed["problems"] if p["agent"] == "smart"]  # type: ignore[attr-defined]
    assert problem["title"] == "Agent name taken by a built-in"
    assert main(["-C", str(project), "doctor"]) in (0, 1)
    out = capsys.readouterr()
    assert "built-in agent 'smart'" in out.out + out.err

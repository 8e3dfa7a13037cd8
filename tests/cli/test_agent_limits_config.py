"""What a limit error tells the user to do works: raising (or lowering) an agent's limit
under ``[agents.NAME]`` in the user's config applies to its next run, and leaves the
agent's grants as they were.

Observed: the grants parser refused the limit keys ("Unknown keys ['deadline_ms'] under
[agents.probe]"), so every run failed after following the hint; and a table with only a
limit would have replaced the agent's default grants with none.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from briotui.cli.main import main
from briotui.kernel.caps.profiles import DEFAULT_PROFILES, build_profiles


@pytest.mark.slow
def test_a_limit_under_agents_name_applies_to_the_next_run(
    project: Path,
    built_agents: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "user-config"
    config.mkdir()
    (config / "config.toml").write_text("[agents.probe]\ndeadline_ms = 300\n")
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(config))
    code = main(["-C", str(project), "run", "--agent", "probe", "--json", "loop"])
    result = json.loads(capsys.readouterr().out)
    assert code != 0
    assert result["error"]["kind"] == "timeout", result
    assert "300 ms deadline" in result["error"]["message"]
    assert f"under [agents.probe] in {config / 'config.toml'}" in result["error"]["message"]


def test_limits_alone_leave_the_default_grants() -> None:
    defaults = build_profiles([])
    layered = build_profiles(
        [({"coder": {"deadline_ms": 600_000, "security": "default"}}, "the user's config")]
    )
    assert DEFAULT_PROFILES["coder"]
    assert layered["coder"] == defaults["coder"]
    replaced = build_profiles([({"coder": {"read": ["src/**"], "fuel": 10}}, "the user's config")])
    assert [g.pattern for g in replaced["coder"]] == ["src/**"]

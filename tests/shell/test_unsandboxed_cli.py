"""Without an OS sandbox, an agent's command runs only as the user's own setting says.

Through the whole path: ``briotui run --agent smart`` in a subprocess, the smart agent's
``shell.run`` host call, the capability checker and :class:`ShellService`. The user's
config turns the sandbox off (``[shell] sandbox = "off"``), so these run the same with
or without bubblewrap installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SANDBOX_OK

pytestmark = pytest.mark.slow

CHOICE = json.dumps({"argv": ["pytest", "-q"], "why": "run the tests"})


@pytest.fixture
def smart_project(project: Path, built_agents: list[str]) -> Path:
    (project / "test_app.py").write_text(
        "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    (project / "replies.json").write_text(json.dumps([CHOICE, "The tests pass."]))
    return project


def briotui(
    project: Path, user_config: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    user = project.parent / "user-config"
    user.mkdir(exist_ok=True)
    (user / "config.toml").write_text(user_config)
    return subprocess.run(
        [sys.executable, "-m", "briotui", "-C", str(project), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "BRIOTUI_CONFIG_DIR": str(user)},
    )


def run_smart(
    project: Path, user_config: str, approve: str, *, stdin: str = "", as_json: bool = True
) -> subprocess.CompletedProcess[str]:
    return briotui(
        project,
        user_config,
        "run",
        "run the tests",
        "--agent",
        "smart",
        "--provider",
        f"scripted:{project / 'replies.json'}",
        "--approve",
        approve,
        *(["--json"] if as_json else []),
        stdin=stdin,
    )


OFF = '[shell]\nsandbox = "off"\n'


def test_unsandboxed_command_is_refused_with_approve_never(smart_project: Path) -> None:
    proc = run_smart(smart_project, OFF, "never")
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "error"
    message = result["error"]["message"]
    assert "no OS sandbox" in message
    assert "bubblewrap" in message
    assert 'unsandboxed = "allow"' in message
    assert result["sandbox"]["sandboxed"] is False
    assert result["sandbox"]["unsandboxed"] == "ask"
    assert not (smart_project / ".pytest_cache").exists()


def test_text_output_and_doctor_say_unsandboxed(smart_project: Path) -> None:
    proc = run_smart(smart_project, OFF, "never", as_json=False)
    assert "UNSANDBOXED" in proc.stderr
    auto = '[shell]\nsandbox = "auto"\n'
    sandboxed = run_smart(smart_project, auto, "never", as_json=False)
    assert ("UNSANDBOXED" in sandboxed.stderr) is not SANDBOX_OK
    checks = json.loads(briotui(smart_project, OFF, "doctor", "--json").stdout)["checks"]
    [check] = [c for c in checks if c["name"] == "shell sandbox"]
    assert check["status"] == "warn"
    assert check["detail"].startswith("UNSANDBOXED")
    assert '"ask"' in check["detail"]


def test_the_user_confirms_at_the_prompt(smart_project: Path) -> None:
    proc = run_smart(smart_project, OFF, "ask", stdin="y\n")
    assert "NO SANDBOX" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "ok", proc.stderr
    assert result["result"]["data"]["exit_code"] == 0, result["result"]["data"]


def test_the_user_can_opt_in_or_refuse_in_their_own_config(smart_project: Path) -> None:
    allowed = json.loads(run_smart(smart_project, OFF + 'unsandboxed = "allow"\n', "never").stdout)
    assert allowed["status"] == "ok"
    assert allowed["sandbox"]["unsandboxed"] == "allow"
    denied = json.loads(run_smart(smart_project, OFF + 'unsandboxed = "deny"\n', "all").stdout)
    assert denied["status"] == "error"
    assert '"deny"' in denied["error"]["message"]


def test_a_project_cannot_opt_itself_in(smart_project: Path) -> None:
    (smart_project / ".brio").mkdir(exist_ok=True)
    (smart_project / ".brio" / "config.toml").write_text('[shell]\nunsandboxed = "allow"\n')
    proc = run_smart(smart_project, OFF, "never")
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "error"
    assert "user setting" in result["error"]["message"]

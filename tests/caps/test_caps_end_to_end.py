"""Capabilities wired into real agents' host calls, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

pytestmark = pytest.mark.slow

REPLY = "README.md\n```\n<<<<<<< SEARCH\n# demo\n=======\n# demo, edited\n>>>>>>> REPLACE\n```\n"


def briotui(project: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "briotui", "-C", str(project), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def restricted(project: Path, built_agents: list[str]) -> Path:
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[agents.coder]\nread = ["**"]\nwrite = ["src/**"]\n'
    )
    trust_project(project)  # [agents.*] grants apply in a trusted project
    (project / "replies.json").write_text(json.dumps([REPLY, REPLY, REPLY, REPLY]))
    return project


def run_coder(project: Path, approve: str, stdin: str = "") -> dict[str, object]:
    proc = briotui(
        project,
        "run",
        "edit the readme",
        "--agent",
        "coder",
        "--provider",
        f"scripted:{project / 'replies.json'}",
        "--approve",
        approve,
        "--json",
        stdin=stdin,
    )
    assert "Traceback" not in proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    # the pipeline's exit codes: 0 done; 2 an error, or nothing applied ("failed")
    assert proc.returncode == result["exit_code"], proc.stderr
    assert proc.returncode == (0 if result["outcome"] == "done" else 2)
    return result


def test_write_outside_the_grant_is_denied_by_default(restricted: Path) -> None:
    ran = run_coder(restricted, "never")
    assert ran["status"] == "error"
    assert ran["session"]["files"] == []  # type: ignore[index]
    assert "write 'README.md' was denied" in ran["error"]["message"]  # type: ignore[index]
    assert "--approve ask" in ran["error"]["message"]  # type: ignore[index]
    audit = json.loads(briotui(restricted, "audit", "--json", "--denied").stdout)
    targets = {(r["agent"], r["capability"], r["target"]) for r in audit["rows"]}
    assert ("coder", "write", "README.md") in targets
    assert all(r["decided_by"] == "policy:never" for r in audit["rows"])


def test_the_user_allows_it_once_at_the_prompt(restricted: Path) -> None:
    ran = run_coder(restricted, "ask", stdin="y\n")
    assert [f["path"] for f in ran["session"]["files"]] == ["README.md"]  # type: ignore[index]
    rows = json.loads(briotui(restricted, "audit", "--json").stdout)["rows"]
    assert any(r["target"] == "README.md" and r["decided_by"] == "user:once" for r in rows)
    # "once" is not remembered: the next run is asked again, and no input denies
    again = run_coder(restricted, "ask", stdin="")
    assert again["session"]["files"] == []  # type: ignore[index]


def test_always_for_this_project_is_not_asked_again(restricted: Path) -> None:
    run_coder(restricted, "ask", stdin="a\n")
    ran = run_coder(restricted, "never")
    assert [f["path"] for f in ran["session"]["files"]] == ["README.md"]  # type: ignore[index]


def test_audit_text_output(restricted: Path) -> None:
    run_coder(restricted, "never")
    out = briotui(restricted, "audit").stdout
    assert "coder" in out
    assert "denied" in out
    assert "README.md" in out

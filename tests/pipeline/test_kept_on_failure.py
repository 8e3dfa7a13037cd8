"""A run that stops after the Coders finished keeps their code: a Reviewer whose provider
is down, or a test step that cannot run, ends the run with outcome ``error`` but the
session with the merged changes stays open for review (before, it was discarded and
`briotui run` printed the id of a session that no longer existed). Real CLI, real agents,
scripted replies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, edit, repo

from briotui.cli.main import main

pytestmark = pytest.mark.slow

PLAN = {
    "agent": "council",
    "text": json.dumps(
        {"subtasks": [{"title": "sub", "goal": "Add sub to calc.py", "files": ["calc.py"]}]}
    ),
}
CODE = {
    "agent": "coder",
    "text": edit(
        "calc.py", "    return a + b", "    return a + b\n\n\ndef sub(a, b):\n    return a - b"
    ),
}
REVIEW = {"agent": "reviewer", "text": json.dumps({"verdict": "approve", "findings": []})}


def run(project: Path, replies: list[dict[str, Any]], tmp: Path) -> int:
    path = tmp / "replies.json"
    path.write_text(json.dumps(replies))
    return main(["-C", str(project), "run", "Add sub", "--provider", f"scripted:{path}", "--json"])


def finished(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def assert_kept(project: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    session = data["session"]
    assert session["state"] == "open", data
    assert [f["path"] for f in session["files"]] == ["calc.py"]
    # the id printed is a session that exists, with the Coder's change in it
    assert main(["-C", str(project), "sessions", "diff", session["id"]]) == 0
    assert "def sub(a, b):" in capsys.readouterr().out


def test_a_reviewer_outage_keeps_the_coded_session(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    outage = {"agent": "reviewer", "error": "unavailable"}
    code = run(project, [PLAN, CODE, *[outage] * 6], tmp_path)
    data = finished(capsys)
    assert code == 2, data
    assert data["outcome"] == "error", data
    assert data["verified"] is not True
    assert_kept(project, data, capsys)


def test_a_test_step_that_fails_to_run_keeps_the_coded_session(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    config = project / ".brio" / "config.toml"
    config.write_text('[tests]\ncommand = "no-such-test-runner-xyz -q"\n')
    from tests.trust_helpers import trust_project

    trust_project(project)
    code = run(project, [PLAN, CODE, REVIEW], tmp_path)
    data = finished(capsys)
    assert code == 2, data
    assert data["outcome"] == "error", data
    assert "no-such-test-runner-xyz" in json.dumps(data["error"])
    assert_kept(project, data, capsys)

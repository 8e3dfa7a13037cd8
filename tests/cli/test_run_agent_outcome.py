"""``briotui run --agent coder`` that applies nothing is a failed run, not a success.

The real Coder component runs from the CLI with scripted replies whose SEARCH never
matches: the run must say it failed and why (text and ``--json``) and exit with the
pipeline's code for "failed" (2), not 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from briotui.cli.cmd_run import EXIT_CODES
from briotui.cli.main import main

pytestmark = pytest.mark.slow

MISS = (
    "app.py\n```\n<<<<<<< SEARCH\n    return a * b\n=======\n    return a + b  # sum\n"
    ">>>>>>> REPLACE\n```\n"
)
HIT = (
    "app.py\n```\n<<<<<<< SEARCH\n    return a + b\n=======\n    return a + b  # sum\n"
    ">>>>>>> REPLACE\n```\n"
)


def run_coder(project: Path, replies: list[object], *extra: str) -> int:
    path = project.parent / "replies.json"
    path.write_text(json.dumps(replies))
    return main(
        [
            "-C",
            str(project),
            "run",
            "comment the sum",
            "--agent",
            "coder",
            "--provider",
            f"scripted:{path}",
            *extra,
        ]
    )


def test_a_coder_run_that_applies_nothing_fails_with_the_reason_in_json(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_coder(project, [MISS] * 4, "--json")
    ran = json.loads(capsys.readouterr().out)
    assert code == EXIT_CODES["failed"] == 2, ran
    assert ran["outcome"] == "failed"
    assert ran["exit_code"] == 2
    assert ran["session"]["files"] == []
    assert ran["session"]["state"] == "discarded"
    [failed] = ran["failed_subtasks"]
    assert failed["reason"].startswith("applied nothing")
    assert "app.py: the SEARCH text was not found" in failed["reason"]  # the Coder's words


def test_a_coder_run_that_applies_nothing_says_so_in_text(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_coder(project, [MISS] * 4)
    captured = capsys.readouterr()
    assert code == 2
    assert "Outcome: failed (nothing was changed)" in captured.out
    assert "why: applied nothing" in captured.out


def test_a_coder_run_that_edits_is_done(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_coder(project, [HIT], "--json")
    ran = json.loads(capsys.readouterr().out)
    assert code == 0, ran
    assert ran["outcome"] == "done"
    assert ran["exit_code"] == 0
    assert ran["failed_subtasks"] == []
    assert [f["path"] for f in ran["session"]["files"]] == ["app.py"]

"""The whole loop from the shell: run the Coder, review the session, commit accepted hunks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.scripted import git

from briotui.cli.main import main

pytestmark = pytest.mark.slow

BEFORE = "".join(f"line {i}\n" for i in range(1, 41))

REPLY = """app.py
```
<<<<<<< SEARCH
line 2
=======
line two
>>>>>>> REPLACE
```

app.py
```
<<<<<<< SEARCH
line 38
=======
line thirty-eight
>>>>>>> REPLACE
```
"""

BAD_THEN_GOOD = [
    "app.py\n```\n<<<<<<< SEARCH\nno such line\n=======\nx\n>>>>>>> REPLACE\n```\n",
    "app.py\n```\n<<<<<<< SEARCH\nline 5\n=======\nline five\n>>>>>>> REPLACE\n```\n",
]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def lines_project(project: Path) -> Path:
    (project / "app.py").write_text(BEFORE)
    git(project, "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qam", "forty lines")
    return project


def test_run_review_and_commit_exactly_the_accepted_hunks(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps([REPLY]))
    code, ran = run_json(
        capsys,
        "-C",
        str(project),
        "run",
        "rename two lines in app.py",
        "--agent",
        "coder",
        "--provider",
        f"scripted:{replies}",
        "--json",
    )
    assert code == 0, ran
    assert (project / "app.py").read_text() == BEFORE  # nothing applied by the run
    session = ran["session"]["id"]
    [changed] = ran["session"]["files"]
    assert changed["path"] == "app.py"
    first, second = changed["hunks"]

    assert main(["-C", str(project), "sessions", "diff", session]) == 0
    diff = capsys.readouterr().out
    assert first in diff
    assert second in diff
    assert "+line two" in diff

    assert main(["-C", str(project), "sessions", "accept", session, first]) == 0
    assert main(["-C", str(project), "sessions", "reject", session, second]) == 0
    capsys.readouterr()
    code = main(["-C", str(project), "sessions", "commit", session, "--git", "-m", "Rename line 2"])
    assert code == 0, capsys.readouterr()

    text = (project / "app.py").read_text()
    assert "line two\n" in text
    assert "line 38\n" in text
    assert "line thirty-eight" not in text
    assert git(project, "log", "-1", "--format=%s").strip() == "Rename line 2"
    shown = git(project, "show", "--format=", "HEAD")
    assert "+line two" in shown
    assert "thirty-eight" not in shown


def test_coder_retries_a_block_that_does_not_apply(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    replies = lines_project.parent / "replies.json"
    replies.write_text(json.dumps(BAD_THEN_GOOD))
    code, ran = run_json(
        capsys,
        "-C",
        str(lines_project),
        "run",
        "edit app.py",
        "--agent",
        "coder",
        "--provider",
        f"scripted:{replies}",
        "--json",
    )
    assert code == 0, ran
    data = ran["result"]["data"]
    assert data["rounds"] == 2
    assert data["edited"] == ["app.py"]
    assert ran["session"]["files"][0]["path"] == "app.py"


def test_revise_hands_the_rejected_hunk_and_its_reason_to_the_coder(
    lines_project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = lines_project
    replies = project.parent / "replies.json"
    replies.write_text(json.dumps([REPLY]))
    code, ran = run_json(
        capsys, "-C", str(project), "run", "rename two lines", "--agent", "coder",
        "--provider", f"scripted:{replies}", "--json",
    )  # fmt: skip
    assert code == 0, ran
    session = ran["session"]["id"]
    first, second = ran["session"]["files"][0]["hunks"]
    assert main(["-C", str(project), "sessions", "accept", session, first]) == 0
    reason = "spell numbers as digits here"
    assert (
        main(["-C", str(project), "sessions", "reject", session, second, "--reason", reason]) == 0
    )
    capsys.readouterr()
    # the reply fits only a prompt that carries the rejected hunk's reason and the instruction
    again = project.parent / "again.json"
    again.write_text(
        json.dumps(
            [
                {
                    "text": "app.py\n```\n<<<<<<< SEARCH\nline thirty-eight\n=======\n"
                    "line 38 (kept)\n>>>>>>> REPLACE\n```\n",
                    "agent": "coder",
                    "match": reason,
                }
            ]
        )
    )
    code, revised = run_json(
        capsys, "-C", str(project), "sessions", "revise", session, "-m", "say kept",
        "--provider", f"scripted:{again}", "--json",
    )  # fmt: skip
    assert code == 0, revised
    assert revised["status"] == "done"
    assert revised["session"] == session
    assert second not in revised["hunks"]
    assert first in revised["hunks"]
    assert main(["-C", str(project), "sessions", "diff", session]) == 0
    assert "+line 38 (kept)" in capsys.readouterr().out

"""A block the session refuses (a protected path) costs that block only, not the Coder's run.

The real Coder component runs from the CLI with scripted replies. Its reply creates
``.git/config`` (an empty SEARCH block, refused by the path policy) and edits
``app.py``: the edit lands in the session, the refusal is reported in the outcome, and
when the Coder asks the model again (for a block that did not apply) the model is told
which block was refused and why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from briotui.cli.main import main
from briotui.kernel.vfs import SessionManager

pytestmark = pytest.mark.slow

GIT_CONFIG = (
    ".git/config\n```\n<<<<<<< SEARCH\n=======\n[core]\n\tfsmonitor = touch /tmp/pwned\n"
    ">>>>>>> REPLACE\n```\n"
)
APP_EDIT = (
    "app.py\n```\n<<<<<<< SEARCH\n    return a + b\n=======\n"
    "    return a + b  # the sum\n>>>>>>> REPLACE\n```\n"
)
README_MISS = (
    "README.md\n```\n<<<<<<< SEARCH\n# no such title\n=======\n# demo\n>>>>>>> REPLACE\n```\n"
)
README_EDIT = "README.md\n```\n<<<<<<< SEARCH\n# demo\n=======\n# demo!\n>>>>>>> REPLACE\n```\n"


def run_coder(
    project: Path, capsys: pytest.CaptureFixture[str], replies: list[object]
) -> tuple[int, dict]:  # type: ignore[type-arg]
    path = project.parent / "replies.json"
    path.write_text(json.dumps(replies))
    code = main(
        [
            "-C",
            str(project),
            "run",
            "comment the sum",
            "--agent",
            "coder",
            "--provider",
            f"scripted:{path}",
            "--json",
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def session_text(project: Path, session_id: str, path: str) -> bytes | None:
    manager = SessionManager.open(project)
    try:
        session = manager.get(session_id)
        change = session.diff().file(path)
        return None if change is None else change.new
    finally:
        manager.close()


def test_a_refused_block_does_not_abort_the_run(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    git_config = (project / ".git" / "config").read_bytes()
    code, ran = run_coder(project, capsys, [GIT_CONFIG + "\n" + APP_EDIT])
    assert code == 0, ran
    assert ran["status"] == "ok"
    session = ran["session"]["id"]
    assert [f["path"] for f in ran["session"]["files"]] == ["app.py"]
    assert session_text(project, session, "app.py") == (
        b"def add(a, b):\n    return a + b  # the sum\n"
    )
    data = ran["result"]["data"]
    assert data["edited"] == ["app.py"]
    assert data["rounds"] == 1  # a refusal is final: the model is not asked again for it
    [refused] = data["refused"]
    assert refused["path"] == ".git/config"
    assert ".git" in refused["reason"]
    assert ".git/config" in ran["result"]["summary"]
    assert "refused" in ran["result"]["summary"].lower()
    assert (project / ".git" / "config").read_bytes() == git_config


def test_the_model_is_told_which_block_was_refused_and_why(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    first = GIT_CONFIG + "\n" + APP_EDIT + "\n" + README_MISS
    # the second reply only answers a request that names the refused block
    second = {"text": README_EDIT, "match": "refused: .git/config"}
    code, ran = run_coder(project, capsys, [first, second])
    assert code == 0, ran
    data = ran["result"]["data"]
    assert data["rounds"] == 2
    assert data["edited"] == ["README.md", "app.py"]
    assert data["failed"] == []
    assert [r["path"] for r in data["refused"]] == [".git/config"]


def test_a_block_with_a_malformed_path_is_sent_back_not_fatal(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    absolute = "/tmp/evil.py\n```\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n```\n"
    second = {"text": README_EDIT, "match": "/tmp/evil.py: cannot write it"}
    code, ran = run_coder(project, capsys, [absolute + "\n" + APP_EDIT, second])
    assert code == 0, ran
    data = ran["result"]["data"]
    assert data["rounds"] == 2
    assert data["edited"] == ["README.md", "app.py"]
    assert data["refused"] == []


def test_a_reply_refused_entirely_fails_with_the_reason(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, ran = run_coder(project, capsys, [GIT_CONFIG])
    assert code == 2  # "error", as for the pipeline
    assert ran["status"] == "error"
    assert ".git" in ran["error"]["message"]
    assert ran["session"]["files"] == []

"""A follow-up request continues the open session: ``briotui run --session ID "..."``.

Real CLI, real pipeline, real agents and pytest, scripted replies. The first request adds
``sub`` to calc.py; the follow-up (whose Council reply answers only a prompt holding
both requests, and whose Coder reply answers only a prompt showing ``sub``, which only
the session has) adds ``whisper`` to text.py and a test of ``sub``. The follow-up's
hunks join the first one in the same session, whose tests run again on all of it; a
discarded or unknown session is refused with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import FILES, edit, repo

from briotui.cli.main import main
from briotui.kernel.vfs import SessionManager

pytestmark = pytest.mark.slow

SUB = "    return a + b\n\n\ndef sub(a, b):\n    return a - b"
TEST_SUB = "from calc import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"
APPROVE = {"agent": "reviewer", "text": json.dumps({"verdict": "approve", "findings": []})}


def council(*subtasks: dict[str, Any], match: str | None = None) -> dict[str, Any]:
    reply = {"agent": "council", "text": json.dumps({"question": None, "subtasks": subtasks})}
    return {**reply, "match": match} if match else reply


FIRST = [
    council({"title": "sub", "goal": "Add sub(a, b) to calc.py", "files": ["calc.py"]}),
    {"agent": "coder", "text": edit("calc.py", "    return a + b", SUB)},
    APPROVE,
]
FOLLOW_UP = [
    # answers only a Council prompt that holds the earlier request with the new one
    council(
        {
            "title": "whisper and a test of sub",
            "goal": "Add whisper(s) to text.py and a test of sub",
            "files": ["text.py", "calc.py", "tests/test_sub.py"],
        },
        match="1. Add sub(a, b) to calc.py",
    ),
    # answers only a Coder whose branch holds the session's sub (the base has no sub)
    {
        "agent": "coder",
        "match": "return a - b",
        "text": edit(
            "text.py",
            "    return s.upper()",
            "    return s.upper()\n\n\ndef whisper(s):\n    return s.lower()",
        )
        + "\n"
        + f"tests/test_sub.py\n```\n<<<<<<< SEARCH\n=======\n{TEST_SUB}>>>>>>> REPLACE\n```\n",
    },
    APPROVE,
]


def run(
    project: Path, replies: list[Any], capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, Any]:
    path = project.parent / f"replies-{len(extra)}.json"
    path.write_text(json.dumps(replies))
    code = main(["-C", str(project), "run", *extra, "--provider", f"scripted:{path}", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else captured.err


def test_a_follow_up_continues_the_open_session(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    code, first = run(project, FIRST, capsys, "Add sub(a, b) to calc.py")
    assert code == 0, first
    session_id = first["session"]["id"]
    [sub_hunk] = first["session"]["files"][0]["hunks"]

    code, second = run(
        project, FOLLOW_UP, capsys, "--session", session_id, "Add whisper(s) to text.py"
    )
    assert code == 0, second
    assert second["outcome"] == "verified"
    assert second["session_id"] == session_id
    files = {f["path"]: f["hunks"] for f in second["session"]["files"]}
    assert set(files) == {"calc.py", "text.py", "tests/test_sub.py"}
    assert files["calc.py"] == [sub_hunk]  # the earlier hunk, next to the new ones
    # the tests ran again, on the whole session: test_sub passes only with sub in it
    manager = SessionManager.open(project)
    try:
        runs = manager.store.query(
            "SELECT output, exit_code FROM command_runs WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        roots = manager.store.query(
            "SELECT goal FROM tasks WHERE session_id = ? AND parent_id IS NULL ORDER BY created",
            (session_id,),
        )
        assert manager.get(session_id).state == "open"
    finally:
        manager.close()
    assert len(runs) == 2
    assert runs[-1]["exit_code"] == 0
    assert "2 passed" in runs[-1]["output"]
    assert [r["goal"] for r in roots] == ["Add sub(a, b) to calc.py", "Add whisper(s) to text.py"]
    assert (project / "calc.py").read_text() == FILES["calc.py"]  # nothing was applied


def test_a_follow_up_to_a_discarded_or_unknown_session_is_refused(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    code, first = run(project, FIRST, capsys, "Add sub(a, b) to calc.py")
    assert code == 0, first
    session_id = first["session"]["id"]
    assert main(["-C", str(project), "sessions", "discard", session_id]) == 0
    capsys.readouterr()
    code, err = run(project, FOLLOW_UP, capsys, "--session", session_id, "Add whisper")
    assert code == 2
    assert err["error"]["title"] == "Cannot continue this session"
    assert err["error"]["message"].startswith(f"Session {session_id} is discarded")
    code, err = run(project, FOLLOW_UP, capsys, "--session", "s-nosuchthing", "Add whisper")
    assert code == 2
    assert err["error"]["title"] == "No such session"


def test_run_help_says_how_to_continue_a_session(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--session ID" in text
    assert "continue this open session" in text


COMMENT = edit("app.py", "    return a + b", "    return a + b  # sum")
README = edit("README.md", "# demo", "# demo!")


def test_one_agent_can_continue_a_session_too(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, first = run(project, [COMMENT], capsys, "--agent", "coder", "comment the sum")
    assert code == 0, first
    session_id = first["session"]["id"]
    # the Coder is told the earlier request; its edit joins the session's first one
    replies = [{"agent": "coder", "match": "1. comment the sum", "text": README}]
    code, second = run(
        project, replies, capsys, "--agent", "coder", "--session", session_id, "shout the title"
    )
    assert code == 0, second
    assert second["session"]["id"] == session_id
    assert [f["path"] for f in second["session"]["files"]] == ["README.md", "app.py"]
    # a Coder that changes nothing in the continued session failed, and the session stays
    miss = edit("README.md", "# nope", "# x")
    code, third = run(
        project, [miss] * 4, capsys, "--agent", "coder", "--session", session_id, "again"
    )
    assert code == 2, third
    assert third["outcome"] == "failed"
    assert third["session"]["state"] == "open"
    assert len(third["session"]["files"]) == 2
    # the earlier requests, each once, as the user wrote them
    manager = SessionManager.open(project)
    try:
        [prompt] = manager.store.query(
            "SELECT content FROM messages WHERE role = 'user' AND content LIKE '%Request: again%'"
        )
    finally:
        manager.close()
    assert prompt["content"].count("Earlier requests:") == 1
    assert "1. comment the sum\n2. shout the title\n" in prompt["content"]

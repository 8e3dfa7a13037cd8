"""Verify what you commit: accepting only some hunks means the session's verified run no
longer covers the commit, so the test command runs on exactly the accepted hunks first.
The observed case: rejecting the hunk that adds a function leaves its ``__all__`` entry,
``from mylib import *`` breaks; the commit is refused without ``--force``. An unverified
session needs ``--force`` too. Real pipeline, agents, pytest, git; the CLI's main()."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import REVIEW, edit, plan, repo

from briotui.cli.main import main
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow

PADDING = "".join(f"\n\ndef f{i}(x):\n    return x + {i}\n" for i in range(4))
CALC = f'__all__ = ["add"]\n\n\ndef add(a, b):\n    return a + b\n{PADDING}'
FILES = {
    "calc.py": "",
    "text.py": "",
    "mylib/__init__.py": CALC,
    "tests/test_calc.py": (
        "from mylib import *  # noqa: F403\n\n\ndef test_add():\n"
        "    assert add(2, 3) == 5  # noqa: F405\n"
    ),
}
SUB = "\n\ndef sub(a, b):\n    return a - b\n"


def replies() -> ScriptedProvider:
    return ScriptedProvider(
        [
            plan(
                {
                    "title": "sub",
                    "goal": "Export sub(a, b) from mylib",
                    "files": ["mylib/__init__.py"],
                }
            ),
            ScriptedReply(
                edit("mylib/__init__.py", '__all__ = ["add"]', '__all__ = ["add", "sub"]')
                + "\n"
                + edit(
                    "mylib/__init__.py",
                    "def f3(x):\n    return x + 3",
                    "def f3(x):\n    return x + 3" + SUB.rstrip("\n"),
                ),
                agent="coder",
                match="Export sub",
            ),
            REVIEW,
        ]
    )


def project_at(root: Path) -> Path:
    project = repo(root, FILES, tracked=("calc.py", "text.py", "tests"))
    subprocess.run(["git", "add", "mylib"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qm", "calc"],
        cwd=project,
        check=True,
    )
    return project


async def run_pipeline(project: Path) -> tuple[str, list[str]]:
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Export sub(a, b) from mylib", provider=replies())
        result = await kernel.wait(task_id)
        assert result.verified is True, result
        hunks = [h.id for h in kernel.sessions().get(result.session_id).diff().hunks()]
        return result.session_id, hunks
    finally:
        await kernel.close()


async def kernel_runs(project: Path) -> list[Any]:
    kernel = Kernel(project)
    try:
        return kernel.sessions().store.query(
            "SELECT session_id, exit_code, output FROM command_runs WHERE agent = 'kernel'"
        )
    finally:
        await kernel.close()


async def session_by_hand(project: Path) -> str:
    kernel = Kernel(project)
    try:
        session = kernel.sessions().create(label="by hand")
        session.write("mylib/extra.py", b"X = 1\n", False)
        return session.id
    finally:
        await kernel.close()


def test_a_subset_that_breaks_the_tests_is_not_committed_without_force(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = project_at(tmp_path / "proj")
    session_id, hunks = asyncio.run(run_pipeline(project))
    assert len(hunks) == 2  # the __all__ entry and the function, apart
    all_hunk, def_hunk = hunks
    cli = ["-C", str(project), "sessions"]
    assert main([*cli, "accept", session_id, all_hunk]) == 0
    assert main([*cli, "reject", session_id, def_hunk]) == 0
    capsys.readouterr()
    code = main([*cli, "commit", session_id, "--git", "-m", "Export sub"])
    out = capsys.readouterr()
    assert code != 0
    text = out.out + out.err
    assert "tests fail on the 1 accepted hunk(s)" in text
    assert "Failing: tests/test_calc.py" in text  # it does not even import
    assert (project / "mylib" / "__init__.py").read_text() == CALC  # nothing was written
    head = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True)
    assert len(head.stdout.splitlines()) == 2
    # the subset run is stored, with its output
    rows = asyncio.run(kernel_runs(project))
    assert [r["exit_code"] for r in rows] == [2]  # pytest: interrupted by a collection error
    assert "AttributeError" in rows[0]["output"]
    # the user confirms: --force commits the subset anyway
    assert main([*cli, "commit", session_id, "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == ["mylib/__init__.py"]
    assert '"sub"' in (project / "mylib" / "__init__.py").read_text()


def test_the_whole_verified_session_commits_and_an_unverified_one_needs_force(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = project_at(tmp_path / "proj")
    session_id, _ = asyncio.run(run_pipeline(project))
    cli = ["-C", str(project), "sessions"]
    assert main([*cli, "accept", session_id]) == 0
    assert main([*cli, "commit", session_id]) == 0  # verified as a whole: no extra run
    assert "def sub" in (project / "mylib" / "__init__.py").read_text()
    # a session the tests never ran on
    other = asyncio.run(session_by_hand(project))
    assert main([*cli, "accept", other]) == 0
    capsys.readouterr()
    assert main([*cli, "commit", other]) != 0
    assert "never ran" in capsys.readouterr().err
    assert not (project / "mylib" / "extra.py").exists()
    assert main([*cli, "commit", other, "--force"]) == 0
    assert (project / "mylib" / "extra.py").exists()


async def change_after_tests(project: Path, session_id: str) -> None:
    """What a revision does: the session's files change after its test run."""
    kernel = Kernel(project)
    try:
        session = kernel.sessions().get(session_id)
        broken = session.read("mylib/__init__.py").replace(b"return a + b", b"return a - b")
        session.write("mylib/__init__.py", broken, False)
    finally:
        await kernel.close()


def test_a_session_changed_after_its_test_run_is_tested_again_before_commit(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Tried in the TUI: reject, Revise, accept, commit; the last test run was on the
    content before the revision, and it was taken as the verification of the new one."""
    project = project_at(tmp_path / "proj")
    session_id, _ = asyncio.run(run_pipeline(project))
    asyncio.run(change_after_tests(project, session_id))
    cli = ["-C", str(project), "sessions"]
    assert main([*cli, "accept", session_id]) == 0
    capsys.readouterr()
    assert main([*cli, "commit", session_id]) != 0
    assert "Failing: tests/test_calc.py" in capsys.readouterr().err
    assert "def sub" not in (project / "mylib" / "__init__.py").read_text()


def test_a_commit_with_no_accepted_hunk_is_refused_before_any_test_run(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing accepted: `sessions commit` says so at once; it does not run the whole
    suite on an empty subset first."""
    project = project_at(tmp_path / "proj")
    session_id, _ = asyncio.run(run_pipeline(project))
    before = len(asyncio.run(kernel_runs(project)))
    capsys.readouterr()
    assert main(["-C", str(project), "sessions", "commit", session_id]) != 0
    err = capsys.readouterr().err
    assert "no accepted hunks" in err
    assert "sessions accept" in err
    assert len(asyncio.run(kernel_runs(project))) == before  # no test run on nothing
    assert (project / "mylib" / "__init__.py").read_text() == CALC

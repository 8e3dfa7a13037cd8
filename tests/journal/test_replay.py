"""``briotui replay``: a recorded run replays exactly with no model, and a changed agent
is caught at the call where it starts doing something else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.scripted import FILES, edit, plan, repo, review, sub_and_whisper
from tests.trust_helpers import trust_project

from briotui.cli.main import main
from briotui.kernel.journal import RecordedRun, journaled_tasks, runs_of
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.store import Store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def replay(capsys: pytest.CaptureFixture[str], project: Path, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["-C", str(project), "replay", *extra, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


async def _record_pipeline(project: Path) -> tuple[str, str, dict[str, bytes]]:
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit(
            "Add sub to calc.py and whisper to text.py",
            provider=ScriptedProvider(sub_and_whisper()),
        )
        result = await kernel.wait(task_id)
        assert result.status == "done", result
        session = kernel.sessions().get(result.session_id)
        files = {p: session.read(p) for p in ("calc.py", "text.py")}
        return task_id, result.summary, files
    finally:
        await kernel.close()


async def test_a_recorded_pipeline_replays_identically_with_no_model(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    task_id, _, files = await _record_pipeline(project)
    # No provider anywhere: a call not answered from the journal would get "unavailable"
    # and change the run. The scripted provider is gone with the kernel that had it.
    code, report = await _in_thread(replay, capsys, project, task_id)
    assert code == 0, report
    assert report["status"] == "identical"
    assert [r["agent"] for r in report["runs"]].count("coder") == 2
    assert len(report["runs"]) == 6
    # every call answered from the journal (loading the agent's code is none of them)
    assert all(r["identical"] for r in report["runs"])
    assert all(r["replayed"] == r["calls"] for r in report["runs"]), report
    assert report["host_calls"] > 20
    # the throwaway session got the same files as the task's own session
    assert report["session"] == {"checked": True, "differs": []}
    assert b"def sub(a, b)" in files["calc.py"]
    # nothing reached the user's files
    assert (project / "calc.py").read_text() == FILES["calc.py"]
    assert (project / "text.py").read_text() == FILES["text.py"]
    # one run of the task alone: a Coder
    coder = next(r["run"] for r in report["runs"] if r["agent"] == "coder")
    code, alone = await _in_thread(replay, capsys, project, coder)
    assert code == 0, alone
    assert [r["run"] for r in alone["runs"]] == [coder]
    assert alone["session"]["checked"] is False


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    """The CLI runs its own event loop: call it off this test's loop."""
    import asyncio

    return await asyncio.to_thread(fn, *args)


def test_a_changed_agent_reports_where_it_diverges(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    agent_dir = project / ".brio" / "agents" / "myecho"
    shutil.copytree(REPO / "agents" / "echo", agent_dir)
    trust_project(project)
    replies = project / ".replies.json"
    replies.write_text(json.dumps(["forty-two"]))
    code = main(
        ["-C", str(project), "run", "what is it?", "--agent", "myecho",
         "--provider", f"scripted:{replies}", "--json"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    [task_id] = [r.top_id for r in _all_runs(project)]
    # unchanged: identical
    code, report = replay(capsys, project, task_id)
    assert code == 0, report
    assert report["status"] == "identical"
    # hot reload: the copy's prompt changes, so its model request is another one
    app = agent_dir / "app.py"
    app.write_text(app.read_text().replace("You are a terse assistant", "You are a chatty one"))
    trust_project(project)  # a project agent's new code runs once trusted again
    code, report = replay(capsys, project, task_id)
    assert code == 1, report
    assert report["status"] == "diverged"
    div = report["divergence"]
    assert div["agent"] == "myecho"
    assert div["expected"] == "llm.complete"
    assert div["got"] == "llm.complete"
    assert "other arguments" in div["detail"]
    assert "chatty" in div["detail"]
    assert any(n.startswith("myecho: its code changed") for n in report["notes"])
    kernel_runs = _runs(project, task_id)
    calls = [c.call for c in kernel_runs[0].calls]
    assert div["seq"] == calls.index("llm.complete") + 1
    # the readable report says the same
    capsys.readouterr()
    assert main(["-C", str(project), "replay", task_id]) == 1
    text = capsys.readouterr().out
    assert f"diverged at call {div['seq']}" in text
    assert "expected: llm.complete" in text
    # the code it was recorded with still replays identically: the replaying instance
    # loads the recorded code, not the current code a warm pool's instance loaded
    code, report = replay(capsys, project, task_id, "--agent-code", "recorded")
    assert code == 0, report
    assert report["status"] == "identical"
    assert not any("code changed" in n for n in report["notes"])
    assert all(r["replayed"] == r["calls"] for r in report["runs"])


def _runs(project: Path, task_id: str) -> list[RecordedRun]:
    store = Store.open(project / ".brio" / "state.db")
    try:
        return runs_of(store, task_id)
    finally:
        store.close()


def _all_runs(project: Path) -> list[RecordedRun]:
    store = Store.open(project / ".brio" / "state.db")
    try:
        return [r for top in sorted(journaled_tasks(store)) for r in runs_of(store, top)]
    finally:
        store.close()


def test_replay_errors_exit_2(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    assert main(["-C", str(project), "replay", "t-nosuch", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error"
    assert out["error"]["kind"] == "task-not-found"
    assert "t-nosuch" in out["error"]["message"]


SCRIBE = """
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import workspace_write


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        done = []
        for path in ("ok.txt", "no.txt"):
            try:
                workspace_write.write(path, b"written\\n", False)
                done.append(path)
            except Err:
                done.append("denied " + path)
        return agent.Outcome(summary=", ".join(done), data="")
"""


def test_a_write_that_was_denied_is_not_applied_by_the_replay(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES, config='[agents.scribe]\nwrite = ["ok.txt"]\n')
    agent_dir = project / ".brio" / "agents" / "scribe"
    agent_dir.mkdir(parents=True)
    (agent_dir / "agent.toml").write_text('world = "coder"\ndescription = "writes two files"\n')
    (agent_dir / "app.py").write_text(SCRIBE)
    trust_project(project)
    replies = project / ".replies.json"
    replies.write_text("[]")
    code = main(
        ["-C", str(project), "run", "write them", "--agent", "scribe",
         "--provider", f"scripted:{replies}", "--json"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["result"]["summary"] == "ok.txt, denied no.txt"
    [task_id] = [r.top_id for r in _all_runs(project)]
    # the replay runs with no capability checks (everything it does was checked when it
    # ran): the write denied then must not be applied now, or the files would differ
    code, report = replay(capsys, project, task_id)
    assert code == 0, report
    assert report["session"] == {"checked": True, "differs": []}


SAME_FILE = {
    "calc.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


async def test_two_coders_on_one_file_replay_identically(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Observed (a pipeline on a real project): two Coders edited one file in their branch
    # sessions and the kernel merged them; the replay put both writes into one throwaway
    # session and reported the file as different, exit 1, for a run that replays exactly.
    project = repo(tmp_path / "proj", SAME_FILE)
    replies = [
        plan(
            {"title": "doc add", "goal": "Document add in calc.py", "files": ["calc.py"]},
            {"title": "doc mul", "goal": "Document mul in calc.py", "files": ["calc.py"]},
        ),
        ScriptedReply(
            edit("calc.py", "def add(a, b):", 'def add(a, b):\n    """The sum."""'),
            agent="coder",
            match="Document add",
        ),
        ScriptedReply(
            edit("calc.py", "def mul(a, b):", 'def mul(a, b):\n    """The product."""'),
            agent="coder",
            match="Document mul",
        ),
        review(),
    ]
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Document calc.py", provider=ScriptedProvider(replies))
        result = await kernel.wait(task_id)
        assert result.status == "done", result
        merged = kernel.sessions().get(result.session_id).read("calc.py")
        assert b"The sum." in merged
        assert b"The product." in merged
    finally:
        await kernel.close()
    code, report = await _in_thread(replay, capsys, project, task_id)
    assert code == 0, report
    assert report["status"] == "identical"
    assert report["session"] == {"checked": True, "differs": []}
    assert any("calc.py: written in 2 branch sessions" in note for note in report["notes"])

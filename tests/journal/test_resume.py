"""Resume after a crash: a ``briotui run`` killed with SIGKILL mid-pipeline is resumed on
restart, replaying its journals, and the steps it had finished ask the model nothing again
(the loopback model server counts every request)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.scripted import FILES, Recording, repo, sub_and_whisper

from briotui.cli.main import main
from briotui.devtools.loopback import LoopbackServer
from briotui.kernel.journal import runs_of
from briotui.kernel.kernel import Kernel
from briotui.kernel.store import Store
from briotui.kernel.vfs import SessionManager

pytestmark = pytest.mark.slow

GOAL = "Add sub to calc.py and whisper to text.py"
SRC = Path(__file__).resolve().parents[2] / "src"


def point_at(config_dir: Path, server: LoopbackServer) -> None:
    """The user's config: every model request goes to ``server`` (no retries)."""
    (config_dir / "config.toml").write_text(
        "[llm]\n"
        'fallback = ["fake"]\n\n'
        "[llm.retry]\nmax_attempts = 1\n\n"
        "[[llm.providers]]\n"
        'name = "fake"\n'
        'kind = "ollama"\n'
        f'base_url = "{server.base_url}"\n'
        'model = "llama3.2"\n'
    )


def _task_rows(project: Path) -> list[dict[str, object]]:
    store = Store.open(project / ".brio" / "state.db")
    try:
        return [dict(r) for r in store.query("SELECT * FROM tasks WHERE parent_id IS NULL")]
    finally:
        store.close()


async def test_a_killed_pipeline_resumes_without_asking_again_for_finished_steps(
    tmp_path: Path, built_agents: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(config_dir))
    project = repo(tmp_path / "proj", FILES)  # trusted in this config dir
    # The Coders' model takes a minute: the process is killed while both wait for it,
    # after the Council's plan came back (and was journaled).
    first = LoopbackServer("ollama", sub_and_whisper(delay_ms=60_000))
    async with first:
        point_at(config_dir, first)
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        proc = subprocess.Popen(  # noqa: ASYNC220 - the real command, killed below
            [sys.executable, "-m", "briotui", "-C", str(project), "run", GOAL, "--json"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while len(first.completion_requests) < 3:  # the plan, then both Coders
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the run never reached its Coders"
                await asyncio.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    asked_first = [r.body for r in first.completion_requests]
    council_request = asked_first[0]
    [killed] = _task_rows(project)
    assert killed["status"] == "running"  # it never got to say how it ended
    # the Council's reply was durable when the Coders were asked: it is in the journal
    store = Store.open(project / ".brio" / "state.db")
    try:
        runs = {r.agent: r for r in runs_of(store, str(killed["id"]))}
    finally:
        store.close()
    assert any(c.call.startswith("llm.") for c in runs["council"].calls)

    # Restart: resume every interrupted task. The new server has no plan to give: a
    # Council asked again would get the Reviewer's verdict and fail the task.
    second = LoopbackServer("ollama", sub_and_whisper()[1:])
    async with second:
        point_at(config_dir, second)
        capsys.readouterr()
        code = await asyncio.to_thread(
            main, ["-C", str(project), "tasks", "resume", "--interrupted", "--json"]
        )
        out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    [report] = out["resumed"]
    assert report["resumed"] == killed["id"]
    assert report["status"] == "done", report
    assert report["replayed_calls"] > 0
    asked_again = [r.body for r in second.completion_requests]
    # the two Coders (in flight when killed) and the Reviewer; the Council never again
    assert len(asked_again) == 3, asked_again
    assert council_request not in asked_again
    # the resumed session holds both Coders' work; the working tree is untouched
    manager = SessionManager.open(project)
    try:
        session = manager.get(report["session"])
        assert b"def sub(a, b)" in session.read("calc.py")
        assert b"def whisper(s)" in session.read("text.py")
    finally:
        manager.close()
    assert (project / "calc.py").read_text() == FILES["calc.py"]
    # the killed task is no longer offered for resuming
    statuses = {r["id"]: r["status"] for r in _task_rows(project)}
    assert statuses[killed["id"]] == "cancelled"
    assert statuses[report["task"]] == "done"
    # the resumed runs name the code their instances loaded, and no load is a call
    store = Store.open(project / ".brio" / "state.db")
    try:
        resumed = runs_of(store, report["task"])
    finally:
        store.close()
    assert resumed
    assert all(r.code for r in resumed)
    assert not any(c.call.startswith("agent-code.") for r in resumed for c in r.calls)


async def test_a_task_stopped_by_quitting_is_offered_and_resumed_from_its_journal(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    first = Recording(sub_and_whisper(delay_ms=60_000))
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit(GOAL, provider=first)
        deadline = time.monotonic() + 240
        while len(first.asked_by("coder")) < 2:  # the plan is in, both Coders wait
            assert time.monotonic() < deadline, "the run never reached its Coders"
            await asyncio.sleep(0.05)
    finally:
        await kernel.close()  # quit with the task running
    again = Recording(sub_and_whisper()[1:])
    kernel = Kernel(project)
    try:
        assert kernel.restore() == [task_id]  # offered on the next start
        new_id = await kernel.resume(task_id, provider=again)
        result = await kernel.wait(new_id)
        assert result.status == "done", result
        assert kernel.replayed_calls(new_id)
        assert again.asked_by("council") == []  # its plan came from the journal
        assert len(again.asked_by("coder")) == 2
        session = kernel.sessions().get(result.session_id)
        assert b"def sub(a, b)" in session.read("calc.py")
        assert b"def whisper(s)" in session.read("text.py")
        # both replay: the stopped one up to where each run was stopped, the resumed one
        # whole (its journals hold the replayed calls and the live ones)
        stopped = await kernel.replay(task_id)
        assert stopped.identical, stopped.to_dict()
        assert any(r.interrupted for r in stopped.runs)
        resumed = await kernel.replay(new_id)
        assert resumed.identical, resumed.to_dict()
        assert resumed.session_checked
        assert not any(r.interrupted for r in resumed.runs)
    finally:
        await kernel.close()
    kernel = Kernel(project)
    try:
        assert kernel.restore() == []  # resumed: not offered again
    finally:
        await kernel.close()


def test_a_one_agent_run_resumes_from_its_journal(
    tmp_path: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    replies = project / ".replies.json"
    replies.write_text(json.dumps(["forty-two"]))
    code = main(
        ["-C", str(project), "run", "what is it?", "--agent", "echo",
         "--provider", f"scripted:{replies}", "--json"]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    [task] = _task_rows(project)
    # the run is the task itself (`run --agent`); its resume is a task with one run of
    # echo, which replays it: the empty script would fail any model request
    replies.write_text("[]")
    code = main(
        ["-C", str(project), "tasks", "resume", str(task["id"]),
         "--provider", f"scripted:{replies}", "--json"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["status"] == "done"
    assert out["summary"] == "forty-two"
    assert out["replayed_calls"] >= 3  # the clock, the log line, the model's reply


async def test_a_model_reply_survives_a_sigkill_right_after_it_returned(
    tmp_path: Path, built_agents: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(config_dir))
    project = repo(tmp_path / "proj", FILES)
    first = LoopbackServer("ollama", sub_and_whisper())
    async with first:
        point_at(config_dir, first)
        # killed at the first durable journal write: the Council's model reply, committed
        # and not yet seen by the Council
        env = {**os.environ, "PYTHONPATH": str(SRC), "BRIOTUI_FAILPOINT": "journal-durable:1"}
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "briotui", "-C", str(project), "run", GOAL, "--json"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=240, check=False,
        )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len(first.completion_requests) == 1  # the Council's request, answered
    council_request = first.completion_requests[0].body
    second = LoopbackServer("ollama", sub_and_whisper()[1:])
    async with second:
        point_at(config_dir, second)
        capsys.readouterr()
        code = await asyncio.to_thread(
            main, ["-C", str(project), "tasks", "resume", "--interrupted", "--json"]
        )
        out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    [report] = out["resumed"]
    assert report["status"] == "done", report
    asked_again = [r.body for r in second.completion_requests]
    assert council_request not in asked_again  # its reply came from the journal
    assert len(asked_again) == 3  # the two Coders and the Reviewer


async def test_an_interrupted_task_is_offered_until_discarded(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="pipeline", task=GOAL)
        kernel.recorder.task_started(  # what a crash leaves: a task still running
            "t-gone", agent="pipeline", goal=GOAL, parent=None, session_id=session.id
        )
    finally:
        await kernel.close()
    kernel = Kernel(project)
    try:
        assert [t["id"] for t in kernel.stored_tasks() if t["interrupted"]] == ["t-gone"]
        await kernel.discard_task("t-gone")  # without a restart in between (the CLI)
        assert [t["id"] for t in kernel.stored_tasks() if t["interrupted"]] == []
    finally:
        await kernel.close()
    kernel = Kernel(project)
    try:
        assert kernel.restore() == []
    finally:
        await kernel.close()

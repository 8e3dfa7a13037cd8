"""A run lost with its worker moves to another one: its journal is the state that
travels (real NATS server, real ``briotui worker`` processes, a real component)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.cluster.conftest import NatsServer
from tests.cluster.test_workers import SCRIBE, cluster, placed, placed_task
from tests.cluster.workers import workers
from tests.scripted import FILES, repo
from tests.trust_helpers import trust_project

from briotui.kernel.journal import runs_of
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply, request_text
from briotui.kernel.llm.types import Completion, CompletionRequest, DeltaCallback

pytestmark = pytest.mark.slow


class CountingProvider(ScriptedProvider):
    """A scripted provider that counts the requests it was sent, by prompt."""

    def __init__(self, replies: list[ScriptedReply]) -> None:
        super().__init__(replies)
        self.asked: Counter[str] = Counter()

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        self.asked[request_text(request)] += 1
        return await super().complete(request, on_delta)


async def test_a_run_lost_with_its_worker_resumes_from_its_journal_on_another(
    tmp_path: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    project = repo(tmp_path / "proj", FILES)
    directory = project / ".brio" / "agents" / "scribe"
    directory.mkdir(parents=True)
    (directory / "agent.toml").write_text('world = "coder"\n')
    (directory / "app.py").write_text(SCRIBE)
    trust_project(project)
    provider = CountingProvider(
        [
            ScriptedReply("first.txt", match="name a file"),  # asked once, answered once
            ScriptedReply("ok", match="finish", delay_ms=8000),  # the lost run waits here
            ScriptedReply("ok", match="finish"),
        ]
    )
    with workers(nats_server.url, nats_server.token, "wm1", "wm2") as started:
        by_id = {w.id: w for w in started}
        kernel = Kernel(project)
        kernel.set_approvals("all")
        try:
            dispatcher = await kernel.join_cluster(
                cluster(nats_server, offer_ms=2000, lost_after_ms=1000)
            )
            task_id = await kernel.submit("scribe", agent="scribe", provider=provider)
            end = time.monotonic() + 60
            first = None
            while time.monotonic() < end and first is None:
                # asked for a name, wrote first.txt, now in its slow second model call
                busy = [r for r in dispatcher.runs.values() if r.ctx.host_calls >= 3]
                first = busy[0] if busy else None
                await asyncio.sleep(0.05)
            assert first is not None
            session = kernel.session_of(placed_task(dispatcher, task_id))
            assert session is not None
            assert session.read("first.txt") == b"written\n"
            await asyncio.sleep(0.3)
            by_id[first.worker].process.send_signal(signal.SIGKILL)
            result = await kernel.wait(task_id)
            assert result.status == "done", result
            [second] = placed(dispatcher, task_id)
            assert second != first.worker
            # the retry took the first answer from the lost run's journal
            asked = {text: n for text, n in provider.asked.items() if "name a file" in text}
            assert list(asked.values()) == [1], provider.asked
            assert result.summary == "wrote first.txt"
            session = kernel.sessions().get(result.session_id)
            assert sorted(f.path for f in session.diff().files) == ["final.txt", "first.txt"]
            assert session.read("first.txt") == b"written\n"
            # the name question and the first write came from the lost run's journal
            assert kernel.journals().moved_calls[task_id] >= 2
            # one journal for the run, holding all of it, at its place in the task: the
            # task replays identically
            replayed = await kernel.replay(task_id)
            assert replayed.divergence is None, replayed.divergence
            assert len(replayed.runs) == 1
            assert replayed.session_checked
            assert not replayed.session_differs, replayed.session_differs
            assert replayed.calls >= 4
            [run] = runs_of(kernel.journals().store, task_id)
            assert (run.ordinal, run.status) == (1, "done")
        finally:
            await kernel.close()

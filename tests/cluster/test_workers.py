"""Agents on workers over a real NATS server: real ``briotui worker`` processes, real
components, host calls relayed to the kernel and checked there."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cluster.conftest import NatsServer
from tests.cluster.workers import workers
from tests.scripted import FILES, repo, sub_and_whisper

from briotui.kernel.cluster.config import ClusterConfig
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return repo(tmp_path / "proj", FILES)


def cluster(server: NatsServer, **kw: object) -> ClusterConfig:
    return ClusterConfig(nats=server.url, token=server.token, **kw)  # type: ignore[arg-type]


async def test_pipeline_runs_its_coders_on_two_workers(
    project: Path, built_agents: list[str], nats_server: NatsServer
) -> None:
    provider = ScriptedProvider(sub_and_whisper(acceptance=["sub(5, 3) == 2"], delay_ms=300))
    with workers(nats_server.url, nats_server.token, "wa", "wb"):
        kernel = Kernel(project)
        try:
            dispatcher = await kernel.join_cluster(
                cluster(nats_server, agents=frozenset({"coder"}), offer_ms=2000)
            )
            task_id = await kernel.submit(
                "Add sub to calc.py and whisper to text.py", provider=provider
            )
            result = await kernel.wait(task_id)
            assert result.status == "done", result
            tree = kernel.state.get(["tasks"])
            coders = [tid for tid, t in tree.items() if t["agent"] == "coder"]
            assert len(coders) == 2
            # each Coder ran on a worker, one on each (one slot each)
            assert {dispatcher.placements[tid] for tid in coders} == {"wa", "wb"}
            assert not any(t["agent"] != "coder" for t in (tree[k] for k in dispatcher.placements))
            session = kernel.sessions().get(result.session_id)
            assert sorted(f.path for f in session.diff().files) == ["calc.py", "text.py"]
            assert b"def sub(a, b)" in session.read("calc.py")
            assert b"def whisper(s)" in session.read("text.py")
            assert result.verified is True
            assert (project / "calc.py").read_text() == FILES["calc.py"]
        finally:
            await kernel.close()

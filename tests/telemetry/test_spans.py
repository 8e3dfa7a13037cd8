"""OpenTelemetry spans of one run, checked with the SDK's in-memory exporter.

The real Coder (wasmtime, scripted provider) runs in a session of a temp git repo; one
hunk is accepted, so the commit runs the test command on exactly that hunk; then the
span tree is checked: names, parent links, key attributes. Off, nothing is emitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.cli.test_run_session_flow import BEFORE, REPLY
from tests.scripted import git
from tests.trust_helpers import recording_server, trust_project

from briotui.kernel import telemetry
from briotui.kernel.llm.scripted import ScriptedProvider, load_replies

pytestmark = pytest.mark.slow


@pytest.fixture
def lines_project(project: Path) -> Path:
    (project / "app.py").write_text(BEFORE)
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text('[tests]\ncommand = "python -c pass"\n')
    git(project, "-c", "user.name=T", "-c", "user.email=t@e.x", "commit", "-qam", "forty lines")
    trust_project(project)
    return project


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    telemetry.shutdown()


async def _one_run(project: Path, tmp_path: Path) -> None:
    from briotui.kernel.kernel import Kernel

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([REPLY]))
    kernel = Kernel(project)
    try:
        task = await kernel.submit(
            "rename two lines", agent="coder", provider=ScriptedProvider(load_replies(replies))
        )
        result = await kernel.wait(task)
        session = kernel.sessions().get(result.session_id)
        first = session.diff().hunks()[0].id
        await kernel.decide(session.id, [first], "accepted")
        await kernel.commit(session.id, git=True, message="traced")
    finally:
        await kernel.close()


def _metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


async def test_the_span_tree_of_one_run(
    lines_project: Path, tmp_path: Path, built_agents: list[str], memory: InMemorySpanExporter
) -> None:
    reader = InMemoryMetricReader()
    assert telemetry.configure(
        {"telemetry": {"enabled": True}}, exporters=[memory], metric_readers=[reader], environ={}
    )
    await _one_run(lines_project, tmp_path)
    metrics = _metrics(reader)
    assert sum(p.value for p in metrics["briotui.agent.fuel"]) > 0
    assert [p.value for p in metrics["briotui.agents.running"]] == [0]  # started and ended
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]
    }
    assert tokens["output"] > 0
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) == {
        "briotui.task",
        "invoke_agent coder",
        "chat scripted",
        "briotui.commit",
        "briotui.test_run",
    }
    task, agent, chat = spans["briotui.task"], spans["invoke_agent coder"], spans["chat scripted"]
    commit, tests = spans["briotui.commit"], spans["briotui.test_run"]

    def parent(span: Any) -> int | None:
        return span.parent.span_id if span.parent else None

    assert parent(task) is None
    assert parent(agent) == task.context.span_id
    assert parent(chat) == agent.context.span_id  # opened on the agent's worker thread
    assert parent(tests) == commit.context.span_id  # the commit verified the accepted hunk
    assert chat.context.trace_id == task.context.trace_id
    assert task.attributes["briotui.outcome"] == "done"
    assert agent.attributes["gen_ai.agent.name"] == "coder"
    assert agent.attributes["briotui.world"] == "coder"
    assert agent.attributes["briotui.outcome"] == "done"
    assert agent.attributes["briotui.fuel"] > 0
    assert agent.attributes["briotui.peak_memory_bytes"] > 0
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.system"] == "scripted"
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert chat.attributes["briotui.fallback_attempts"] == 0
    assert tests.attributes["briotui.test.command"] == "python -c pass"
    assert tests.attributes["briotui.test.passed"] is True
    assert commit.attributes["briotui.commit.written"] == 1
    assert commit.attributes["briotui.commit.git_commit"]


async def test_no_span_when_telemetry_is_off(
    lines_project: Path, tmp_path: Path, built_agents: list[str], memory: InMemorySpanExporter
) -> None:
    assert not telemetry.configure({}, exporters=[memory], environ={})
    await _one_run(lines_project, tmp_path)
    assert memory.get_finished_spans() == ()
    assert not telemetry.enabled()


def test_trace_file_writes_json_lines(
    lines_project: Path,
    tmp_path: Path,
    built_agents: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from briotui.cli.main import main

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([REPLY]))
    trace = tmp_path / "trace.jsonl"
    code = main(
        ["-C", str(lines_project), "--trace", str(trace), "run", "rename lines", "--agent",
         "coder", "--provider", f"scripted:{replies}", "--json"]
    )  # fmt: skip
    capsys.readouterr()
    assert code == 0
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    by_name = {line["name"]: line for line in lines}
    assert "invoke_agent coder" in by_name
    assert by_name["chat scripted"]["parent_id"] == by_name["invoke_agent coder"]["span_id"]
    assert by_name["chat scripted"]["attributes"]["gen_ai.system"] == "scripted"
    assert not telemetry.enabled()  # the CLI shut it down on exit


def test_an_otlp_endpoint_without_the_exporter_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    from briotui.kernel.errors import ConfigError

    real_import = builtins.__import__

    def no_exporter(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry.exporter.otlp"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_exporter)  # an install without it
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-http"):
        telemetry.configure({}, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    telemetry.shutdown()


@pytest.mark.parametrize("where", ["environment", "user config"])
def test_spans_reach_an_otlp_collector_at_its_traces_path(
    project: Path,
    tmp_path: Path,
    built_agents: list[str],
    where: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Observed: the OTLP exporter was not a dependency, and once installed it got the
    # base endpoint as a full URL, so every span was posted to the collector's root.
    from briotui.cli.main import main

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([{"text": "pong"}]))
    user = tmp_path / "user-config"
    user.mkdir()
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(user))
    with recording_server() as collector:
        if where == "environment":
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        else:
            (user / "config.toml").write_text(
                f'[telemetry]\nenabled = true\nendpoint = "{collector.url}/"\n'
            )
        code = main(
            ["-C", str(project), "run", "ping", "--agent", "echo", "--provider",
             f"scripted:{replies}", "--json"]
        )  # fmt: skip
        capsys.readouterr()
    assert code == 0
    posted = {str(r["path"]) for r in collector.requests if r["method"] == "POST"}
    assert "/v1/traces" in posted, posted
    assert posted <= {"/v1/traces", "/v1/metrics"}
    assert not telemetry.enabled()


async def test_capability_denials_are_counted(project: Path, memory: InMemorySpanExporter) -> None:
    from briotui.kernel.caps.model import CapabilityRequest
    from briotui.kernel.kernel import Kernel

    reader = InMemoryMetricReader()
    telemetry.configure({"telemetry": {"enabled": True}}, metric_readers=[reader], environ={})
    kernel = Kernel(project)
    try:
        verdict = kernel.capabilities().check(
            CapabilityRequest(agent="coder", capability="shell", target="curl evil.example")
        )
    finally:
        await kernel.close()
    assert not verdict.allowed
    [point] = _metrics(reader)["briotui.capability.denials"]
    assert point.value == 1
    assert point.attributes == {"briotui.agent": "coder", "briotui.capability": "shell"}

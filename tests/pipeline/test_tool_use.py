"""The native tool-use loop: the real Coder component reads a >100 KB file through tools.

For each vendor wire format, the real SDK talks to a loopback server that answers with a
tool call; the Coder (real wasmtime) runs the calls through its workspace import, under
the same capability checks and audit as a fenced read (a read outside its scope comes
back to the model as a failed tool result, not a crash), sends the results back, and
applies the SEARCH/REPLACE edit the model then sends. Every round is accounted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.llm.conftest import ENV, KEYS, MODELS, models_config
from tests.scripted import BIG, LINES, TARGET, repo

from briotui.devtools.loopback import FakeReply, LoopbackServer, WireProtocol
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.router import build_router
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.llm.types import (
    Completion,
    CompletionRequest,
    DeltaCallback,
    ToolCall,
)
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import Event, ModelReply

pytestmark = pytest.mark.slow


OLD = "def parse_header(line):\n    return line.split(':', 1)"
NEW = "def parse_header(line):\n    return line.strip().split(':', 1)"
EDIT = f"big.py\n```\n<<<<<<< SEARCH\n{OLD}\n=======\n{NEW}\n>>>>>>> REPLACE\n```\n"
GOAL = "In big.py make parse_header strip the line before splitting it"


def call(call_id: str, name: str, **arguments: object) -> ToolCall:
    return ToolCall(call_id, name, json.dumps(arguments))


def make_project(root: Path, *, scoped: bool) -> Path:
    config = '[agents.coder]\nread = ["big.py"]\nwrite = ["big.py"]\n' if scoped else None
    files = {"big.py": BIG, "private/keys.txt": "not for the coder\n"}
    return repo(root, files, config=config)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose Coder may read and write big.py only (a trusted project config)."""
    return make_project(tmp_path / "proj", scoped=True)


@pytest.fixture
def open_project(tmp_path: Path) -> Path:
    """A project with the Coder's default grants (it may read everything)."""
    return make_project(tmp_path / "open", scoped=False)


@pytest.fixture
async def servers() -> AsyncIterator[list[LoopbackServer]]:
    started: list[LoopbackServer] = []
    yield started
    for server in started:
        await server.stop()


def tool_results(protocol: str, body: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(call id or tool name, content, failed) of each tool result in a request body."""
    out: list[tuple[str, str, bool]] = []
    for message in body["messages"]:
        if protocol == "anthropic" and isinstance(message["content"], list):
            out.extend(
                (b["tool_use_id"], b["content"], b["is_error"])
                for b in message["content"]
                if b["type"] == "tool_result"
            )
        elif protocol == "openai" and message["role"] == "tool":
            content = message["content"]
            out.append((message["tool_call_id"], content, content.startswith("Error: ")))
        elif protocol == "ollama" and message["role"] == "tool":
            content = message["content"]
            out.append((message["tool_name"], content, content.startswith("Error: ")))
    return out


@pytest.mark.parametrize("protocol", ["anthropic", "openai", "ollama"])
async def test_coder_reads_a_region_through_native_tools_and_edits_it(
    protocol: WireProtocol,
    project: Path,
    servers: list[LoopbackServer],
    built_agents: list[str],
) -> None:
    assert len(BIG.encode()) > 100_000
    server = LoopbackServer(
        protocol,
        [
            # the model reads a file outside the Coder's scope, and the region it needs
            FakeReply(
                "I will read the function first.",
                tool_calls=(
                    call("toolu_secret", "read_file", path="private/keys.txt"),
                    call("toolu_region", "read_file", path="big.py", start=TARGET, end=TARGET + 1),
                ),
                input_tokens=1000,
                output_tokens=40,
            ),
            # then edits what it read
            FakeReply(
                EDIT,
                match=f"big.py lines {TARGET}-{TARGET + 1} of {len(LINES)}",
                input_tokens=1500,
                output_tokens=60,
            ),
        ],
        api_key=KEYS.get(protocol),
        models=[MODELS[protocol]],
    )
    await server.start()
    servers.append(server)
    router = build_router(models_config([server]), env=ENV)
    kernel = Kernel(project)
    replies: list[ModelReply] = []

    def on_event(event: Event) -> None:
        if isinstance(event, ModelReply):
            replies.append(event)

    kernel.events.subscribe(on_event)
    try:
        session = kernel.new_session(label="coder", task=GOAL)
        outcome = await kernel.run_agent(
            "coder", GOAL, bindings=RunBindings(provider=router, workspace=session)
        )
        edited = session.read("big.py").decode()
        audit = kernel.capabilities().audit.rows(agent="coder", limit=1000)
    finally:
        await kernel.close()
        await router.aclose()

    # the edit landed inside the region the model read, and nowhere else
    assert edited == BIG.replace(OLD, NEW)
    assert (project / "big.py").read_text() == BIG  # the user's file is untouched
    data = json.loads(outcome.data)
    assert data["edited"] == ["big.py"]
    assert (data["tools"], data["tool_calls"], data["reads"]) == (True, 2, 1)

    first, second = (r.body for r in server.completion_requests)
    offered = first["tools"]
    names = [t["name"] if protocol == "anthropic" else t["function"]["name"] for t in offered]
    assert names == ["read_file", "search"]
    results = tool_results(protocol, second)
    assert len(results) == 2
    (secret_id, secret, secret_failed), (region_id, region, region_failed) = results
    if protocol == "ollama":
        assert secret_id == region_id == "read_file"  # Ollama results name their tool
    else:
        assert (secret_id, region_id) == ("toolu_secret", "toolu_region")
    # the read outside the scope was refused, and the model was told so in a tool result
    assert secret_failed
    assert "denied" in secret or "not allowed" in secret or "outside" in secret, secret
    assert "not for the coder" not in json.dumps(second)
    # the region came back with its line numbers and text
    assert not region_failed
    assert f"big.py lines {TARGET}-{TARGET + 1} of {len(LINES)}" in region
    assert OLD in region

    # the same capability checks and audit rows as a fenced read
    seen = {(r.capability, r.target, r.decision) for r in audit}
    assert ("read", "private/keys.txt", "denied") in seen
    assert ("read", "big.py", "allowed") in seen

    # every round is accounted, and the conversation names the calls compactly
    assert outcome.usage.tokens.input_tokens == 2500
    assert outcome.usage.tokens.output_tokens == 100
    assert [r.tool_calls for r in replies] == [
        ("read private/keys.txt", f"read big.py:{TARGET}-{TARGET + 1}"),
        (),
    ]
    assert outcome.models == ((protocol, MODELS[protocol]),) * 2


class Recording(ScriptedProvider):
    """The scripted provider, keeping every request it was asked."""

    def __init__(self, replies: list[ScriptedReply], *, tools: bool = True) -> None:
        super().__init__(replies, tools=tools)
        self.requests: list[CompletionRequest] = []

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        self.requests.append(request)
        return await super().complete(request, on_delta)


async def test_tool_rounds_are_bounded_and_the_model_is_told(
    open_project: Path, built_agents: list[str]
) -> None:
    """A model that keeps calling tools gets 8 rounds; the 9th call is not run and its
    result says the budget is spent, and the edits it then sends are applied."""
    reads = [
        ScriptedReply(
            tool_calls=(call(f"c{n}", "search", pattern="def parse_header", path_glob="*.py"),)
        )
        for n in range(9)
    ]
    provider = Recording([*reads, ScriptedReply(EDIT, match="budget")])
    kernel = Kernel(open_project)
    try:
        session = kernel.new_session(label="coder", task=GOAL)
        outcome = await kernel.run_agent(
            "coder", GOAL, bindings=RunBindings(provider=provider, workspace=session)
        )
        edited = session.read("big.py").decode()
    finally:
        await kernel.close()
    assert provider.remaining == 0
    assert edited == BIG.replace(OLD, NEW)
    data = json.loads(outcome.data)
    assert (data["reads"], data["tool_calls"]) == (8, 8)
    ran = provider.requests[1].messages[-1].tool_results[0]
    assert not ran.is_error
    assert f"big.py:{TARGET}:def parse_header(line):" in ran.content
    last = provider.requests[-1].messages[-1]
    [refused] = last.tool_results
    assert refused.is_error
    assert "budget of 8 rounds of reading is spent" in refused.content
    assert "send the SEARCH/REPLACE blocks now" in last.content


async def test_without_tools_the_coder_falls_back_to_fenced_requests(
    project: Path, built_agents: list[str]
) -> None:
    """A provider without tools: the Coder still offers them, the kernel sends text, and
    the model's fenced ``read`` request is answered as before."""
    provider = Recording(
        [
            ScriptedReply(f"```read big.py:{TARGET}-{TARGET + 1}```"),
            ScriptedReply(EDIT, match=f"big.py lines {TARGET}-{TARGET + 1} of"),
        ],
        tools=False,
    )
    kernel = Kernel(project)
    try:
        session = kernel.new_session(label="coder", task=GOAL)
        outcome = await kernel.run_agent(
            "coder", GOAL, bindings=RunBindings(provider=provider, workspace=session)
        )
        edited = session.read("big.py").decode()
    finally:
        await kernel.close()
    assert edited == BIG.replace(OLD, NEW)
    data = json.loads(outcome.data)
    assert (data["tools"], data["reads"], data["tool_calls"]) == (False, 1, 0)
    assert provider.requests[0].tools  # offered by the Coder; the provider took text


async def test_the_pipeline_reads_through_tools_in_the_council_and_the_coder(
    open_project: Path, built_agents: list[str]
) -> None:
    """The whole loop on a request about a >100 KB file: the Council searches before it
    plans, the Coder reads the region through a tool call and edits it."""
    plan = {
        "question": None,
        "subtasks": [
            {
                "title": "strip in parse_header",
                "goal": f"In big.py (line {TARGET}), make parse_header strip the line",
                "files": ["big.py"],
            }
        ],
    }
    provider = Recording(
        [
            ScriptedReply(
                agent="council",
                tool_calls=(call("s1", "search", pattern="def parse_header", path_glob="*.py"),),
            ),
            ScriptedReply(
                json.dumps(plan),
                agent="council",
                match=f"big.py:{TARGET}:def parse_header(line):",
            ),
            ScriptedReply(
                agent="coder",
                tool_calls=(call("r1", "read_file", path="big.py", start=TARGET, end=TARGET + 1),),
            ),
            ScriptedReply(EDIT, agent="coder", match=f"big.py lines {TARGET}-{TARGET + 1} of"),
            ScriptedReply(json.dumps({"verdict": "approve", "findings": []}), agent="reviewer"),
        ]
    )
    kernel = Kernel(open_project)
    try:
        result = await kernel.wait(await kernel.submit(GOAL, provider=provider))
        assert result.status == "done", result
        assert provider.remaining == 0
        edited = kernel.sessions().get(result.session_id).read("big.py").decode()
    finally:
        await kernel.close()
    assert edited == BIG.replace(OLD, NEW)
    council = [r for r in provider.requests if r.agent == "council"]
    assert [t.name for t in council[0].tools] == ["read_file", "search"]
    [found] = council[1].messages[-1].tool_results
    assert f"big.py:{TARGET}:def parse_header(line):" in found.content

"""MCP tools for agents: a real MCP server (the SDK's MCPServer), the real Smart agent.

The server (``server_app.py``) runs over stdio inside the shell commands' sandbox, or
over streamable HTTP on loopback; the Smart agent is the real component on wasmtime,
driven by the scripted provider: it lists the tools, the model calls one, the kernel
checks the call (grants, argument constraints, budget, the user's prompt) and audits
it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.trust_helpers import trust_project

from briotui.kernel.caps.model import Answer, CapabilityRequest
from briotui.kernel.errors import ConfigError, McpRefused, McpTimeout, McpUnavailable
from briotui.kernel.llm.scripted import ScriptedProvider, load_replies
from briotui.kernel.mcp.config import parse_mcp
from briotui.kernel.mcp.hub import McpHub
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import ModelReply
from briotui.kernel.settings import load_settings

SERVER = Path(__file__).with_name("server_app.py")

pytestmark = pytest.mark.slow


def _install(root: Path) -> str:
    """Copy the server into the project (a stdio server sees only the project and the
    toolchain); returns its path relative to the project."""
    (root / "tools").mkdir(exist_ok=True)
    (root / "tools" / "server_app.py").write_text(SERVER.read_text())
    return "tools/server_app.py"


def _config(
    project: Path, server: str, *, agents: str = 'mcp = ["t/add"]', user_dir: Path | None = None
) -> None:
    _install(project)
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        f"""
[agents.smart]
read = ["**"]
{agents}

[mcp]
budget = 3

{server}

[mcp.servers.t.arguments.add]
a = {{ min = 0, max = 100 }}

[mcp.servers.t.arguments.read_path]
path = {{ paths = ["docs/**"] }}
"""
    )
    trust_project(project, user_dir)


def _stdio(project: Path) -> None:
    _config(
        project,
        f"[mcp.servers.t]\ncommand = [{json.dumps(sys.executable)}, 'tools/server_app.py']\n"
        "timeout_s = 60",
    )


def _provider(tmp_path: Path, replies: list[Any]) -> ScriptedProvider:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps(replies))
    return ScriptedProvider(load_replies(file))


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _audit(project: Path) -> list[tuple[str, str, str, str, str]]:
    with sqlite3.connect(project / ".brio" / "state.db") as conn:
        return list(
            conn.execute(
                "SELECT capability, target, decision, decided_by, reason FROM audit"
                " WHERE capability = 'mcp' ORDER BY at"
            )
        )


async def _run(
    project: Path, provider: ScriptedProvider, *, prompt: Any = None, seen: list[Any] | None = None
) -> Any:
    from briotui.kernel.kernel import Kernel

    kernel = Kernel(project)
    if seen is not None:
        kernel.events.subscribe(seen.append)
    if prompt is not None:
        kernel.set_approvals("ask", prompt)
    try:
        return await kernel.run_agent(
            "smart", "add twenty and twenty-two", bindings=RunBindings(provider=provider)
        )
    finally:
        await kernel.close()


async def test_smart_agent_lists_and_calls_a_stdio_tool(
    project: Path, tmp_path: Path, built_agents: list[str]
) -> None:
    _stdio(project)
    provider = _provider(
        tmp_path,
        [
            _call("t__add", {"a": 20, "b": 22}),
            # answers only if the tool's result (42) reached the model
            {"text": "The sum is 42.", "match": "42"},
        ],
    )
    seen: list[Any] = []
    outcome = await _run(project, provider, seen=seen)
    assert outcome.summary == "The sum is 42."
    # the conversation shows the call inline, as server/tool (the TUI's "→ ..." line)
    labels = [c for e in seen if isinstance(e, ModelReply) for c in e.tool_calls]
    assert labels == ['t/add {"a":20,"b":22}']
    assert json.loads(outcome.data) == {"tool_calls": [{"tool": "t/add", "ok": True}]}
    [row] = _audit(project)
    assert row[:3] == ("mcp", "t/add", "allowed")
    assert row[3] == "config:smart:mcp:0"


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_smart_agent_calls_a_tool_over_streamable_http(
    project: Path, tmp_path: Path, built_agents: list[str], http_server: str
) -> None:
    _config(project, f'[mcp.servers.t]\nurl = "{http_server}"\ntimeout_s = 60')
    provider = _provider(
        tmp_path,
        [_call("t__add", {"a": 1, "b": 2}), {"text": "It is 3.", "match": "3"}],
    )
    outcome = await _run(project, provider)
    assert outcome.summary == "It is 3."
    assert json.loads(outcome.data)["tool_calls"] == [{"tool": "t/add", "ok": True}]


async def test_out_of_grant_call_prompts_shows_the_tool_and_is_audited(
    project: Path, tmp_path: Path, built_agents: list[str]
) -> None:
    _stdio(project)
    asked: list[CapabilityRequest] = []

    async def prompt(request: CapabilityRequest) -> Answer:
        asked.append(request)
        return "once" if len(asked) == 1 else "deny"

    provider = _provider(
        tmp_path,
        [
            _call("t__shout", {"text": "hi"}),
            # the escape sequence the server put in its result never reaches the model
            {"match": "HI", "tool_calls": [{"name": "t__shout", "arguments": {"text": "again"}}]},
            {"text": "done", "match": "denied"},
        ],
    )
    outcome = await _run(project, provider, prompt=prompt)
    assert outcome.summary == "done"
    assert [r.target for r in asked] == ["t/shout", "t/shout"]
    assert asked[0].capability == "mcp"
    assert "Repeat the text loudly" in asked[0].reason
    assert '"text": "hi"' in asked[0].reason
    assert "MCP server" in asked[0].risk
    assert json.loads(outcome.data)["tool_calls"] == [
        {"tool": "t/shout", "ok": True},
        {"tool": "t/shout", "ok": False},
    ]
    rows = _audit(project)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("t/shout", "allowed", "user:once"),
        ("t/shout", "denied", "user:deny"),
    ]


async def test_argument_outside_its_constraint_is_refused_without_asking(
    project: Path, tmp_path: Path, built_agents: list[str]
) -> None:
    _stdio(project)

    async def prompt(request: CapabilityRequest) -> Answer:
        raise AssertionError(f"a refused argument must not be asked about: {request}")

    provider = _provider(
        tmp_path,
        [
            _call("t__add", {"a": 500, "b": 1}),
            _call("t__read_path", {"path": "../../etc/passwd"}),
            {"text": "refused twice", "match": "outside"},
        ],
    )
    outcome = await _run(project, provider, prompt=prompt)
    assert outcome.summary == "refused twice"
    assert json.loads(outcome.data)["tool_calls"] == [
        {"tool": "t/add", "ok": False},
        {"tool": "t/read_path", "ok": False},
    ]
    rows = _audit(project)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("t/add", "denied", "mcp:policy"),
        ("t/read_path", "denied", "mcp:policy"),
    ]
    assert "outside its allowed range" in rows[0][4]


async def test_a_crashing_server_gives_a_typed_error_to_the_agent(
    project: Path, tmp_path: Path, built_agents: list[str]
) -> None:
    _config(
        project,
        f"[mcp.servers.t]\ncommand = [{json.dumps(sys.executable)}, 'tools/server_app.py']\n"
        "timeout_s = 60",
        agents='mcp = ["t/*"]',
    )
    provider = _provider(
        tmp_path,
        [
            _call("t__crash", {}),
            # the model reads the typed error: the server is unavailable (it crashed)
            {"text": "the server crashed", "match": "unavailable: The MCP server 't' exited"},
        ],
    )
    outcome = await _run(project, provider)
    assert outcome.summary == "the server crashed"
    assert json.loads(outcome.data)["tool_calls"] == [{"tool": "t/crash", "ok": False}]


def _hub(root: Path, **server: Any) -> McpHub:
    table = {"command": [sys.executable, _install(root)], "timeout_s": 60, **server}
    return McpHub(parse_mcp([({"servers": {"t": table}, "budget": 2}, "test")]), root)


def test_the_sandbox_hides_the_parent_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIO_TEST_SECRET", "hunter2-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-key")
    monkeypatch.setenv("BRIO_PASSED", "passed-on")
    hub = _hub(tmp_path, env=["BRIO_PASSED"])
    try:
        text = json.loads(hub.call("t", "environment", {}))["text"]
    finally:
        hub.close()
    assert "hunter2-secret" not in text
    assert "sk-secret-key" not in text
    assert "BRIO_PASSED=passed-on" in text
    home = next(line for line in text.splitlines() if line.startswith("HOME="))
    assert home != f"HOME={Path.home()}"


def test_results_are_sanitized_and_the_budget_is_counted(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    try:
        result = hub.call("t", "shout", {"text": "hi"})
        hub.spend("task-1")
        hub.spend("task-1")
        with pytest.raises(McpRefused, match="budget"):
            hub.spend("task-1")
        hub.spend("task-2")
    finally:
        hub.close()
    assert "\x1b" not in result
    assert "\x07" not in result
    assert json.loads(result)["text"].endswith("HI")


def test_a_server_that_cannot_start_is_a_doctor_line(tmp_path: Path) -> None:
    hub = McpHub(
        parse_mcp(
            [
                (
                    {"servers": {"gone": {"command": ["no-such-mcp-server-xyz"], "timeout_s": 5}}},
                    "cfg",
                )
            ]
        ),
        tmp_path,
    )
    try:
        [status] = hub.status()
        with pytest.raises(McpUnavailable, match="not installed"):
            hub.call("gone", "anything", {})
    finally:
        hub.close()
    assert not status.ok
    assert status.line().startswith("MCP server gone (stdio): FAILED:")


def test_untrusted_project_mcp_servers_do_not_apply(project: Path) -> None:
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        '[mcp.servers.evil]\ncommand = ["sh", "-c", "curl evil"]\n'
    )
    settings = load_settings(project)
    assert not settings.applies
    assert not settings.mcp().servers
    assert any("MCP server 'evil'" in line for line in settings.ignored)
    trust_project(project)
    assert list(load_settings(project).mcp().servers) == ["evil"]


def test_malformed_mcp_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="exactly one of command"):
        parse_mcp([({"servers": {"x": {}}}, "cfg")])
    with pytest.raises(ConfigError, match="min, max, values, paths"):
        parse_mcp(
            [({"servers": {"x": {"url": "http://h", "arguments": {"t": {"a": {"lt": 1}}}}}}, "c")]
        )


def test_doctor_names_a_crashing_server(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from briotui.cli.main import main

    (project / "tools").mkdir()
    (project / "tools" / "broken.py").write_text(
        "import sys\nprint('boom: bad setup', file=sys.stderr)\nsys.exit(2)\n"
    )
    _install(project)
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(
        f"[mcp.servers.good]\ncommand = [{json.dumps(sys.executable)}, 'tools/server_app.py']\n"
        "timeout_s = 60\n"
        f"[mcp.servers.broken]\ncommand = [{json.dumps(sys.executable)}, 'tools/broken.py']\n"
    )
    trust_project(project)
    code = main(["-C", str(project), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert checks["MCP server good"]["status"] == "ok"
    assert "6 tools" in checks["MCP server good"]["detail"]
    assert checks["MCP server broken"]["status"] == "error"
    assert "boom: bad setup" in checks["MCP server broken"]["detail"]


def test_a_hanging_server_gives_a_timeout(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    try:
        hub.describe("t", "hang")  # started within the generous limit
        object.__setattr__(hub.settings.servers["t"], "timeout_s", 1.0)
        with pytest.raises(McpTimeout, match="did not answer within 1 s"):
            hub.call("t", "hang", {"seconds": 30})
    finally:
        hub.close()


def _doctor_mcp(project: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    from briotui.cli.main import main

    main(["-C", str(project), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    return checks["MCP server t"]


def test_without_bubblewrap_a_stdio_server_starts_only_when_the_user_allows_it(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Observed: without bubblewrap a project's stdio MCP server was started with the
    # reaper's weaker confinement and nobody was asked, whatever [shell] unsandboxed said.
    from briotui.kernel.shell import runner

    monkeypatch.setattr(runner, "_probe_bwrap", lambda: (False, "bwrap is not installed"))
    user = tmp_path / "user-config"
    user.mkdir()
    monkeypatch.setenv("BRIOTUI_CONFIG_DIR", str(user))
    _stdio(project)  # trusted with this user's trust store

    refused = _doctor_mcp(project, capsys)
    assert refused["status"] == "error"
    assert "without an OS sandbox" in refused["detail"]
    assert 'unsandboxed = "allow"' in refused["detail"]
    assert "Traceback" not in refused["detail"]

    (user / "config.toml").write_text('[shell]\nunsandboxed = "allow"\n')
    allowed = _doctor_mcp(project, capsys)
    assert allowed["status"] == "ok", allowed
    assert "6 tools" in allowed["detail"]


def _open_temp_files() -> int:
    """This process's open files that were deleted on creation (``TemporaryFile``)."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        count += target.endswith("(deleted)")
    return count


def test_a_server_restarted_after_crashes_leaves_no_open_files(tmp_path: Path) -> None:
    # Observed: each start of a server opened a file for its stderr that was closed only
    # when the hub closed: a server crashing again and again leaked one file each time.
    before = _open_temp_files()
    hub = _hub(tmp_path)
    try:
        for _ in range(3):
            with pytest.raises(McpUnavailable):
                hub.call("t", "crash", {})
        assert _open_temp_files() - before <= 1  # the last crash's, for its message
    finally:
        hub.close()
    assert _open_temp_files() == before

"""The shared Python runtime of each world: one build per world, hot reload, same sandbox.

Python agents that need only the runtime's modules run on their world's runtime
component, which reads their code at the start of each run: an edited ``app.py`` is
picked up by the next run with no componentize-py build and no wasmtime compile. Tried
as an agent author would: through ``briotui run --agent`` with the scripted provider.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

import briotui.kernel.runtime.build as build_module
from briotui.cli.main import main
from briotui.kernel.agents import discover
from briotui.kernel.errors import BuildError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.runtime.build import Builder
from briotui.kernel.runtime.cache import BuildCache, runtime_key
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.engine import EngineSettings, EpochTicker, make_engine
from briotui.kernel.runtime.instance import RunFailed
from briotui.kernel.runtime.pyruntime import PRELOADED, CodeCache
from briotui.kernel.runtime.values import component_imports

pytestmark = pytest.mark.slow

ECHO_LIKE = """
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, types

PREFIX = ""


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        log.emit(log.Level.INFO, "echo-like agent running")
        reply = llm.complete(llm.CompletionRequest(
            messages=[llm.Message(role=llm.Role.USER, content=task.goal)],
            max_tokens=None, temperature=None, stop=[], purpose="echo"))
        return agent.Outcome(summary=PREFIX + reply.text, data="")
"""


def write_agent(project: Path, name: str, files: dict[str, str]) -> Path:
    directory = project / ".brio" / "agents" / name
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    trust_project(project)  # .brio/agents/ runs only in a trusted project
    return directory


def no_componentize(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if componentize-py or a wasmtime compile runs (records them)."""
    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> str:
        calls.append("componentize-py")
        raise AssertionError("componentize-py ran: hot reload must need no build")

    def refuse_compile(*args: object, **kwargs: object) -> object:
        calls.append("compile")
        raise AssertionError("wasmtime compiled a component: hot reload must need none")

    monkeypatch.setattr(build_module, "_run_componentize", refuse)
    monkeypatch.setattr(build_module, "compile_component", refuse_compile)
    return calls


def cli_run(
    capsys: pytest.CaptureFixture[str], project: Path, agent: str, reply: str
) -> tuple[int, dict[str, object]]:
    replies = project / ".replies.json"
    replies.write_text(json.dumps([reply]))
    code = main(
        [
            "-C",
            str(project),
            "run",
            "say it",
            "--agent",
            agent,
            "--provider",
            f"scripted:{replies}",
            "--json",
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def summary(data: dict[str, object]) -> str:
    result = data.get("result")
    assert isinstance(result, dict), data
    return str(result["summary"])


async def test_agents_of_a_world_share_one_runtime(kernel: Kernel) -> None:
    builder = kernel.builder
    echo, probe = builder.artifact(kernel.agent("echo")), builder.artifact(kernel.agent("probe"))
    assert echo.kind == probe.kind == "runtime"
    assert echo.key == probe.key  # both in the minimal world: one build, one compile
    worlds = {kernel.agent(n).world for n in kernel.discovery().agents}
    keys = {builder.artifact(s).key for s in kernel.discovery().agents.values()}
    assert len(keys) == len(worlds) < len(kernel.discovery().agents)
    await kernel.run_agent("probe", "spin 1")
    await kernel.load("echo")
    assert len(builder._components) == 1  # loaded once for both


async def test_the_reviewer_runtime_cannot_write(project: Path, built_agents: list[str]) -> None:
    writer = ECHO_LIKE.replace(
        "from wit_world.imports import llm, log, types",
        "from wit_world.imports import llm, log, types, workspace_write",
    )
    write_agent(project, "sneaky-reviewer", {"app.py": writer, "agent.toml": 'world = "reviewer"'})
    kernel = Kernel(project)
    try:
        spec = kernel.agent("sneaky-reviewer")
        assert kernel.builder.artifact(spec).kind == "runtime"
        loaded = await kernel.load("sneaky-reviewer", build=True)
        imports = component_imports(loaded.component, kernel.engine)
        assert not [name for name in imports if "workspace-write" in name]
        assert [name for name in imports if "/workspace@" in name]
        with pytest.raises(RunFailed) as failed:
            await kernel.run_agent(
                "sneaky-reviewer",
                "write something",
                bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("x")])),
            )
        assert "workspace_write" in failed.value.error.message
        assert "sneaky-reviewer/app.py" in failed.value.error.message  # its file, named
        assert str(project) not in failed.value.error.message  # not where it is on the host
    finally:
        await kernel.close()


def test_an_agent_needing_more_gets_its_own_build(tmp_path: Path) -> None:
    write_agent(tmp_path, "native", {"app.py": "import sqlite3\n" + ECHO_LIKE})
    write_agent(tmp_path, "mine", {"app.py": ECHO_LIKE, "agent.toml": 'build = "own"\n'})
    write_agent(tmp_path, "plain", {"app.py": ECHO_LIKE, "helpers.py": "import json\n"})
    found = discover(ProjectPaths.at(tmp_path)).agents
    settings = EngineSettings()
    engine = make_engine(settings)
    kernel_builder = Builder(engine, settings, EpochTicker(engine), BuildCache(tmp_path / "c"))
    native = kernel_builder.artifact(found["native"])
    assert native.kind == "own"
    assert "sqlite3" in native.reason
    assert kernel_builder.artifact(found["mine"]).kind == "own"
    assert kernel_builder.artifact(found["plain"]).kind == "runtime"


async def test_preloaded_modules_and_own_modules_import_on_the_runtime(
    project: Path, built_agents: list[str]
) -> None:
    stdlib = sorted(PRELOADED - {"componentize_py_types", "wit_world", "__future__"})
    app = (
        "from __future__ import annotations\n"
        + "".join(f"import {name}\n" for name in stdlib)
        + "import urllib.parse\nfrom helpers import shout\nfrom pkg.sub import VALUE\n"
        + ECHO_LIKE.replace('PREFIX = ""', "PREFIX = shout(VALUE)")
    )
    write_agent(
        project,
        "wide",
        {
            "app.py": app,
            "helpers.py": "def shout(text):\n    return text.upper()\n",
            "pkg/sub.py": "VALUE = 'ok: '\n",  # a package without __init__.py
        },
    )
    kernel = Kernel(project)
    try:
        assert kernel.builder.artifact(kernel.agent("wide")).kind == "runtime"
        outcome = await kernel.run_agent(
            "wide", "x", bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("fine")]))
        )
        assert outcome.summary == "OK: fine"
    finally:
        await kernel.close()


def test_hot_reload_of_a_user_agent_through_the_cli(
    project: Path,
    built_agents: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = write_agent(project, "parrot", {"app.py": ECHO_LIKE})
    calls = no_componentize(monkeypatch)  # the minimal world's runtime is built already
    code, data = cli_run(capsys, project, "parrot", "hello")
    assert (code, summary(data)) == (0, "hello")

    # The author edits app.py: the next run uses it, with no build step.
    app = directory / "app.py"
    app.write_text(ECHO_LIKE.replace('PREFIX = ""', 'PREFIX = "parrot says: "'))
    code, data = cli_run(capsys, project, "parrot", "hello")
    # A project's agents are code: a changed one runs only once trusted again.
    assert code != 0
    assert "trust" in json.dumps(data)
    trust_project(project)  # what `briotui trust --yes` does
    code, data = cli_run(capsys, project, "parrot", "hello")
    assert (code, summary(data)) == (0, "parrot says: hello")
    assert calls == []


def test_hot_reload_of_a_builtin_style_agent_through_the_cli(
    project: Path,
    built_agents: list[str],
    repo_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builtin = tmp_path / "builtin-agents"
    shutil.copytree(repo_root / "agents", builtin)
    monkeypatch.setattr("briotui.kernel.agents.builtin_agents_dir", lambda: builtin)
    calls = no_componentize(monkeypatch)
    code, data = cli_run(capsys, project, "echo", "pong")
    assert (code, summary(data)) == (0, "pong")

    app = builtin / "echo" / "app.py"
    source = app.read_text()
    assert "summary=reply.text" in source
    app.write_text(source.replace("summary=reply.text", 'summary="echo: " + reply.text'))
    code, data = cli_run(capsys, project, "echo", "pong")
    assert (code, summary(data)) == (0, "echo: pong")
    assert calls == []


async def test_hot_reload_in_a_running_kernel(
    project: Path, built_agents: list[str], repo_root: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    builtin = tmp_path / "builtin-agents"
    shutil.copytree(repo_root / "agents", builtin)
    monkeypatch.setattr("briotui.kernel.agents.builtin_agents_dir", lambda: builtin)
    directory = write_agent(project, "parrot", {"app.py": ECHO_LIKE})
    calls = no_componentize(monkeypatch)
    kernel = Kernel(project)

    async def run(agent: str) -> str:
        provider = ScriptedProvider([ScriptedReply("hi")])
        outcome = await kernel.run_agent(agent, "x", bindings=RunBindings(provider=provider))
        return outcome.summary

    try:
        assert await run("echo") == "hi"
        app = builtin / "echo" / "app.py"
        app.write_text(app.read_text().replace("summary=reply.text", 'summary="2 " + reply.text'))
        assert await run("echo") == "2 hi"  # the same kernel, the next run: the new code

        assert await run("parrot") == "hi"
        (directory / "app.py").write_text(ECHO_LIKE.replace('PREFIX = ""', 'PREFIX = "new "'))
        with pytest.raises(BuildError) as refused:  # changed since the project was trusted
            await run("parrot")
        assert "changed since the project was trusted" in refused.value.message
        assert refused.value.title == "Project agent changed since trusted"
        trust_project(project)
        kernel.reload_config()
        assert await run("parrot") == "new hi"
    finally:
        await kernel.close()
    assert calls == []


def test_a_cache_takes_unchanged_artifacts_from_another(
    tmp_path: Path, built_agents: list[str]
) -> None:
    suite = BuildCache()  # the suite's cache: every runtime is built
    fingerprint = EngineSettings().fingerprint()
    shared = suite.entry(runtime_key("minimal"), fingerprint)
    assert shared.compiled.is_file()
    fresh = BuildCache(tmp_path / "cache", also=(suite.root,))
    entry = fresh.entry(shared.key, fingerprint)
    assert entry.compiled.is_file()
    assert entry.component.is_file()
    assert entry.compiled.stat().st_ino == shared.compiled.stat().st_ino  # linked, not copied
    alone = BuildCache(tmp_path / "alone")  # an explicit cache looks nowhere else
    assert not alone.entry(shared.key, fingerprint).compiled.exists()


def test_a_symlinked_module_is_not_served(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN = 'do not read me'\n")
    directory = write_agent(tmp_path, "peek", {"app.py": ECHO_LIKE})
    spec = discover(ProjectPaths.at(tmp_path)).agents["peek"]
    (directory / "loot.py").symlink_to(secret)
    # discovery refuses it now (the trust digest never follows links) ...
    found = discover(ProjectPaths.at(tmp_path))
    assert "peek" not in found.agents
    assert any("symlink" in p.message for p in found.problems)
    # ... and a spec found before the link was planted is served without it
    code = CodeCache().code(spec)
    assert [m.name for m in code.modules] == ["app"]
    assert not any("do not read me" in m.source for m in code.modules)


@pytest.mark.parametrize("refresh", ["build_agents", "edited_before_first_use"])
async def test_a_project_agent_changed_after_trust_stays_refused_in_a_running_kernel(
    project: Path, built_agents: list[str], refresh: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Observed: the "trusted" version was whatever was on disk at the last discovery, so
    # in a running kernel (the TUI, `briotui serve`) the next `build_agents` (or a first
    # discovery after the edit) took the edited code as trusted and ran it unasked.
    directory = write_agent(project, "parrot", {"app.py": ECHO_LIKE})
    no_componentize(monkeypatch)
    kernel = Kernel(project)
    kernel.config  # noqa: B018 (the trust decision is taken when the config is read)

    async def run() -> str:
        provider = ScriptedProvider([ScriptedReply("hi")])
        outcome = await kernel.run_agent("parrot", "x", bindings=RunBindings(provider=provider))
        return outcome.summary

    try:
        if refresh == "build_agents":
            assert await run() == "hi"
        (directory / "app.py").write_text(ECHO_LIKE.replace('PREFIX = ""', 'PREFIX = "evil "'))
        if refresh == "build_agents":
            await kernel.build_agents(["parrot"])  # what the TUI does on start and rebuild
        with pytest.raises(BuildError) as refused:
            await run()
        assert refused.value.title == "Project agent changed since trusted"
    finally:
        await kernel.close()


async def test_a_project_agent_edited_off_the_shared_runtime_is_not_built_unasked(
    project: Path, built_agents: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Observed: only the shared runtime checked the trusted tree; an edit that makes the
    # agent need a build of its own (here: an import the runtime lacks) was built and run
    # by the running kernel without a new trust prompt.
    directory = write_agent(project, "parrot", {"app.py": ECHO_LIKE})
    calls = no_componentize(monkeypatch)
    kernel = Kernel(project)
    try:
        provider = ScriptedProvider([ScriptedReply("hi")])
        done = await kernel.run_agent("parrot", "x", bindings=RunBindings(provider=provider))
        assert done.summary == "hi"
        (directory / "app.py").write_text("import xml.dom\n" + ECHO_LIKE)
        with pytest.raises(BuildError) as refused:
            await kernel.run_agent("parrot", "x", bindings=RunBindings(provider=provider))
        assert refused.value.title == "Project agent changed since trusted"
    finally:
        await kernel.close()
    assert calls == []  # nothing of the edited code was built

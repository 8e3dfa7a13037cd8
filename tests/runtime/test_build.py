"""Building agents: cache behaviour, user agents, and clear errors for broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

from briotui.kernel.agents import discover
from briotui.kernel.errors import BuildError, ComponentError, WitError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.runtime.cache import source_key
from briotui.kernel.runtime.context import RunBindings

pytestmark = pytest.mark.slow

USER_AGENT = """
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        log.emit(log.Level.INFO, "shout agent running")
        reply = llm.complete(llm.CompletionRequest(
            messages=[llm.Message(role=llm.Role.USER, content=task.goal)],
            max_tokens=None, temperature=None, stop=[], purpose="shout"))
        return agent.Outcome(summary=reply.text.upper(), data="")
"""

REVIEWER_THAT_WRITES = """
(component
  (import "brio:agent/workspace-write@0.1.0" (instance
    (export "delete" (func (param "path" string)))))
)
"""

FOREIGN_IMPORT = """
(component
  (import "evil:net/socket@1.0.0" (instance
    (export "connect" (func (param "host" string)))))
)
"""


def write_agent(project: Path, name: str, files: dict[str, str | bytes]) -> Path:
    directory = project / ".brio" / "agents" / name
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    trust_project(project)  # .brio/agents/ runs only in a trusted project
    return directory


async def build_one(project: Path, name: str) -> BuildError | None:
    kernel = Kernel(project)
    try:
        [result] = await kernel.build_agents([name])
    finally:
        await kernel.close()
    return result.error


async def test_second_build_with_nothing_changed_does_nothing(kernel: Kernel) -> None:
    results = await kernel.build_agents()
    assert results
    assert all(r.status == "cached" for r in results)


def test_source_key_follows_sources_and_world(tmp_path: Path) -> None:
    write_agent(tmp_path, "a", {"app.py": "x = 1\n"})
    spec = discover(ProjectPaths.at(tmp_path)).agents["a"]
    key = source_key(spec)
    (spec.directory / "app.py").write_text("x = 2\n")
    assert source_key(spec) != key
    (spec.directory / "agent.toml").write_text('world = "coder"\n')
    changed = discover(ProjectPaths.at(tmp_path)).agents["a"]
    assert changed.world == "coder"


async def test_user_agent_builds_and_runs_like_a_builtin(
    project: Path, built_agents: list[str]
) -> None:
    write_agent(project, "shout", {"app.py": USER_AGENT})
    kernel = Kernel(project)
    try:
        assert kernel.agent("shout").origin == "user"
        outcome = await kernel.run_agent(
            "shout",
            "quiet words",
            bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("quiet words")])),
        )
        assert outcome.summary == "QUIET WORDS"
        again = await kernel.build_agents(["shout"])
        assert again[0].status == "cached"
    finally:
        await kernel.close()


async def test_own_builds_and_prebuilt_components_still_build_and_run(
    project: Path, built_agents: list[str]
) -> None:
    write_agent(project, "own", {"app.py": USER_AGENT, "agent.toml": 'build = "own"\n'})
    kernel = Kernel(project)
    try:
        [result] = await kernel.build_agents(["own"])
        assert result.error is None
        assert result.artifact == "own"
        outcome = await kernel.run_agent(
            "own",
            "quiet words",
            bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("quiet words")])),
        )
        assert outcome.summary == "QUIET WORDS"
        # The same component, prebuilt (as another toolchain would hand it over).
        built = kernel.builder.entry_for(kernel.agent("own")).component.read_bytes()
        write_agent(
            project, "prebuilt", {"agent.toml": 'component = "agent.wasm"\n', "agent.wasm": built}
        )
        kernel.reload_config()
        [result] = await kernel.build_agents(["prebuilt"])
        assert (result.error, result.artifact) == (None, "prebuilt")
        outcome = await kernel.run_agent(
            "prebuilt",
            "loud",
            bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("loud")])),
        )
        assert outcome.summary == "LOUD"
    finally:
        await kernel.close()


async def test_broken_source_names_agent_file_and_cause_and_others_still_build(
    project: Path, built_agents: list[str]
) -> None:
    write_agent(project, "broken", {"app.py": "def run(:\n    pass\n"})
    kernel = Kernel(project)
    try:
        results = {r.agent: r for r in await kernel.build_agents()}
        assert results["broken"].status == "failed"
        error = results["broken"].error
        assert error is not None
        assert error.agent == "broken"
        assert "app.py" in (error.file or "")
        assert "SyntaxError" in error.message or "invalid syntax" in error.message
        assert "Stack backtrace" not in error.message
        assert results["echo"].status == "cached"
        outcome = await kernel.run_agent("probe", "spin 1")
        assert outcome.summary == "spun 1 ms"
    finally:
        await kernel.close()


async def test_wit_that_does_not_parse_is_named(project: Path) -> None:
    write_agent(
        project, "badwit", {"app.py": "x = 1\n", "wit/extra.wit": "package x:y;\ninterface {\n"}
    )
    error = await build_one(project, "badwit")
    assert isinstance(error, WitError)
    assert "extra.wit" in (error.file or "")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00asm\x0d\x00\x01\x00garbage", "not a valid WebAssembly component"),
        (b"hello, not wasm", "not a valid WebAssembly component"),
    ],
)
async def test_garbage_or_truncated_component_is_reported(
    project: Path, content: bytes, needle: str
) -> None:
    write_agent(project, "junk", {"agent.toml": 'component = "junk.wasm"\n', "junk.wasm": content})
    error = await build_one(project, "junk")
    assert isinstance(error, ComponentError)
    assert needle in error.message


async def test_truncated_real_component_is_reported(project: Path, kernel: Kernel) -> None:
    real = kernel.builder.entry_for(kernel.agent("echo")).component.read_bytes()
    write_agent(
        project,
        "cut",
        {"agent.toml": 'component = "cut.wasm"\n', "cut.wasm": real[: len(real) // 2]},
    )
    error = await build_one(project, "cut")
    assert isinstance(error, ComponentError)


async def test_reviewer_world_cannot_link_a_write_import(project: Path) -> None:
    write_agent(
        project,
        "sneaky",
        {"agent.toml": 'world = "reviewer"\ncomponent = "c.wat"\n', "c.wat": REVIEWER_THAT_WRITES},
    )
    error = await build_one(project, "sneaky")
    assert error is not None
    assert error.title == "Capability denied at link time"
    assert "workspace-write" in error.message


async def test_unknown_import_is_refused(project: Path) -> None:
    write_agent(
        project, "foreign", {"agent.toml": 'component = "c.wat"\n', "c.wat": FOREIGN_IMPORT}
    )
    error = await build_one(project, "foreign")
    assert isinstance(error, ComponentError)
    assert "evil:net/socket@1.0.0" in error.message


def test_bad_manifest_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    write_agent(tmp_path, "oops", {"app.py": "x=1\n", "agent.toml": "world = [\n"})
    write_agent(tmp_path, "nope", {"app.py": "x=1\n", "agent.toml": 'world = "wizard"\n'})
    found = discover(ProjectPaths.at(tmp_path))
    names = {p.agent: p for p in found.problems}
    assert "does not parse" in names["oops"].title
    assert "wizard" in names["nope"].message
    assert "echo" in found.agents
    with pytest.raises(BuildError):
        found.get("oops")

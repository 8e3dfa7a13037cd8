"""Builds that fail, as a user meets them: remembered, described truly, explained.

Each test reproduces an observed problem through the real path (the CLI, the kernel,
the TUI): a failed build was retried from scratch on every attempt, progress said
"componentize-py" for a prebuilt component, ``doctor`` said to build an agent that can
never link, and the TUI started a build at every start.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

import briotui.kernel.runtime.build as build_module
from briotui.cli.main import main
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.build import Builder

pytestmark = pytest.mark.slow

REVIEWER_THAT_WRITES = """
(component
  (import "brio:agent/workspace-write@0.1.0" (instance
    (export "delete" (func (param "path" string)))))
)
"""


def sneaky_agent(project: Path) -> Path:
    """A prebuilt reviewer-world component that imports a write: it can never link."""
    directory = project / ".brio" / "agents" / "sneaky"
    directory.mkdir(parents=True)
    (directory / "agent.toml").write_text('world = "reviewer"\ncomponent = "c.wat"\n')
    # Unique per test: failures are remembered by content in the suite's shared cache.
    (directory / "c.wat").write_text(f";; {project}\n{REVIEWER_THAT_WRITES}")
    trust_project(project)
    return directory


def count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    compiled: list[str] = []
    real = build_module.compile_component

    def counting(engine: object, spec: object, data: bytes) -> object:
        compiled.append(getattr(spec, "name", "?"))
        return real(engine, spec, data)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "compile_component", counting)
    return compiled


async def test_a_failed_build_is_remembered_not_retried(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sneaky_agent(project)
    compiled = count_compiles(monkeypatch)
    kernel = Kernel(project)
    try:
        [first] = await kernel.build_agents(["sneaky"])
        assert first.status == "failed"
        assert first.error is not None
        assert first.error.title == "Capability denied at link time"
        assert compiled == ["sneaky"]

        [again] = await kernel.build_agents(["sneaky"])  # unchanged: refused at once
        assert again.status == "failed"
        assert again.error is not None
        assert again.error.title == first.error.title
        assert "workspace-write" in again.error.message
        assert "remembered" in again.error.message
        assert compiled == ["sneaky"]  # not compiled again

        with pytest.raises(build_module.BuildError) as refused:  # a run says why too
            await kernel.load("sneaky", build=True)
        assert refused.value.title == "Capability denied at link time"
        assert compiled == ["sneaky"]

        [forced] = await kernel.build_agents(["sneaky"], force=True)
        assert forced.status == "failed"
        assert compiled == ["sneaky", "sneaky"]  # --force tries again
    finally:
        await kernel.close()


async def test_a_fixed_agent_is_built_again(project: Path) -> None:
    directory = sneaky_agent(project)
    kernel = Kernel(project)
    try:
        [first] = await kernel.build_agents(["sneaky"])
        assert first.status == "failed"
        (directory / "agent.toml").write_text('world = "coder"\ncomponent = "c.wat"\n')
        trust_project(project)
        kernel.reload_config()
        [fixed] = await kernel.build_agents(["sneaky"])
        assert fixed.error is None or fixed.error.title != "Capability denied at link time"
        assert "remembered" not in (fixed.error.message if fixed.error else "")
    finally:
        await kernel.close()


def test_progress_says_what_is_built(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sneaky_agent(project)
    main(["-C", str(project), "agents", "build", "sneaky"])
    err = capsys.readouterr().err
    assert "reading the prebuilt component c.wat" in err
    assert "componentize-py" not in err
    assert "compiling for this machine" in err


def test_doctor_says_why_an_agent_cannot_build(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sneaky_agent(project)
    main(["-C", str(project), "agents", "build", "sneaky"])
    capsys.readouterr()
    main(["-C", str(project), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    check = checks["agent sneaky"]
    assert check["status"] == "error"
    assert "Capability denied at link time" in check["detail"]
    assert "workspace-write" in check["detail"]
    assert "agents build" not in check["fix"]
    assert "prebuilt component c.wat" in check["detail"]


def test_agents_list_says_why(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sneaky_agent(project)
    main(["-C", str(project), "agents", "build", "sneaky"])
    capsys.readouterr()
    main(["-C", str(project), "agents", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["agents"]}
    assert rows["sneaky"]["failure"]["title"] == "Capability denied at link time"
    assert rows["sneaky"]["artifact"] == "prebuilt"


async def test_the_tui_builds_nothing_and_says_nothing_when_all_is_built(
    project: Path, built_agents: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from briotui.kernel.llm.scripted import ScriptedProvider
    from briotui.ui.app import make_app

    sneaky_agent(project)
    kernel = Kernel(project)
    try:
        await kernel.build_agents(["sneaky"])  # fails, and is remembered
    finally:
        await kernel.close()
    builds: list[list[str]] = []
    real = Builder.build

    def counting(self: Builder, specs: list[object], **kwargs: object) -> object:
        builds.append([getattr(s, "name", "?") for s in specs])
        return real(self, specs, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Builder, "build", counting)
    config = tmp_path / "config"
    config.mkdir()
    trust_project(project, config)  # the app's user config trusts the project too
    app = make_app(project, provider=ScriptedProvider([]), config_dir=config, build=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "sneaky" in app.kernel.discovery().agents  # type: ignore[union-attr]
        assert not [line for line in app.banner_lines() if "uild" in line]
        assert builds == []
        assert not app.building


async def test_a_build_under_way_is_waited_for_not_done_twice(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUI's background build and a request needing the same agent now."""
    import asyncio
    import time

    directory = project / ".brio" / "agents" / "slow"
    directory.mkdir(parents=True)
    (directory / "agent.toml").write_text('component = "c.wat"\n')
    (directory / "c.wat").write_text(f";; {project}\n{REVIEWER_THAT_WRITES}")
    trust_project(project)
    compiled: list[str] = []
    real = build_module.compile_component

    def slow(engine: object, spec: object, data: bytes) -> object:
        compiled.append(getattr(spec, "name", "?"))
        time.sleep(0.5)  # long enough for the second build to arrive meanwhile
        return real(engine, spec, data)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "compile_component", slow)
    kernel = Kernel(project)
    try:
        spec = kernel.agent("slow")
        first, second = await asyncio.gather(
            asyncio.to_thread(kernel.builder.build, [spec]),
            asyncio.to_thread(kernel.builder.build, [spec]),
        )
        assert compiled == ["slow"]  # once; the other waited and found it done
        assert {first[0].status, second[0].status} == {"failed"}
    finally:
        await kernel.close()

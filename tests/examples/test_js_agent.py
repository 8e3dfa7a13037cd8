"""The JavaScript agent example (``examples/js-agent``), built with componentize-js and
run end to end through the real kernel and the CLI (``briotui run --agent``).

Needs Node.js and npm; skipped with the reason when they (or the componentize-js
packages) cannot be had. The installed ``node_modules`` and the built component are
cached under the test cache, keyed by what they are made from, like the agent cache:
the suite installs and builds them once per machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from briotui.cli.main import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TEST_CACHE = Path(os.environ["BRIOTUI_CACHE_DIR"])  # set by the suite's conftest
EXAMPLE = REPO / "examples" / "js-agent"
JS_CACHE = TEST_CACHE / "js-agent"
NPM_TIMEOUT_S = 900


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:16]


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return "\n".join(lines[-8:]) or f"exit status {proc.returncode}"


def _node_modules() -> tuple[Path, str]:
    """The example's ``node_modules``, installed once with ``npm ci`` (cached)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the JavaScript agent example needs Node.js")
    manifest = [(EXAMPLE / n).read_bytes() for n in ("package.json", "package-lock.json")]
    key = _digest(*manifest)
    home = JS_CACHE / f"node-{key}"
    if (home / "node_modules" / ".bin" / "componentize-js").exists():
        return home / "node_modules", key
    staging = JS_CACHE / f"tmp-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(EXAMPLE / name, staging / name)
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=staging,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"npm could not install componentize-js for the example:\n{_tail(proc)}")
    try:
        staging.rename(home)
    except OSError:  # another run installed it first
        shutil.rmtree(staging, ignore_errors=True)
    return home / "node_modules", key


@pytest.fixture(scope="session")
def js_component() -> Path:
    """The example built into a component by its own ``npm run build`` (cached)."""
    modules, deps = _node_modules()
    wit = sorted((REPO / "wit").glob("*.wit"))
    key = _digest(deps.encode(), (EXAMPLE / "app.js").read_bytes(), *(f.read_bytes() for f in wit))
    built = JS_CACHE / f"agent-{key}.wasm"
    if built.exists():
        return built
    work = JS_CACHE / f"build-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        for name in ("app.js", "package.json", "agent.toml"):
            shutil.copyfile(EXAMPLE / name, work / name)
        (work / "node_modules").symlink_to(modules, target_is_directory=True)
        # What the example's README says to do first: export the WIT next to app.js.
        assert main(["agents", "wit", "--out", str(work / "wit")]) == 0
        proc = subprocess.run(
            ["npm", "run", "build"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        assert proc.returncode == 0, f"npm run build failed:\n{_tail(proc)}"
        os.replace(work / "agent.wasm", built)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return built


@pytest.fixture
def js_project(project: Path, js_component: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A trusted project with the example installed as the project agent ``js-echo``."""
    agent = project / ".brio" / "agents" / "js-echo"
    agent.mkdir(parents=True)
    for name in ("app.js", "agent.toml"):
        shutil.copyfile(EXAMPLE / name, agent / name)
    shutil.copyfile(js_component, agent / "agent.wasm")
    assert main(["-C", str(project), "trust", "--yes"]) == 0
    capsys.readouterr()
    return project


def run_json(
    capsys: pytest.CaptureFixture[str], project: Path, replies: list[object], goal: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    script = project.parent / "replies.json"
    script.write_text(json.dumps(replies))
    provider = f"scripted:{script}"
    code = main(
        ["-C", str(project), "run", "--agent", "js-echo", "--provider", provider, "--json", goal]
    )
    return code, json.loads(capsys.readouterr().out)


def test_the_javascript_example_runs_through_the_kernel(
    js_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run_json(capsys, js_project, ["Hello from the scripted model."], "say hello")
    assert code == 0, result
    assert result["status"] == "ok"
    assert result["agent"] == "js-echo"
    assert result["result"]["summary"] == "Hello from the scripted model."
    data = result["result"]["data"]
    assert data["language"] == "javascript"
    assert data["provider"] == "scripted"
    assert isinstance(data["elapsed_ms"], int)  # a u64 BigInt from the clock, converted
    assert result["usage"]["host_calls"] >= 3  # log, clock, llm: its world's imports
    assert result["models"] == [{"provider": "scripted", "model": "scripted"}]


def test_a_thrown_kind_and_message_is_the_agents_typed_error(
    js_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run_json(capsys, js_project, [{"error": "overloaded"}], "say hello")
    assert code != 0  # the run failed (the exit code for it is `run`'s business)
    error = result["error"]
    assert error["kind"] == "guest-error"
    # The host call threw {kind: "unavailable", ...}; the agent rethrew its own message.
    assert error["title"] == "Agent js-echo reported: unavailable"
    assert error["message"].startswith("The model call failed:")

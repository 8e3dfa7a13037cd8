"""The ``briotui`` command line, called as a user would (in-process and as a real process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from briotui.cli.main import build_parser, main

pytestmark = pytest.mark.slow


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["agents", "--help"],
        ["agents", "build", "--help"],
        ["agents", "list", "--help"],
        ["run", "--help"],
        ["doctor", "--help"],
        ["bench", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 0
        assert "usage: briotui" in capsys.readouterr().out


def test_run_json_ok(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    replies = project / "replies.json"
    replies.write_text(json.dumps(["All good."]))
    code, data = run_json(
        capsys,
        "-C",
        str(project),
        "run",
        "check",
        "--agent",
        "echo",
        "--provider",
        f"scripted:{replies}",
        "--json",
    )
    assert code == 0
    assert data["status"] == "ok"
    assert data["agent"] == "echo"
    assert data["result"]["summary"] == "All good."  # type: ignore[index]
    usage = data["usage"]
    assert isinstance(usage, dict)
    assert {"fuel", "wall_ms", "peak_memory_bytes"} <= set(usage)


def test_run_json_error_when_replies_run_out(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    replies = project / "replies.json"
    replies.write_text("[]")
    code, data = run_json(
        capsys,
        "-C",
        str(project),
        "run",
        "x",
        "--agent",
        "echo",
        "--provider",
        f"scripted:{replies}",
        "--json",
    )
    assert code == 2  # "error", as for the pipeline (1 is "tests failed")
    assert data["status"] == "error"
    assert data["outcome"] == "error"
    error = data["error"]
    assert isinstance(error, dict)
    assert {"kind", "title", "message"} <= set(error)
    assert "No scripted reply is left" in str(error["message"])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "x", "--agent", "echo", "--provider", "scripted:"], "FILE is a JSON array"),
        (["run", "x", "--agent", "nobody"], "no agent called 'nobody'"),
        (
            ["run", "x", "--agent", "echo", "--provider", "scripted:/nonexistent.json"],
            "does not exist",
        ),
        (
            ["run", "x", "--agent", "echo", "--provider", "martian"],
            "No model provider named 'martian'",
        ),
    ],
)
def test_bad_input_gets_a_clear_error_not_a_traceback(
    project: Path,
    built_agents: list[str],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    needle: str,
) -> None:
    code = main(["-C", str(project), *argv])
    captured = capsys.readouterr()
    assert code != 0
    assert needle in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_agents_list_and_build_json(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(capsys, "-C", str(project), "agents", "list", "--json")
    assert code == 0
    names = {a["name"]: a for a in data["agents"]}  # type: ignore[union-attr, index]
    assert names["echo"]["built"] is True
    code, data = run_json(capsys, "-C", str(project), "agents", "build", "--json")
    assert code == 0
    assert {a["status"] for a in data["agents"]} == {"cached"}  # type: ignore[union-attr, index]


def test_agents_build_says_nothing_to_do(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(project), "agents", "build"]) == 0
    assert "nothing to build" in capsys.readouterr().out


def test_doctor_json(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(capsys, "-C", str(project), "doctor", "--json")
    checks = {c["name"]: c for c in data["checks"]}  # type: ignore[union-attr, index]
    # no model provider is reachable here: doctor says so, with a fix, and exits 1
    providers = [c for name, c in checks.items() if name.startswith("provider ")]
    assert providers
    assert all(c["fix"] for c in providers if c["status"] != "ok")
    assert code == (1 if any(c["status"] == "error" for c in checks.values()) else 0)
    assert checks["wasmtime"]["status"] == "ok"
    assert checks["agent echo"]["status"] == "ok"
    assert checks["project"]["status"] == "ok"


def test_console_script_runs_as_a_process(project: Path, built_agents: list[str]) -> None:
    replies = project / "r.json"
    replies.write_text('["from a real process"]')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "briotui",
            "-C",
            str(project),
            "run",
            "hi",
            "--agent",
            "echo",
            "--provider",
            f"scripted:{replies}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "from a real process"

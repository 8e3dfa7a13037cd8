"""run_command: argv only, scrubbed environment, no stdin, bounded output, killed groups."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from briotui.kernel.errors import CommandFailed, CommandNotFound, CommandRefused, CommandTimeout
from briotui.kernel.shell.runner import default_safe_path, run_command


def _script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(body)
    return ["python", "child.py"]


def test_exit_code_and_streams(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n",
    )
    out = run_command(argv, cwd=tmp_path, timeout_s=30, max_output_bytes=1000, sandbox=False)
    assert (out.exit_code, out.stdout, out.stderr, out.truncated) == (3, "out\n", "err\n", False)
    assert out.duration_ms >= 0
    assert out.sandboxed is False


def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = {
        "LD_PRELOAD": "/nonexistent/evil.so",
        "LD_LIBRARY_PATH": "/nonexistent",
        "BASH_ENV": "/tmp/evil.sh",
        "ENV": "/tmp/evil.sh",
        "PYTHONSTARTUP": "/tmp/evil.py",
        "PYTHONPATH": "/tmp/evil",
        "GIT_DIR": "/tmp/evil.git",
        "GIT_SSH_COMMAND": "id",
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "OPENAI_API_KEY": "sk-secret",
        "GITHUB_TOKEN": "ghp_secret",
        "MY_SERVICE_TOKEN": "tok",
        "DB_PASSWORD": "pw",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "PATH": "/tmp/evil-bin:" + os.environ.get("PATH", ""),
    }
    for key, value in planted.items():
        monkeypatch.setenv(key, value)
    argv = _script(tmp_path, "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    out = run_command(
        argv,
        cwd=tmp_path,
        timeout_s=30,
        max_output_bytes=100_000,
        sandbox=False,
        extra_env={"SAFE_FLAG": "1", "LD_AUDIT": "/x.so", "X_API_KEY": "k"},
    )
    env = json.loads(out.stdout)
    for key in planted:
        if key == "PATH":
            continue
        assert key not in env, key
    assert "LD_AUDIT" not in env
    assert "X_API_KEY" not in env
    assert env["SAFE_FLAG"] == "1"
    assert env["PATH"] == default_safe_path()
    assert "/tmp/evil-bin" not in env["PATH"]
    assert "secret" not in out.stdout
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["PAGER"] == env["GIT_PAGER"] == "cat"
    git_config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert git_config["core.hooksPath"] == "/dev/null"
    assert git_config["core.fsmonitor"] == "false"
    assert env["HOME"] != os.environ.get("HOME")


def test_stdin_is_empty(tmp_path: Path) -> None:
    argv = _script(tmp_path, "import sys\nprint(repr(sys.stdin.read()))\n")
    out = run_command(argv, cwd=tmp_path, timeout_s=30, max_output_bytes=1000, sandbox=False)
    assert out.stdout == "''\n"


def test_output_is_bounded_and_the_child_never_blocks(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import sys\n"
        "chunk = 'x' * 65536\n"
        "for _ in range(64):\n"
        "    sys.stdout.write(chunk)\n"
        "    sys.stderr.write(chunk)\n"
        "print('done', file=sys.stderr)\n",
    )
    out = run_command(argv, cwd=tmp_path, timeout_s=60, max_output_bytes=10_000, sandbox=False)
    assert out.exit_code == 0
    assert out.truncated
    assert len(out.stdout) == 10_000
    assert len(out.stderr) == 10_000


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "open('grandchild.pid', 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n",
    )
    with pytest.raises(CommandTimeout) as info:
        run_command(argv, cwd=tmp_path, timeout_s=2, max_output_bytes=1000, sandbox=False)
    assert info.value.wit_kind == "timeout"
    assert info.value.stdout == "started\n"
    pid = int((tmp_path / "grandchild.pid").read_text())
    assert not _alive(pid)


def test_leftover_background_children_are_killed_when_the_program_exits(
    tmp_path: Path,
) -> None:
    argv = _script(
        tmp_path,
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "open('bg.pid', 'w').write(str(child.pid))\n"
        "print('bye')\n",
    )
    # The background child inherits the pipes; if it were left alive the run would
    # wait for the 60 s limit and raise CommandTimeout instead of returning.
    out = run_command(argv, cwd=tmp_path, timeout_s=60, max_output_bytes=1000, sandbox=False)
    assert out.stdout == "bye\n"
    assert not _alive(int((tmp_path / "bg.pid").read_text()))


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    # Killed but not yet reaped (reparented to an init that does not reap) is dead.
    return "\nState:\tZ" not in status


def test_program_is_resolved_on_the_kernel_path_only(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    evil = fake / "pytest"
    evil.write_text("#!/bin/sh\ntouch pwned\n")
    evil.chmod(0o755)
    with pytest.raises(CommandNotFound, match="not installed"):
        run_command(
            ["definitely-not-a-program-xyz"],
            cwd=tmp_path,
            timeout_s=5,
            max_output_bytes=100,
            sandbox=False,
        )
    with pytest.raises(CommandRefused, match="path"):
        run_command(["bin/pytest"], cwd=tmp_path, timeout_s=5, max_output_bytes=100, sandbox=False)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("argv", [[], ["git", "a\x00b"], "git status"])
def test_malformed_argv_is_refused(tmp_path: Path, argv: object) -> None:
    with pytest.raises(CommandRefused):
        run_command(argv, cwd=tmp_path, timeout_s=5, max_output_bytes=100, sandbox=False)  # type: ignore[arg-type]


def test_missing_working_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match="does not exist"):
        run_command(
            ["git", "--version"],
            cwd=tmp_path / "nope",
            timeout_s=5,
            max_output_bytes=100,
            sandbox=False,
        )


def test_git_does_not_climb_out_of_the_working_directory(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    init = run_command(
        ["git", "init", "-q"], cwd=outer, timeout_s=30, max_output_bytes=1000, sandbox=False
    )
    assert init.exit_code == 0
    out = run_command(
        ["git", "status"], cwd=outer / "inner", timeout_s=30, max_output_bytes=1000, sandbox=False
    )
    assert out.exit_code != 0
    assert "not a git repository" in out.stderr

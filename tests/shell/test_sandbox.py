"""The bubblewrap path: no network, read-only system, writable cwd, private /tmp.

Skipped, with the reason, where bwrap is missing or does not work (scripts/test installs
it when it can); the unsandboxed path is covered by test_run.py and
test_confinement.py either way.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from briotui.kernel.errors import CommandFailed, CommandTimeout
from briotui.kernel.shell import runner
from briotui.kernel.shell.runner import ShellSettings, run_command, sandbox_status

from .conftest import SANDBOX_OK, needs_bwrap

PROBE = """\
import os, pathlib, socket, sys
results = {}
results["ifaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    results["net"] = "connected"
except OSError as e:
    results["net"] = type(e).__name__
pathlib.Path("in_cwd.txt").write_text("ok")
try:
    pathlib.Path(sys.argv[1]).write_text("escaped")
    results["outside"] = "written"
except OSError as e:
    results["outside"] = type(e).__name__
pathlib.Path(sys.argv[2]).write_text("x")
try:
    pathlib.Path("/usr/briotui-probe").write_text("x")
    results["usr"] = "written"
except OSError as e:
    results["usr"] = type(e).__name__
print(results)
"""


def test_status_is_reported() -> None:
    status = sandbox_status(ShellSettings())  # what the kernel publishes and doctor shows
    assert status.sandboxed is SANDBOX_OK
    assert "bwrap" in status.detail or "bubblewrap" in status.detail


@needs_bwrap
def test_sandbox_confines_the_command(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "probe.py").write_text(PROBE)
    outside = tmp_path / "outside.txt"
    private = Path(f"/tmp/briotui-private-{os.getpid()}.txt")
    out = run_command(
        ["python", "probe.py", str(outside), str(private)],
        cwd=work,
        timeout_s=60,
        max_output_bytes=10_000,
        sandbox=True,
    )
    assert out.sandboxed
    assert out.exit_code == 0, out.stderr
    results = ast.literal_eval(out.stdout)
    assert results["ifaces"] == ["lo"]
    assert results["net"] != "connected"
    # Writing next to the working directory lands in the sandbox's private /tmp (or
    # fails); either way nothing reaches the host.
    assert results["usr"] != "written"
    assert (work / "in_cwd.txt").read_text() == "ok"
    assert not outside.exists()
    assert not private.exists()
    assert not Path("/usr/briotui-probe").exists()


@needs_bwrap
def test_sandboxed_timeout_kills_everything(tmp_path: Path) -> None:
    (tmp_path / "spin.py").write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print('go', flush=True)\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(CommandTimeout) as info:
        run_command(
            ["python", "spin.py"], cwd=tmp_path, timeout_s=3, max_output_bytes=100, sandbox=True
        )
    assert info.value.stdout == "go\n"


def test_without_bwrap_auto_runs_unsandboxed_and_required_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_probe_bwrap", lambda: (False, "bwrap is not installed"))
    out = run_command(["git", "--version"], cwd=tmp_path, timeout_s=30, max_output_bytes=100)
    assert out.exit_code == 0
    assert not out.sandboxed
    with pytest.raises(CommandFailed, match="sandbox was required"):
        run_command(
            ["git", "--version"], cwd=tmp_path, timeout_s=5, max_output_bytes=100, sandbox=True
        )

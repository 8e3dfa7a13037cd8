"""The reaper (the confining process of unsandboxed commands) always ends, and always
kills what the command left, even when the kernel's SIGTERM comes right after the fork
or a descendant escapes its /proc scans.

Each test runs the real ``reaper.py`` in its own process over a real ``/bin/sh``
command; a small wrapper injects the moment the review found: SIGTERM delivered in
the parent right after ``fork`` returns (before its ``try``), or a /proc scan that
misses a live descendant (as one forked after the last scan, or one stuck in D state).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from briotui.kernel import reaper

WRAPPER = """\
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("reaper", {path!r})
reaper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reaper)
mode = sys.argv[1]
if mode == "term-at-fork":
    real_fork = os.fork
    def fork():
        pid = real_fork()
        if pid:  # the kernel's timeout SIGTERM, right in the window after fork
            os.kill(os.getpid(), signal.SIGTERM)
        return pid
    os.fork = fork
elif mode == "blind":
    reaper._children_of = lambda pids: set()  # a descendant no scan finds
sys.exit(reaper.main(["reaper", *sys.argv[2:]]))
"""

CONFIG = json.dumps({"read": [], "write": [], "devices": [], "landlock": False, "netns": False})


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def start(tmp_path: Path, mode: str, script: str) -> subprocess.Popen[bytes]:
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER.format(path=str(Path(reaper.__file__).resolve())))
    return subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",
            str(wrapper),
            mode,
            CONFIG,
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[bytes], pidfile: Path) -> tuple[bool, str, int | None]:
    """Whether the reaper hung, its stderr, and the pid of a survivor (killed here)."""
    try:
        _, err = proc.communicate(timeout=30)
        hung = False
    except subprocess.TimeoutExpired:  # a survivor holds the pipes, or the reaper waits
        hung, err = True, b""
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.5)  # a survivor would have written its pid by now
    survivor = None
    if pidfile.exists() and pidfile.read_text().strip():
        pid = int(pidfile.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            survivor = pid
    return hung, err.decode(), survivor


def test_sigterm_right_after_fork_still_kills_everything(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = start(tmp_path, "term-at-fork", f"sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}; wait")
    hung, err, survivor = finish(proc, pidfile)
    assert not hung, "the command's processes survived the reaper (they hold its pipes)"
    assert "Traceback" not in err, err
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    assert survivor is None


def test_a_descendant_the_scan_misses_does_not_hang_the_reaper(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = start(tmp_path, "blind", f"sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}")
    hung, err, _ = finish(proc, pidfile)
    assert not hung, "the reaper waited forever for a child it never killed"
    assert proc.returncode == 0, err

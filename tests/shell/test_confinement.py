"""What a command can reach, with and without bubblewrap (the outside review's findings).

Each test runs the real runner (:func:`run_command`, :func:`run_in_session` or
:class:`ShellService`) over a probe script and checks what the probe could see or do.
The unsandboxed tests pass ``sandbox=False`` (or the user setting ``sandbox = "off"``),
so they run on every machine, with or without bubblewrap installed.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import make_git_project

from briotui.kernel.errors import CommandTimeout
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.shell.runner import ShellSettings, run_command
from briotui.kernel.shell.session import ShellService
from briotui.kernel.vfs import SessionManager

from .conftest import needs_bwrap

REPO = Path(__file__).resolve().parents[2]

LOOK = """\
import os, sys
found = {}
def read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).decode("utf-8", "replace")
    except OSError as exc:
        return type(exc).__name__
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__
found["passwd"] = read("/etc/passwd")
found["shadow"] = read("/etc/shadow")
found["root"] = listing("/")
found["etc"] = listing("/etc")
found["home"] = listing("/home")
found["roothome"] = listing("/root")
found["bashrc"] = read(os.path.expanduser("~root/.bashrc"))
found["secret"] = read(sys.argv[1])
found["readme"] = read(sys.argv[2])
found["cwd"] = os.getcwd()
print(repr(found))
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, SessionManager]]:
    root = make_git_project(tmp_path / "proj")
    manager = SessionManager.open(root)
    yield root, manager
    manager.close()


def _service(root: Path, **settings: str) -> ShellService:
    return ShellService(ProjectPaths.at(root), settings=ShellSettings(**settings))  # type: ignore[arg-type]


@needs_bwrap
def test_bwrap_binds_only_what_the_command_needs(
    project: tuple[Path, SessionManager], tmp_path: Path
) -> None:
    root, manager = project
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    session = manager.create(label="look")
    session.write("look.py", LOOK.encode(), False)
    run = _service(root).run(
        session,
        ["python", "look.py", str(secret), str(root / "README.md")],
        cwd="",
        timeout_s=60,
    )
    assert run.output.sandboxed
    assert run.output.exit_code == 0, run.output.stderr
    found = ast.literal_eval(run.output.stdout)
    real_passwd = Path("/etc/passwd").read_text()
    assert found["passwd"] != real_passwd
    assert "daemon:" not in found["passwd"]
    assert found["shadow"] in ("FileNotFoundError", "PermissionError")
    assert "home" not in found["root"]
    assert "passwd-" not in found["etc"]
    assert "shadow" not in found["etc"]
    assert found["home"] == "FileNotFoundError"
    # /root holds at most the path to the interpreter (pyenv lives there on some machines).
    assert found["roothome"] in ("FileNotFoundError", [], [".pyenv"]), found["roothome"]
    assert found["bashrc"] in ("FileNotFoundError", "PermissionError")
    assert found["secret"] == "FileNotFoundError"
    assert found["readme"] == "FileNotFoundError"
    assert found["cwd"].startswith(str(root / ".brio" / "sessions" / "work"))


# --- without an OS sandbox ---------------------------------------------------------

ENVIRON = """\
import os
seen = []
pid = os.getpid()
while pid > 1:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            if b"sk-ant-briotui-test" in fh.read():
                seen.append(pid)
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            pid = int(fh.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        break
print("seen" if seen else "clean")
"""

KERNEL = """\
import sys
from pathlib import Path
from briotui.kernel.shell.runner import run_command
out = run_command(["python", "environ.py"], cwd=Path(sys.argv[1]), timeout_s=60,
                  max_output_bytes=10_000, sandbox=False)
print(out.stdout.strip())
"""


def test_unsandboxed_command_cannot_read_the_kernels_environment(tmp_path: Path) -> None:
    (tmp_path / "environ.py").write_text(ENVIRON)
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-briotui-test"}
    env["PYTHONPATH"] = str(REPO / "src")
    kernel = subprocess.run(
        [sys.executable, "-c", KERNEL, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert kernel.returncode == 0, kernel.stderr
    assert kernel.stdout.strip() == "clean"


SPAWN = """\
import os, subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-c",
     "import time, sys; time.sleep(float(sys.argv[2])); open(sys.argv[1], 'w').write('alive')",
     sys.argv[1], "60"],
    start_new_session=True,
)
open("grandchild.pid", "w").write(str(child.pid))
print("spawned", flush=True)
time.sleep(120)
"""


def _running_with(token: str) -> list[int]:
    """Live processes whose command line mentions ``token`` (any pid namespace)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{name}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(name))
    return found


@pytest.mark.parametrize(
    "sandbox", [False, pytest.param(True, marks=needs_bwrap)], ids=["no-bwrap", "bwrap"]
)
def test_timeout_kills_a_setsid_grandchild(tmp_path: Path, sandbox: bool) -> None:
    (tmp_path / "spawn.py").write_text(SPAWN)
    marker = tmp_path / f"marker-{os.getpid()}-{sandbox}"
    with pytest.raises(CommandTimeout) as info:
        run_command(
            ["python", "spawn.py", str(marker)],
            cwd=tmp_path,
            timeout_s=3,
            max_output_bytes=1000,
            sandbox=sandbox,
        )
    assert info.value.stdout == "spawned\n"
    assert (tmp_path / "grandchild.pid").is_file()
    left = _running_with(str(marker))
    for _ in range(100):  # a pid namespace's processes die just after its init (bwrap)
        if not left:
            break
        time.sleep(0.05)
        left = _running_with(str(marker))
    for pid in left:
        os.kill(pid, 9)
    assert not left, "the setsid grandchild outlived the timeout"


NET = """\
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def test_unsandboxed_command_cannot_connect_even_locally(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    (tmp_path / "net.py").write_text(NET)
    try:
        out = run_command(
            ["python", "net.py", str(port)],
            cwd=tmp_path,
            timeout_s=30,
            max_output_bytes=1000,
            sandbox=False,
        )
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()[0].close()  # a completed connection would be queued here
    finally:
        server.close()
    assert out.stdout.strip() in ("ConnectionRefusedError", "OSError", "PermissionError")


WRITE = """\
import os, sys
done = {}
for path in sys.argv[1:]:
    try:
        with open(path, "a") as fh:
            fh.write("pwned\\n")
        done[path] = "written"
    except OSError as exc:
        done[path] = type(exc).__name__
done["cwd"] = os.getcwd()
print(repr(done))
"""


def test_unsandboxed_command_cannot_write_the_real_repository(
    project: tuple[Path, SessionManager], tmp_path: Path
) -> None:
    root, manager = project
    hook = root / ".git" / "hooks" / "pre-commit"
    readme_before = (root / "README.md").read_bytes()
    session = manager.create(label="write")
    session.write("write.py", WRITE.encode(), False)
    service = _service(root, sandbox="off", unsandboxed="allow")
    targets = [
        str(root / "README.md"),
        str(hook),
        os.path.relpath(root / "README.md", service.workdir(session)),
    ]
    run = service.run(session, ["python", "write.py", *targets], cwd="", timeout_s=60)
    assert not run.output.sandboxed
    assert run.output.exit_code == 0, run.output.stderr
    done = ast.literal_eval(run.output.stdout)
    assert done["cwd"].startswith(str(root / ".brio" / "sessions" / "work"))
    assert (root / "README.md").read_bytes() == readme_before
    assert not hook.exists()
    assert all(done[t] != "written" for t in targets), done
    assert run.changed == []

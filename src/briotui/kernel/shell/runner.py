"""The shell runner: run one argv with a scrubbed environment, a bound, and a sandbox.

:func:`run_command` resolves the program on the kernel's own PATH (never the agent's),
runs it with a scrubbed environment, no stdin, a new session and a time limit that kills
every descendant, and reads its output with a bound. Where ``bwrap`` (bubblewrap) works
the process runs in a sandbox that shows only the toolchain (read-only) and the working
directory (writable), with no network and a private ``/tmp``; without it, under
:mod:`briotui.kernel.reaper`. :func:`sandbox_status` says which, for ``doctor`` and the
status bar; :class:`ShellSettings` is the user's ``[shell]`` sandbox choice. The runner
does not consult the policy (:mod:`briotui.kernel.shell.policy`): callers check first.

One piece: running a command and sandboxing it are one job (the bwrap arguments, the
environment and the process-group kill are all parts of one :func:`run_command`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from briotui.kernel.errors import (
    CommandFailed,
    CommandNotFound,
    CommandRefused,
    CommandStopped,
    CommandTimeout,
    ConfigError,
)


@dataclass(frozen=True)
class CommandOutput:
    """What a command did.

    Attributes:
        exit_code: Its exit status; negative for a signal.
        stdout: Standard output, decoded as UTF-8 (bad bytes replaced), bounded.
        stderr: Standard error, likewise.
        truncated: Whether either stream was cut at the limit.
        duration_ms: Wall-clock time it ran.
        sandboxed: Whether it ran inside bubblewrap.
    """

    exit_code: int
    stdout: str
    stderr: str
    truncated: bool
    duration_ms: int
    sandboxed: bool = False


_DROP_ENV: Final = re.compile(
    r"^(LD_.*|DYLD_.*|BASH_ENV|ENV|BASH_FUNC_.*|SHELLOPTS|PS4|PROMPT_COMMAND|IFS|CDPATH|"
    r"PYTHON.*|PERL5?LIB|PERL5OPT|RUBYOPT|RUBYLIB|NODE_OPTIONS|NODE_PATH|GIT_.*|"
    r"SSH_.*|GPG_.*|.*_API_KEY|.*_KEY|.*_TOKEN|.*_SECRET|.*SECRET.*|.*PASSWORD.*|.*PASSWD.*|"
    r".*CREDENTIAL.*|AWS_.*|AZURE_.*|GOOGLE_.*|GCP_.*|ANTHROPIC_.*|OPENAI_.*|HF_.*|"
    r"HTTPS?_PROXY|ALL_PROXY|NO_PROXY|http_proxy|https_proxy|all_proxy|no_proxy)$",
    re.IGNORECASE,
)
_PASS_ENV: Final[tuple[str, ...]] = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")

_GIT_CONFIG: Final[tuple[tuple[str, str], ...]] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("core.askPass", "false"),
    ("core.sshCommand", "false"),
    ("sequence.editor", "false"),
    ("diff.external", ""),
    ("credential.helper", ""),
    ("protocol.allow", "never"),
    ("safe.directory", "*"),
)
"""Git settings forced through ``GIT_CONFIG_COUNT``: no hooks, fsmonitor, pager,
editor, external diff, credentials or transports."""


def default_safe_path() -> str:
    """The kernel's PATH for commands: its own interpreter's directory, then the system's.

    The interpreter's directory is the virtualenv's ``bin``, where ``pytest`` and
    ``ruff`` live. Nothing comes from the agent or the caller's ``$PATH``.
    """
    return os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])


@dataclass(frozen=True)
class ProjectEnv:
    """The Python environment a project's commands (its tests) run with.

    Attributes:
        venv: The project's virtualenv, or None (briotui's own interpreter is used).
        source: How it was found: ``.venv``, ``venv``, ``VIRTUAL_ENV`` or ``none``.
        path: The PATH commands get: the virtualenv's ``bin`` first, then
            :func:`default_safe_path`.
        ignored: Why the project's own virtualenv is not used ("" when none was found
            or it is used): an untrusted repository's ``.venv`` is never used.
    """

    venv: Path | None
    source: str
    path: str
    ignored: str = ""

    def line(self) -> str:
        """One line saying which environment commands use (``briotui doctor``)."""
        if self.venv is None:
            used = f"briotui's own Python ({sys.executable})"
            if self.ignored:
                return f"{used}: {self.ignored}"
            return (
                f"no project virtualenv (.venv, venv or an active VIRTUAL_ENV): commands use {used}"
            )
        return (
            f"the project's virtualenv {self.venv} (found as {self.source}), its bin first on PATH"
        )


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() and (path / "bin").is_dir()


def project_env(
    root: Path,
    environ: Mapping[str, str] | None = None,
    *,
    trusted_venv: Path | None = None,
) -> ProjectEnv:
    """Find the project's own virtualenv, so its tests run with its packages.

    ``root/.venv``, then ``root/venv`` (only the one the user trusted, see
    :meth:`briotui.kernel.settings.Settings.trusted_venv`: a repository's own
    ``.venv`` would put its programs first on PATH and name a Python whose directory
    is shown to commands), then the virtualenv active when briotui started
    (``$VIRTUAL_ENV``, the user's own), unless that is briotui's own environment.

    Args:
        root: The project root.
        environ: The environment briotui started with (``os.environ`` if None).
        trusted_venv: The real path of the project virtualenv the user trusted, or None.
    """
    from briotui.kernel.trust import find_project_venv

    env = os.environ if environ is None else environ
    found: tuple[Path, str] | None = None
    ignored = ""
    own = find_project_venv(root)
    if own is not None:
        real = Path(os.path.realpath(own))
        if trusted_venv is not None and real == Path(os.path.realpath(trusted_venv)):
            found = (real, own.name)
        else:
            ignored = (
                f"the project's {own.name} is not used because the project is not trusted "
                "with it (`briotui trust` shows it and trusts the project)"
            )
    active = env.get("VIRTUAL_ENV", "")
    if found is None and active and os.path.isabs(active) and _is_venv(Path(active)):
        real = Path(os.path.realpath(active))
        if real != Path(os.path.realpath(sys.prefix)):
            found = (real, "VIRTUAL_ENV")
    if found is None:
        return ProjectEnv(None, "none", default_safe_path(), ignored)
    venv, source = found
    return ProjectEnv(
        venv, source, os.pathsep.join([str(venv / "bin"), default_safe_path()]), ignored
    )


def scrubbed_env(
    cwd: Path, *, home: str, path: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a command gets: built from nothing, never copied wholesale.

    Args:
        cwd: Its working directory (git may not look above it).
        home: ``$HOME`` (a private, empty directory).
        path: ``$PATH``.
        extra: Further variables from the kernel; any whose name looks like a loader,
            interpreter, git or secret variable is dropped.

    Returns:
        ``LANG``/``LC_*``/``TZ`` from the kernel's environment if set, plus fixed
        settings: no pagers or prompts, git without system/global config, hooks or
        fsmonitor, Python without user site or bytecode files.
    """
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    for key, value in (extra or {}).items():
        if not _DROP_ENV.match(key):
            env[key] = value
    env.update(
        PATH=path,
        HOME=home,
        TMPDIR="/tmp",
        TERM="dumb",
        NO_COLOR="1",
        PAGER="cat",
        GIT_PAGER="cat",
        GIT_EDITOR="false",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CEILING_DIRECTORIES=str(Path(cwd).parent),
        GIT_OPTIONAL_LOCKS="0",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        PYTHONUNBUFFERED="1",
    )
    env["GIT_CONFIG_COUNT"] = str(len(_GIT_CONFIG))
    for i, (key, value) in enumerate(_GIT_CONFIG):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


SandboxMode = Literal["auto", "off"]
"""``auto``: use bubblewrap where it works; ``off``: never (commands run unsandboxed)."""
UnsandboxedMode = Literal["ask", "allow", "deny"]
"""What an agent's command gets when no OS sandbox is available: the user is asked
(through the capability prompt), it runs, or it is refused."""


@dataclass(frozen=True)
class ShellSettings:
    """The user's own ``[shell]`` settings (never a project's: a project cannot opt in).

    Attributes:
        sandbox: Whether to use bubblewrap (``auto``) or never (``off``).
        unsandboxed: What agents' commands get without an OS sandbox.
    """

    sandbox: SandboxMode = "auto"
    unsandboxed: UnsandboxedMode = "ask"

    @classmethod
    def from_user_config(cls, data: Mapping[str, object], source: str) -> ShellSettings:
        """The settings from a parsed user config document (its ``[shell]`` table).

        Raises:
            ConfigError: Unknown keys or values, naming the file.
        """
        section = data.get("shell")
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise ConfigError(f"[shell] in {source} must be a table.")
        unknown = set(section) - {"sandbox", "unsandboxed", "allow", "defaults"}
        if unknown:
            raise ConfigError(
                f"[shell] in {source} has unknown keys {sorted(unknown)}; the user config "
                'takes \'sandbox\' ("auto" or "off"), \'unsandboxed\' ("ask", "allow" or '
                "\"deny\"), 'allow' (argv patterns) and 'defaults' (true/false)."
            )
        sandbox = section.get("sandbox", "auto")
        if sandbox not in ("auto", "off"):
            raise ConfigError(f'[shell] sandbox in {source} must be "auto" or "off".')
        unsandboxed = section.get("unsandboxed", "ask")
        if unsandboxed not in ("ask", "allow", "deny"):
            raise ConfigError(f'[shell] unsandboxed in {source} must be "ask", "allow" or "deny".')
        return cls(sandbox=sandbox, unsandboxed=unsandboxed)


INSTALL_HINT: Final = (
    "Install bubblewrap (e.g. `apt-get install bubblewrap`) so commands run sandboxed, or "
    'opt in to unsandboxed commands with `unsandboxed = "allow"` (or "ask") under [shell] '
    "in your user config (briotui doctor shows where it is)."
)


@functools.cache
def _probe_bwrap() -> tuple[bool, str]:
    exe = _bwrap_exe()
    if exe is None:
        return (
            False,
            "bubblewrap (bwrap) is not installed: agents' commands run with a scrubbed "
            "environment, a time limit and best-effort confinement only "
            f"({', '.join(fallback_confinement()) or 'none on this kernel'}).",
        )
    try:
        probe = subprocess.run(
            [exe, *_bwrap_args(Path("/"), readonly=_toolchain([])), "--", "/bin/true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap at {exe} could not start ({exc}); commands run unsandboxed."
    if probe.returncode != 0:
        why = probe.stderr.decode("utf-8", "replace").strip()[:200]
        return (
            False,
            f"bwrap at {exe} does not work here ({why or probe.returncode}); user "
            "namespaces may be disabled. Commands run unsandboxed.",
        )
    return (
        True,
        f"bwrap at {exe}: commands run with no network, only the toolchain visible "
        "(read-only), only their working directory writable and a private /tmp.",
    )


def _bwrap_exe() -> str | None:
    return shutil.which("bwrap", path=os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"]))


@functools.cache
def fallback_confinement() -> tuple[str, ...]:
    """What confines an unsandboxed command on this machine (without bubblewrap).

    Returns:
        Names of the mechanisms: ``own-session-reaper`` (every descendant is killed at
        the end), ``no-caps`` (no capabilities, ``no_new_privs``), ``landlock-N`` (file
        access limited to the toolchain and the working directory; with N >= 4 no TCP),
        ``netns`` when running as root (no network at all).
    """
    from briotui.kernel import reaper

    found = ["own-session-reaper", "no-caps"]
    abi = reaper.landlock_abi()
    if abi:
        found.append(f"landlock-{abi}")
    if os.geteuid() == 0:
        found.append("netns")
    return tuple(found)


@dataclass(frozen=True)
class SandboxStatus:
    """How agents' commands run here, as the kernel publishes it at ``/sandbox``.

    Attributes:
        sandboxed: Whether commands run in bubblewrap.
        detail: One line saying what applies, or why there is no sandbox.
        unsandboxed: The user's setting for commands without a sandbox.
        confinement: What still confines an unsandboxed command here.
    """

    sandboxed: bool
    detail: str
    unsandboxed: UnsandboxedMode
    confinement: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The JSON form (state tree, ``briotui run --json``)."""
        return {
            "sandboxed": self.sandboxed,
            "kind": "bubblewrap" if self.sandboxed else "none",
            "detail": self.detail,
            "unsandboxed": self.unsandboxed,
            "confinement": list(self.confinement),
        }

    def line(self) -> str:
        """One line for the terminal."""
        if self.sandboxed:
            return "Shell sandbox: bubblewrap (no network, toolchain read-only)."
        rule = {
            "ask": "each agent command is asked about first",
            "allow": "agent commands run without asking (your setting)",
            "deny": "agent commands are refused (your setting)",
        }[self.unsandboxed]
        return f"Shell: UNSANDBOXED (no bubblewrap): {rule}."


def sandbox_status(settings: ShellSettings) -> SandboxStatus:
    """How commands run here under ``settings``."""
    if settings.sandbox == "off":
        ok, detail = False, 'the sandbox is turned off ([shell] sandbox = "off").'
    else:
        ok, detail = _probe_bwrap()
    return SandboxStatus(
        sandboxed=ok,
        detail=detail,
        unsandboxed=settings.unsandboxed,
        confinement=() if ok else fallback_confinement(),
    )


_ETC_KEEP: Final[tuple[str, ...]] = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/etc/localtime", "/etc/ssl", "/etc/ca-certificates", "/etc/python3", "/etc/mime.types",
)  # fmt: skip
"""The few files of /etc that dynamic linking, Python and TLS read."""
_SYSTEM_DIRS: Final[tuple[str, ...]] = (
    "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
)  # fmt: skip
_DEVICES: Final[tuple[str, ...]] = (
    "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
)  # fmt: skip


def _etc_keep() -> list[str]:
    keep = [p for p in _ETC_KEEP if os.path.exists(p)]
    with contextlib.suppress(OSError):
        keep += sorted(f"/etc/{n}" for n in os.listdir("/etc") if re.fullmatch(r"python3\.\d+", n))
    return keep


def _prefix_of(exe: str) -> str:
    """The installation prefix of a program: ``/x/bin/python3`` -> ``/x``."""
    parent = os.path.dirname(exe)
    return os.path.dirname(parent) if os.path.basename(parent) == "bin" else parent


def _dirs_of(exe: str) -> list[str]:
    """A program's prefix, or only its own directory when the prefix may not be shown."""
    prefix = _prefix_of(exe)
    return [prefix] if _safe_to_show(os.path.realpath(prefix)) else [os.path.dirname(exe)]


def _interpreter(exe: str) -> str | None:
    """The interpreter named by a script's ``#!`` line, if any."""
    try:
        with open(exe, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return os.fsdecode(words[0]) if words else None


def _toolchain(programs: Sequence[str], extra: Sequence[Path] = ()) -> list[str]:
    """The directories a command's program and Python need, to show read-only.

    The interpreter in use and its prefixes (virtualenv and base), each program's
    installation prefix and that of its ``#!`` interpreter (symlinks resolved), and
    ``extra`` (e.g. the project's ``.venv`` and its base interpreter). /usr and the
    top-level system directories are added by the caller.
    """
    found: list[str] = []
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    for program in [sys.executable, *programs]:
        for path in (program, os.path.realpath(program)):
            candidates += _dirs_of(path)
            interpreter = _interpreter(path)
            if interpreter:
                candidates += _dirs_of(interpreter) + _dirs_of(os.path.realpath(interpreter))
    for venv in extra:
        candidates.append(str(venv))
        candidates += _base_python(venv)
    for entry in candidates:
        real = os.path.realpath(entry)
        if not _safe_to_show(real) or not os.path.isdir(real):
            continue
        if real == "/usr" or real.startswith("/usr/"):
            continue
        if real not in found:
            found.append(real)
    found.sort()
    return [p for i, p in enumerate(found) if not any(p.startswith(q + "/") for q in found[:i])]


def _base_python(venv: Path) -> list[str]:
    """The installation prefix of the Python a virtualenv's ``pyvenv.cfg`` names.

    ``home =`` is text in a file (a repository can ship it), so its prefix is shown only
    when it is a real Python installation (it has ``lib/python3.*/os.py``) and not a
    dot-directory of a home (``~/.ssh``, ``~/.aws``); otherwise nothing.
    """
    from briotui.kernel.trust import venv_home

    home = venv_home(venv)
    if not home or not os.path.isabs(home):
        return []
    found = []
    for bindir in (home, os.path.realpath(home)):
        real = os.path.realpath(_prefix_of(bindir + "/python"))
        if _is_python_prefix(real) and not _is_home_dot_dir(real) and real not in found:
            found.append(real)
    return found


def _is_python_prefix(real: str) -> bool:
    """Whether ``real`` is a Python installation's prefix (``lib/python3.*/os.py``)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(os.path.join(real, "lib")):
            if re.fullmatch(r"python3\.\d+", name) and os.path.isfile(
                os.path.join(real, "lib", name, "os.py")
            ):
                return True
    return False


def _is_home_dot_dir(real: str) -> bool:
    """Whether ``real`` is a dot-directory of a home (``~/.ssh``, ``/home/x/.aws``)."""
    parent = os.path.dirname(real)
    home = os.path.realpath(os.path.expanduser("~"))
    is_home = parent in (home, "/root") or os.path.dirname(parent) == "/home"
    return is_home and os.path.basename(real).startswith(".")


def _safe_to_show(real: str) -> bool:
    """Whether a toolchain directory may be shown whole (never /, /etc, /tmp or a home)."""
    home = os.path.realpath(os.path.expanduser("~"))
    if real in ("", "/", "/etc", "/home", "/root", "/tmp", "/var", "/proc", "/dev", home):
        return False
    return os.path.dirname(real) != "/home"


def _bwrap_args(cwd: Path, *, readonly: Sequence[str], passwd_dir: Path | None = None) -> list[str]:
    """Arguments for bubblewrap: only what the command needs is visible.

    No network or other namespaces shared, no capabilities, a new session, /usr and
    the system directories and ``readonly`` read-only, the linker's and Python's few
    files of /etc, a synthetic /etc/passwd and /etc/group (from ``passwd_dir``), a
    minimal /dev, a private /proc and /tmp, and ``cwd`` read-write.

    Args:
        cwd: The working directory, the only writable place.
        readonly: Toolchain directories to show read-only (see :func:`_toolchain`).
        passwd_dir: A directory holding ``passwd`` and ``group`` to show in /etc.
    """
    args = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for top in _SYSTEM_DIRS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for keep in _etc_keep():
        args += ["--ro-bind", keep, keep]
    if passwd_dir is not None:
        args += ["--ro-bind", str(passwd_dir / "passwd"), "/etc/passwd"]
        args += ["--ro-bind", str(passwd_dir / "group"), "/etc/group"]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for directory in readonly:
        args += ["--ro-bind", directory, directory]
    if str(cwd) != "/":
        args += ["--bind", str(cwd), str(cwd)]
    return [*args, "--chdir", str(cwd)]


def _synthetic_users(directory: Path) -> None:
    """A one-user ``passwd`` and ``group`` for the sandbox (names only, no real users)."""
    uid, gid = os.getuid(), os.getgid()
    (directory / "passwd").write_text(f"briotui:x:{uid}:{gid}:briotui:/tmp:/usr/sbin/nologin\n")
    (directory / "group").write_text(f"briotui:x:{gid}:\n")


_DUMPABLE_OFF = False


def protect_kernel_process() -> None:
    """Make this process's /proc files (environ, mem, ...) unreadable to its commands.

    ``PR_SET_DUMPABLE`` 0: another process of the same user then needs
    ``CAP_SYS_PTRACE`` to read them, which commands never have. Idempotent.
    """
    global _DUMPABLE_OFF
    if _DUMPABLE_OFF or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) == 0:  # PR_SET_DUMPABLE
        _DUMPABLE_OFF = True


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    max_output_bytes: int,
    sandbox: bool | None = None,
    path: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    readonly: Sequence[Path] = (),
    should_stop: Callable[[], bool] | None = None,
    executable: str | None = None,
) -> CommandOutput:
    """Run ``argv`` (never through a shell) and collect its output.

    The caller checks :meth:`CommandPolicy.check` (or a user's grant) first, and, for
    an unsandboxed run, the user's ``[shell] unsandboxed`` setting; this function only
    runs.

    With bubblewrap, the command sees only /usr, the system directories, the toolchain
    (the interpreter's prefixes, the program's, ``readonly``), a few linker files of
    /etc, a synthetic /etc/passwd, a private /tmp, /proc and /dev, and ``cwd``
    (writable); no network, no capabilities. Without it (``sandbox=False`` or none
    here), the command runs under :mod:`briotui.kernel.reaper`: its own session, every
    descendant killed when it ends, no capabilities, and where the kernel allows a new
    network namespace and Landlock (reads only the same toolchain, writes only ``cwd``
    and a private home); this process is made non-dumpable so its environment cannot
    be read through /proc.

    Args:
        argv: Program name and arguments. The program is looked up on ``path``.
        cwd: The working directory; the only writable place.
        timeout_s: Wall-clock limit; past it the command and all its descendants are
            killed.
        max_output_bytes: Most bytes kept from each of stdout and stderr; the rest is
            read and dropped, so the process never blocks on a full pipe.
        sandbox: True to require bubblewrap, False to never use it, None to use it
            when it works here.
        path: The PATH to resolve and run with; :func:`default_safe_path` if None.
        extra_env: More variables for the command (scrubbed, see :func:`scrubbed_env`).
        readonly: More directories the command may read (e.g. the project's
            ``.venv``); the interpreter of a virtualenv among them is added too.
        should_stop: Polled about every 100 ms; once it says True the command and
            all its descendants are killed as at a timeout (a cancelled agent's command
            does not run on).
        executable: The program's absolute path, when the user wrote it as a path in
            their own ``[tests] command`` (the caller resolved and checked it); then
            ``argv[0]`` may be a path and is not looked up.

    Returns:
        Exit code, bounded stdout and stderr, whether they were cut, and duration.
        When the program exits, anything it left running is killed.

    Raises:
        CommandRefused: ``argv`` is empty, not text, or has a NUL byte.
        CommandNotFound: The program is not on the kernel's PATH.
        CommandFailed: It could not start, or ``sandbox=True`` without bubblewrap.
        CommandTimeout: It ran past ``timeout_s`` (carries the output so far).
        CommandStopped: ``should_stop`` said so first (a CommandTimeout too).
    """
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) for a in argv):
        raise CommandRefused("Give the command as a list: program, then arguments.", argv=[])
    if any("\x00" in a for a in argv):
        raise CommandRefused("An argument contains a NUL byte.", argv=list(argv))
    program = argv[0]
    search = path if path is not None else default_safe_path()
    if executable is not None:
        if not os.path.isabs(executable) or not os.access(executable, os.X_OK):
            raise CommandNotFound(f"{executable!r} is not an executable program.")
        exe: str | None = executable
    elif "/" in program or "\\" in program:
        raise CommandRefused(f"{program!r} is a path; give the program's name.", argv=list(argv))
    else:
        exe = shutil.which(program, path=search)
    if exe is None:
        raise CommandNotFound(
            f"{program!r} is not installed on the kernel's PATH ({search}). Install it in "
            "the project's environment, or use another program."
        )
    cwd = Path(os.path.realpath(cwd))
    if not cwd.is_dir():
        raise CommandFailed(f"The working directory {cwd} does not exist.")
    use_sandbox, detail = _probe_bwrap() if sandbox is not False else (False, "")
    if sandbox and not use_sandbox:
        raise CommandFailed(f"A sandbox was required but is unavailable: {detail}")
    private = Path(tempfile.mkdtemp(prefix="briotui-run-"))
    try:
        toolchain = _toolchain([exe], [Path(os.path.realpath(p)) for p in readonly])
        if use_sandbox:  # HOME is the sandbox's private /tmp
            _synthetic_users(private)
            env = scrubbed_env(cwd, home="/tmp", path=search, extra=extra_env)
            bwrap = _bwrap_exe()
            assert bwrap is not None
            full = [
                bwrap,
                *_bwrap_args(cwd, readonly=toolchain, passwd_dir=private),
                "--",
                exe,
                *argv[1:],
            ]
        else:
            protect_kernel_process()
            home = private / "home"
            home.mkdir()
            env = scrubbed_env(cwd, home=str(home), path=search, extra=extra_env)
            env["TMPDIR"] = str(home)
            config = {
                "read": ["/usr", *_SYSTEM_DIRS, *_etc_keep(), *toolchain],
                "write": [str(cwd), str(home)],
                "devices": list(_DEVICES),
                "landlock": True,
                "netns": True,
            }
            from briotui.kernel import reaper

            full = [
                sys.executable,
                "-I",
                "-S",
                "-B",
                str(Path(reaper.__file__).resolve()),
                json.dumps(config),
                "--",
                exe,
                *argv[1:],
            ]
        return _run(full, cwd, env, timeout_s, max_output_bytes, use_sandbox, should_stop)
    finally:
        shutil.rmtree(private, ignore_errors=True)


class _Capture:
    """One bounded output stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.kept
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.chunks.append(data)
            self.kept += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def _run(
    full: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    max_output_bytes: int,
    sandboxed: bool,
    should_stop: Callable[[], bool] | None = None,
) -> CommandOutput:
    start = time.monotonic()
    deadline = start + timeout_s
    try:
        proc = subprocess.Popen(
            full,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            shell=False,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise CommandFailed(f"{full[0]!r} could not be started: {exc.strerror or exc}.") from exc
    assert proc.stdout is not None
    assert proc.stderr is not None
    captures = {
        proc.stdout.fileno(): _Capture(max_output_bytes),
        proc.stderr.fileno(): _Capture(max_output_bytes),
    }
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    timed_out = stopped = False
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ)
        sel.register(err_fd, selectors.EVENT_READ)
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if should_stop is not None and should_stop():
                timed_out = stopped = True
                break
            if proc.poll() is not None:
                # The program is done; whatever it left behind in its group goes too,
                # so a background child holding the pipes cannot keep us waiting.
                _kill_group(proc.pid)
            for key, _ in sel.select(timeout=min(0.1, deadline - now)):
                fd = int(key.fd)
                data = os.read(fd, 65536)
                if data:
                    captures[fd].add(data)
                else:
                    sel.unregister(fd)
    if timed_out:
        if sandboxed:
            _kill_group(proc.pid)  # bwrap's namespace dies with it
        else:
            # The reaper kills every descendant (setsid ones too), then exits.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _kill_group(proc.pid)
    proc.stdout.close()
    proc.stderr.close()
    duration_ms = int((time.monotonic() - start) * 1000)
    out, err = captures[out_fd], captures[err_fd]
    if stopped:
        raise CommandStopped(
            "The command was stopped with its agent's run (cancelled or out of time) and "
            "killed with all its child processes; none of its file changes were kept.",
            stdout=out.text(),
            stderr=err.text(),
        )
    if timed_out:
        raise CommandTimeout(
            f"The command ran past its {timeout_s:g} s limit and was killed with all its "
            "child processes. Run fewer tests at once, or ask for a longer limit.",
            stdout=out.text(),
            stderr=err.text(),
        )
    return CommandOutput(
        exit_code=int(proc.returncode),
        stdout=out.text(),
        stderr=err.text(),
        truncated=out.truncated or err.truncated,
        duration_ms=duration_ms,
        sandboxed=sandboxed,
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True)
class Confined:
    """A long-running program prepared to start inside the shell commands' sandbox.

    Attributes:
        argv: What to start (bubblewrap or the reaper, then the program).
        env: Its scrubbed environment.
        private: A private directory to delete once the program has exited.
        sandboxed: Whether bubblewrap confines it (otherwise the reaper's best effort).
    """

    argv: list[str]
    env: dict[str, str]
    private: Path
    sandboxed: bool


def confine(
    exe: str,
    args: Sequence[str],
    *,
    cwd: Path,
    network: bool = False,
    extra_env: Mapping[str, str] | None = None,
    readonly: Sequence[Path] = (),
    sandbox: bool | None = None,
) -> Confined:
    """Prepare ``exe`` to run as the shell commands do, for a program that keeps running
    (an MCP server): the same bubblewrap container or reaper, a scrubbed environment,
    but ``cwd`` read-only (a private home and /tmp are writable) and the network only
    when ``network`` is True.

    Args:
        exe: The program's absolute path (the caller resolved it).
        args: Its arguments.
        cwd: Its working directory, shown read-only.
        network: Whether it may use the network.
        extra_env: Variables to pass (scrubbed, see :func:`scrubbed_env`).
        readonly: More directories it may read.
        sandbox: True to require bubblewrap, False to never use it, None when it works.

    Raises:
        CommandFailed: ``sandbox=True`` without bubblewrap.
    """
    use_sandbox, detail = _probe_bwrap() if sandbox is not False else (False, "")
    if sandbox and not use_sandbox:
        raise CommandFailed(f"A sandbox was required but is unavailable: {detail}")
    private = Path(tempfile.mkdtemp(prefix="briotui-mcp-"))
    home = private / "home"
    home.mkdir()
    cwd = Path(os.path.realpath(cwd))
    toolchain = _toolchain([exe], [Path(os.path.realpath(p)) for p in (*readonly, cwd)])
    neutral = {"USER": "briotui", "LOGNAME": "briotui", "SHELL": "/bin/false"}
    if use_sandbox:
        _synthetic_users(private)
        env = scrubbed_env(cwd, home="/tmp", path=default_safe_path(), extra=extra_env)
        bwrap = _bwrap_exe()
        assert bwrap is not None
        box = _bwrap_args(home, readonly=toolchain, passwd_dir=private)[:-2]  # its --chdir
        if network:
            box.insert(1, "--share-net")
        argv = [bwrap, *box, "--chdir", str(cwd), "--", exe, *args]
    else:
        protect_kernel_process()
        env = scrubbed_env(cwd, home=str(home), path=default_safe_path(), extra=extra_env)
        env["TMPDIR"] = str(home)
        config = {
            "read": ["/usr", *_SYSTEM_DIRS, *_etc_keep(), *toolchain],
            "write": [str(home)],
            "devices": list(_DEVICES),
            # Landlock (ABI 4) also blocks TCP: a server allowed the network goes without
            "landlock": not network,
            "netns": not network,
        }
        from briotui.kernel import reaper

        argv = [
            sys.executable, "-I", "-S", "-B", str(Path(reaper.__file__).resolve()),
            json.dumps(config), "--", exe, *args,
        ]  # fmt: skip
    return Confined(argv, {**env, **neutral}, private, use_sandbox)

"""The shell tool: run allowlisted programs for agents, as an argv, never through a shell.

Three layers, used in this order by the host function:

1. :class:`CommandPolicy` decides, purely, whether an argv is allowed
   (:meth:`CommandPolicy.check` returns a :class:`Decision` with the rule that matched
   or a specific reason, which the capability layer turns into a prompt).
2. :func:`run_command` runs an argv: the program is resolved on the kernel's own
   PATH (never the agent's), with a scrubbed environment, no stdin, a new session, a
   time limit that kills every descendant, and output read with a bound. Where
   ``bwrap`` (bubblewrap) works, the process runs in a sandbox that shows only the
   toolchain (read-only) and the working directory (writable), with no network and a
   private ``/tmp``. Without it the command runs under :mod:`briotui.kernel.reaper`
   (best-effort confinement, see there), and whether an agent's command may run at
   all is the user's ``[shell] unsandboxed`` setting (:class:`ShellSettings`), which
   :class:`~briotui.kernel.tools.ShellService` enforces. It does not consult the
   policy: callers check first.
3. :func:`run_in_session` materializes a session into a directory, runs there and
   copies back what the process changed (see its docstring for the cache rule).

Configuration (``[shell]`` in ``.brio/config.toml``), passed to
:meth:`CommandPolicy.from_config` as the parsed mapping::

    [shell]
    defaults = true                      # keep the built-in rules (default true)
    allow = [                            # more rules; "*" (last only) = any further args
        ["make", "test"],
        ["python", "-m", "mypy", "*"],
    ]

Whether commands are sandboxed, and what agents' commands get without a sandbox, is
the user's choice only, in the *user* config (``briotui doctor`` shows where); a
project's ``[shell]`` that sets either is an error::

    [shell]
    sandbox = "auto"        # "auto": bubblewrap where it works; "off": never
    unsandboxed = "ask"     # without a sandbox: "ask" each time, "allow", or "deny"

Every argument a ``*`` covers must pass the generic checks: no NUL; and anything
path-like (containing ``/`` or ``\\``, starting with ``.``, or the value of
``--opt=value``, ``-o=value``, ``key=value`` or ``-oVALUE``) must be a relative path
that stays in the working directory, by the one path validator
(:data:`~briotui.kernel.vfs.paths.DEFAULT_POLICY`).
Some things are refused even when configured: shells, ``env``, ``xargs``, privilege
and process wrappers, pagers and editors, ``python -c``, ``find -exec/-execdir/-ok/-delete``,
``git -c``/``--exec-path``/``--upload-pack``/``--ext-diff``/``--textconv``.
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
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from briotui.kernel.errors import (
    CommandFailed,
    CommandNotFound,
    CommandRefused,
    CommandStopped,
    CommandTimeout,
    ConfigError,
    PathRefused,
)
from briotui.kernel.vfs.paths import DEFAULT_POLICY, PathPolicy

if TYPE_CHECKING:
    from briotui.kernel.vfs.materialize import Materialized
    from briotui.kernel.vfs.session import Session

WILDCARD: Final = "*"
"""As the last element of a rule: any further arguments that pass the generic checks."""

DEFAULT_RULES: Final[tuple[tuple[str, ...], ...]] = (
    ("pytest", WILDCARD),
    ("python", "-m", "pytest", WILDCARD),
    ("python3", "-m", "pytest", WILDCARD),
    ("python", "-m", "unittest", WILDCARD),
    ("python3", "-m", "unittest", WILDCARD),
    ("ruff", "check", WILDCARD),
    ("ruff", "format", "--check", WILDCARD),
    ("git", "diff", WILDCARD),
    ("git", "status", WILDCARD),
    ("git", "log", WILDCARD),
    ("git", "show", WILDCARD),
)
"""The built-in allowlist: test runners, the linter, read-only git."""

_SHELLS: Final[frozenset[str]] = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "ash", "busybox",
     "rbash", "pwsh", "powershell", "cmd", "cmd.exe", "nu", "xonsh", "elvish"}
)  # fmt: skip
_REFUSED_PROGRAMS: Final[dict[str, str]] = {
    **{s: "is a shell; briotui never runs a shell. Give the program and its arguments "
       "directly" for s in _SHELLS},
    "env": "would set variables or run another program; the kernel sets the environment",
    "xargs": "runs other programs from its input",
    "sudo": "changes privileges", "su": "changes privileges", "doas": "changes privileges",
    "pkexec": "changes privileges",
    "nohup": "wraps another program", "setsid": "wraps another program",
    "nice": "wraps another program", "ionice": "wraps another program",
    "timeout": "wraps another program; the kernel applies the time limit",
    "stdbuf": "wraps another program", "chroot": "wraps another program",
    "unshare": "wraps another program", "nsenter": "wraps another program",
    "strace": "wraps another program", "ltrace": "wraps another program",
    "gdb": "runs arbitrary commands", "watch": "runs a shell command",
    "script": "runs a shell", "expect": "runs scripts", "time": "wraps another program",
    "command": "is a shell builtin", "exec": "is a shell builtin", "eval": "is a shell builtin",
    "less": "is a pager (pagers run commands)", "more": "is a pager (pagers run commands)",
    "most": "is a pager", "pg": "is a pager", "man": "runs a pager",
    "vi": "is an editor that runs commands", "vim": "is an editor that runs commands",
    "nvim": "is an editor that runs commands", "ed": "is an editor that runs commands",
    "emacs": "is an editor that runs commands", "nano": "is an interactive editor",
    "awk": "runs programs given as arguments (system())", "gawk": "runs programs (system())",
    "mawk": "runs programs (system())", "nawk": "runs programs (system())",
    "perl": "runs code given as arguments", "ruby": "runs code given as arguments",
    "node": "runs code given as arguments", "ssh": "opens remote shells",
}  # fmt: skip
"""Programs refused always, even when configured, with why."""

_PYTHONS: Final = re.compile(r"(python|pypy)(\d+(\.\d+)?)?")
_FIND_REFUSED: Final[frozenset[str]] = frozenset(
    {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"}
)
_GIT_GLOBAL_REFUSED: Final[tuple[str, ...]] = (
    "-c", "--config-env", "--exec-path", "--git-dir", "--work-tree", "-C", "--namespace",
    "-p", "--paginate", "--super-prefix", "--list-cmds",
)  # fmt: skip
"""git options refused before the subcommand."""
_GIT_ANYWHERE_REFUSED: Final[tuple[str, ...]] = (
    "--upload-pack", "--receive-pack", "--exec", "--ext-diff", "--textconv",
    "--open-files-in-pager",
)  # fmt: skip
"""git options refused anywhere: they run programs."""


@dataclass(frozen=True)
class Decision:
    """Whether an argv may run.

    Attributes:
        allowed: True when a rule matched and every argument passed.
        rule: The matching rule as text ("git diff *"), or "" when none matched.
        reason: Why it was allowed or refused, specific enough to show the user.
    """

    allowed: bool
    rule: str
    reason: str


@dataclass(frozen=True)
class Rule:
    """One allowlist entry: literal leading words, optionally ending in ``*``.

    Attributes:
        words: The literal words, e.g. ``("git", "diff")``.
        rest: Whether further arguments (``*``) are allowed.
    """

    words: tuple[str, ...]
    rest: bool

    @classmethod
    def parse(cls, pattern: Sequence[str]) -> Rule:
        """A rule from ``["git", "diff", "*"]``.

        Raises:
            ConfigError: Empty, not strings, ``*`` not last, or a refused program.
        """
        if (
            isinstance(pattern, (str, bytes))
            or not pattern
            or not all(isinstance(w, str) and w for w in pattern)
        ):
            raise ConfigError(
                f"[shell] allow entry {pattern!r} must be a list of non-empty strings, "
                'e.g. ["pytest", "*"].'
            )
        words = list(pattern)
        rest = words[-1] == WILDCARD
        if rest:
            words.pop()
        if not words or WILDCARD in words:
            raise ConfigError(
                f'[shell] allow entry {pattern!r}: "*" may only be the last element, after '
                "the program."
            )
        program = words[0]
        if "/" in program or "\\" in program:
            raise ConfigError(
                f"[shell] allow entry {pattern!r}: give the program's name, not a path; it "
                "is looked up on the kernel's PATH."
            )
        if program in _REFUSED_PROGRAMS:
            raise ConfigError(
                f"[shell] allow entry {pattern!r}: {program!r} {_REFUSED_PROGRAMS[program]}, "
                "so it cannot be allowed. Remove the entry."
            )
        return cls(tuple(words), rest)

    def matches(self, argv: Sequence[str]) -> bool:
        """Whether ``argv`` starts with the words (and has nothing more unless ``*``)."""
        n = len(self.words)
        if tuple(argv[:n]) != self.words:
            return False
        return self.rest or len(argv) == n

    def __str__(self) -> str:
        return " ".join([*self.words, WILDCARD] if self.rest else self.words)


@dataclass(frozen=True)
class CommandPolicy:
    """Which argvs the shell tool runs without asking.

    Attributes:
        rules: The allowlist, checked in order.
        paths: The path validator for path-like arguments.
    """

    rules: tuple[Rule, ...]
    paths: PathPolicy = field(default=DEFAULT_POLICY)

    @classmethod
    def defaults(cls, *, paths: PathPolicy = DEFAULT_POLICY) -> CommandPolicy:
        """The built-in rules (:data:`DEFAULT_RULES`)."""
        return cls(tuple(Rule.parse(r) for r in DEFAULT_RULES), paths)

    @classmethod
    def from_config(
        cls, section: Mapping[str, object] | None, *, paths: PathPolicy = DEFAULT_POLICY
    ) -> CommandPolicy:
        """The policy for a project, from its parsed ``[shell]`` table.

        Args:
            section: The ``[shell]`` mapping (``defaults``: bool, ``allow``: list of
                lists of strings), or None for the defaults alone.
            paths: The path validator.

        Raises:
            ConfigError: Unknown keys or malformed entries, with what to write instead.
        """
        section = section or {}
        unknown = set(section) - {"defaults", "allow"}
        if unknown:
            raise ConfigError(
                f"[shell] has unknown keys {sorted(unknown)}; use 'defaults' (true/false) "
                "and 'allow' (a list of argv patterns)."
            )
        use_defaults = section.get("defaults", True)
        if not isinstance(use_defaults, bool):
            raise ConfigError("[shell] defaults must be true or false.")
        allow = section.get("allow", [])
        if not isinstance(allow, list):
            raise ConfigError(
                '[shell] allow must be a list of argv patterns, e.g. [["make", "test"]].'
            )
        rules = [Rule.parse(r) for r in DEFAULT_RULES] if use_defaults else []
        rules += [Rule.parse(r) for r in allow]
        return cls(tuple(dict.fromkeys(rules)), paths)

    def check(self, argv: Sequence[str]) -> Decision:
        """Decide whether ``argv`` may run. Pure: no side effects.

        Args:
            argv: Program and arguments, as the agent gave them.

        Returns:
            The decision, naming the rule that matched or the specific reason.
        """
        if isinstance(argv, (str, bytes)) or not argv:
            return Decision(False, "", "The command is empty. Give a program and its arguments.")
        if not all(isinstance(a, str) for a in argv):
            return Decision(False, "", "Every argument must be text.")
        program = argv[0]
        if "/" in program or "\\" in program:
            return Decision(
                False,
                "",
                f"{program!r} is a path. Give the program's name (e.g. 'pytest'); briotui "
                "looks it up on its own PATH.",
            )
        if program in _REFUSED_PROGRAMS:
            return Decision(False, "", f"{program!r} {_REFUSED_PROGRAMS[program]}.")
        hard = _hard_rules(argv)
        if hard:
            return Decision(False, "", hard)
        for rule in self.rules:
            if not rule.matches(argv):
                continue
            start = len(rule.words)
            for index, arg in enumerate(argv[start:], start):
                problem = self._arg_problem(arg)
                if problem:
                    return Decision(False, str(rule), f"Argument {index} {arg[:80]!r}: {problem}")
            return Decision(True, str(rule), f"Allowed by the rule '{rule}'.")
        near = [str(r) for r in self.rules if r.words[0] == program]
        hint = (
            f"Allowed forms of {program!r}: {', '.join(near)}."
            if near
            else f"{program!r} is not on the allowlist."
        )
        return Decision(
            False,
            "",
            f"{' '.join(argv)[:120]!r} matches no rule. {hint} The user can allow it once, "
            "or add it under [shell] allow in .brio/config.toml.",
        )

    def _arg_problem(self, arg: str) -> str:
        if "\x00" in arg:
            return "contains a NUL byte."
        for candidate in _path_candidates(arg):
            try:
                self.paths.normalize(candidate, allow_root=True)
            except PathRefused as exc:
                return f"as a path, {exc.message}"
        return ""


def _path_candidates(arg: str) -> Iterable[str]:
    """The parts of one argument that may be a path a program reads or writes.

    The whole argument; the value of ``--opt=value``, ``-o=value`` and ``key=value``
    (``pytest -o cache_dir=/abs``), at every ``=`` (``-o key=/abs`` nests); and
    ``-oVALUE`` (``-o/tmp/x``, ``-C..``).
    """
    values = [arg]
    if arg.startswith("-") and len(arg) > 2 and not arg.startswith("--"):
        values.append(arg[2:])  # -o/tmp/x, -C..
    rest = arg
    while "=" in rest:
        rest = rest.split("=", 1)[1]
        values.append(rest)  # --opt=v, -o=v, key=v, --opt=key=v
    for value in values:
        if "/" in value or "\\" in value or value.startswith(".") or value.startswith("~"):
            # pytest node ids: path::Class::test[param]; only the path part is a path.
            yield value.split("::", 1)[0] if "::" in value else value


def _hard_rules(argv: Sequence[str]) -> str:
    """Refusals that no rule or configuration can lift."""
    program, args = argv[0], list(argv[1:])
    if _PYTHONS.fullmatch(program):
        for arg in args:
            if arg == "-m" or arg == "--" or not arg.startswith("-"):
                break
            if not arg.startswith("--") and "c" in arg[1:]:
                return (
                    "'python -c' runs code given as an argument. Write the code to a file "
                    "in the session and run that, or use 'python -m pytest'."
                )
    if program == "find":
        bad = sorted(_FIND_REFUSED.intersection(args))
        if bad:
            return f"'find {bad[0]}' runs or deletes; use find only to list files."
    if program == "git":
        global_opts = True
        for arg in args:
            if global_opts and not arg.startswith("-"):
                global_opts = False  # the subcommand
            name = arg.split("=", 1)[0]
            if global_opts and (
                name in _GIT_GLOBAL_REFUSED or (arg.startswith(("-c", "-C")) and len(arg) > 2)
            ):
                if arg.startswith(("-c", "--config")):
                    return "'git -c' would change git's configuration; briotui fixes it."
                return f"git option {name!r} before the subcommand is not allowed for agents."
            if any(name == o or name.startswith(o) for o in _GIT_ANYWHERE_REFUSED):
                return f"git option {name!r} runs other programs; it is not allowed for agents."
    return ""


# --- running -------------------------------------------------------------------------


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


def load_user_shell_settings(file: Path | None = None) -> ShellSettings:
    """The ``[shell]`` settings from the user's config file (defaults if it has none).

    Args:
        file: The user's config file; ``user_config_dir()/config.toml`` by default.

    Raises:
        ConfigError: The file is not valid TOML or ``[shell]`` is wrong.
    """
    from briotui.kernel.paths import user_config_dir

    path = file or user_config_dir() / "config.toml"
    if not path.is_file():
        return ShellSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file.") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc}.") from None
    return ShellSettings.from_user_config(data, str(path))


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


def shell_sandbox_status() -> tuple[bool, str]:
    """Whether commands are sandboxed with bubblewrap, for ``briotui doctor``.

    Returns:
        ``(available, detail)``; the detail says what to do when it is not.
    """
    return _probe_bwrap()


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
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    home = value.strip()
                    candidates += _dirs_of(home + "/python") + _dirs_of(
                        os.path.realpath(home) + "/python"
                    )
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
    if "/" in program or "\\" in program:
        raise CommandRefused(f"{program!r} is a path; give the program's name.", argv=list(argv))
    search = path if path is not None else default_safe_path()
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
        if use_sandbox:
            home = private / "home"
            home.mkdir()
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


# --- sessions --------------------------------------------------------------------------

CACHE_DIRS: Final[frozenset[str]] = frozenset(
    {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
)
"""Directories whose contents a command's run never copies back into the session."""
CACHE_SUFFIXES: Final[tuple[str, ...]] = (".pyc", ".pyo")
"""File suffixes never copied back."""


def is_cache_path(rel: str) -> bool:
    """Whether ``rel`` is a tool cache: under a :data:`CACHE_DIRS` directory or a ``.pyc``."""
    parts = rel.split("/")
    return any(p in CACHE_DIRS for p in parts[:-1]) or rel.endswith(CACHE_SUFFIXES)


@dataclass(frozen=True)
class SessionRun:
    """A command run in a session.

    Attributes:
        output: What the command printed and how it exited.
        changed: Session paths written or deleted from what the process changed,
            sorted (caches excluded).
    """

    output: CommandOutput
    changed: list[str]


def run_in_session(
    session: Session,
    argv: Sequence[str],
    *,
    workdir: Path,
    cwd: str = "",
    timeout_s: float,
    max_output_bytes: int,
    sandbox: bool | None = None,
    path: str | None = None,
    materialized: Materialized | None = None,
    readonly: Sequence[Path] = (),
    should_stop: Callable[[], bool] | None = None,
) -> SessionRun:
    """Run ``argv`` over a session's files and bring its file changes into the session.

    The session is materialized into ``workdir`` (:meth:`Materialized.sync_out`: copies,
    never links), the command runs in ``workdir/cwd``, then
    :meth:`Materialized.sync_back` copies what it created, changed or deleted into the
    session through the session's path policy.

    The cache rule: tool caches (:func:`is_cache_path`: ``__pycache__/``,
    ``.pytest_cache/``, ``.ruff_cache/``, ``.mypy_cache/``, ``*.pyc``) are never copied
    back. New cache files are removed from ``workdir`` before the sync; a cache file the
    session already had keeps the session's content even if the process changed or
    deleted it.

    On a timeout nothing is copied back and :class:`CommandTimeout` propagates; the
    caller should then drop ``workdir`` (a half-finished run's files are not trusted).

    Args:
        session: The session to run over.
        argv: Program and arguments (already checked by the caller).
        workdir: The directory to materialize into.
        cwd: Working directory relative to the session root ("" for the root).
        timeout_s: See :func:`run_command`.
        max_output_bytes: See :func:`run_command`.
        sandbox: See :func:`run_command`.
        path: See :func:`run_command`.
        materialized: A :class:`Materialized` from an earlier run over the same session
            and ``workdir`` (sync is then incremental and the directory is kept); if
            None, a new one is made and ``workdir`` is removed afterwards.
        readonly: See :func:`run_command`.
        should_stop: See :func:`run_command`.

    Returns:
        The output and the changed session paths.

    Raises:
        PathRefused: ``cwd`` is not a valid session path.
        CommandRefused, CommandNotFound, CommandFailed, CommandTimeout: as for
            :func:`run_command`.
    """
    from briotui.kernel.vfs.materialize import Materialized

    rel_cwd = session.manager.policy.normalize(cwd, allow_root=True)
    own = materialized is None
    mat = materialized if materialized is not None else Materialized(session, workdir)
    try:
        mat.sync_out()
        run_dir = mat.ensure_dir(rel_cwd)  # never through a link a process planted
        kept_caches = {
            e.path: (session.read(e.path), e.executable)
            for e in session.list_dir("", True)
            if e.kind == "file" and is_cache_path(e.path)
        }
        output = run_command(
            argv,
            cwd=run_dir,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            sandbox=sandbox,
            path=path,
            readonly=readonly,
            should_stop=should_stop,
        )
        _drop_new_caches(mat.dest, set(kept_caches))
        changed = []
        for rel in mat.sync_back():
            if rel in kept_caches:
                data, executable = kept_caches[rel]
                session.write(rel, data, executable)
            elif not is_cache_path(rel):
                changed.append(rel)
        return SessionRun(output=output, changed=sorted(changed))
    finally:
        if own:
            mat.remove()


def _drop_new_caches(root: Path, keep: set[str]) -> None:
    from briotui.kernel.vfs import safefs

    # Through directory fds: a link a process planted is removed, never followed.
    for found in safefs.walk(root, skip_dir=lambda _name: False, nofollow_root=True):
        if is_cache_path(found.rel) and found.rel not in keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(found.name, dir_fd=found.dir_fd)

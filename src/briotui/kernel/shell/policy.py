"""The shell policy: which argv an agent may run (rules, refused programs, argument checks).

The shell tool runs allowlisted programs for agents, as an argv, never through a shell,
in three modules (used in this order by the host function):

1. This module: :class:`CommandPolicy` decides, purely, whether an argv is allowed
   (:meth:`CommandPolicy.check` returns a :class:`Decision` with the rule that matched
   or a specific reason, which the capability layer turns into a prompt).
2. :mod:`briotui.kernel.shell.runner`: :func:`~briotui.kernel.shell.runner.run_command`
   runs an argv, in bubblewrap where it works (see there); whether an agent's command may
   run without it is the user's ``[shell] unsandboxed`` setting, which
   :class:`~briotui.kernel.shell.session.ShellService` enforces.
3. :mod:`briotui.kernel.shell.session`: ``run_in_session`` materializes a session into a
   directory, runs there and copies back what the process changed.

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

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from briotui.kernel.errors import (
    ConfigError,
    PathRefused,
)
from briotui.kernel.vfs.paths import DEFAULT_POLICY, PathPolicy

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

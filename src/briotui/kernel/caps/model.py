"""The shapes of the capability system: grants, requests, answers, and pattern matching."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from typing import Literal

Capability = Literal["read", "write", "shell", "sql", "mesh", "mcp"]
"""What a grant covers: reading or writing session paths, running a command, using the
agent's SQL tables, talking to another agent, calling an MCP server's tool
(``server/tool``)."""

CAPABILITIES: tuple[Capability, ...] = ("read", "write", "shell", "sql", "mesh", "mcp")

Lifetime = Literal["once", "task", "session", "project"]
"""How long a grant lasts: one call, the current task, the current session, or for good
in this project (kept in the store across restarts)."""

Answer = Literal["once", "session", "project", "deny"]
"""The user's answer to a capability prompt (keys y, s, a, n)."""


@dataclass(frozen=True)
class Answered:
    """An answer to a capability prompt and who gave it (a served kernel's client).

    A prompt function returns a bare :data:`Answer` when there is one user; a served
    kernel returns this so the audit row names the client that answered.
    """

    answer: Answer
    by: str


ApproveMode = Literal["never", "ask", "all"]
"""What a call outside the grants gets when nobody is asked: ``never`` denies (the
default), ``ask`` prompts the user, ``all`` allows it once (and audits it)."""

Source = Literal["profile", "config", "user", "policy", "delegated"]


@dataclass(frozen=True)
class Grant:
    """Permission for one agent to do one kind of thing, within a pattern.

    Attributes:
        id: Stable id ("profile:coder:write:0" for profile grants, random otherwise).
        agent: The agent's name.
        capability: What it covers.
        pattern: Path glob (``src/**``), argv pattern (``pytest *``), table prefix, or
            peer name glob.
        lifetime: How long it lasts.
        scope_id: The task or session id a ``task``/``session`` grant is bound to.
        source: Where it came from.
        parent_id: The grant it was delegated from, if any.
    """

    id: str
    agent: str
    capability: Capability
    pattern: str
    lifetime: Lifetime = "project"
    scope_id: str = ""
    source: Source = "profile"
    parent_id: str | None = None


@dataclass(frozen=True)
class Delegator:
    """An agent that started a subtask, for the grants it passes down.

    A subtask's agent may do only what its own grants allow *and* what each agent
    above it in the task tree may do (in that agent's task and session).

    Attributes:
        agent: The parent agent's name.
        task_id: The task the parent was running.
        session_id: The session the parent worked in.
    """

    agent: str
    task_id: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class CapabilityRequest:
    """One host call that needs a capability.

    Attributes:
        agent: The asking agent's name.
        instance: Its instance id.
        task_id: The task it is running.
        session_id: The session it works in ("" if none).
        capability: What it needs.
        target: The path, the command line, the table prefix or the peer.
        reason: Why, in the agent's words (shown in the prompt).
    """

    agent: str
    capability: Capability
    target: str
    instance: str = ""
    task_id: str = ""
    session_id: str = ""
    reason: str = ""
    scope: tuple[str, ...] = ()
    """Path globs a subtask's writes are confined to (delegated by its parent)."""
    unsandboxed: bool = False
    """A ``shell`` request to run the command without an OS sandbox (no grant covers it;
    see :meth:`~briotui.kernel.caps.checker.Capabilities.confirm`)."""
    ceiling: tuple[Delegator, ...] = ()
    """The agents above a subtask, nearest last: its grants are cut down to theirs."""

    @property
    def risk(self) -> str:
        """A one-line description of what allowing it risks, for the prompt."""
        if self.unsandboxed:
            return (
                "NO SANDBOX (bubblewrap is not available): the command runs as you, outside "
                "any container; only best-effort limits apply (its own copy of the session, "
                "a scrubbed environment, Landlock where the kernel has it)"
            )
        return {
            "read": "the agent reads this file of the session (nothing leaves the machine "
            "except through its model calls)",
            "write": "the agent changes this file in its session; you still review every "
            "hunk before it reaches your working tree",
            "shell": "the command runs in a copy of the session with a scrubbed environment; "
            "it can use CPU and read what the session holds",
            "sql": "the agent gets a private SQL scratch space",
            "mesh": "the agent can send messages to that agent",
            "mcp": "the MCP server runs this tool with these arguments; what it does is up "
            "to the server (a local server runs sandboxed, a remote one receives the "
            "arguments)",
        }[self.capability]


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``**`` spans directories, ``*`` and ``?`` stay within one path component."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def path_matches(pattern: str, path: str) -> bool:
    """Whether the normalized relative ``path`` matches the glob ``pattern``."""
    return _glob_regex(pattern).match(path) is not None


def argv_matches(pattern: str, argv: list[str]) -> bool:
    """Whether ``argv`` matches an argv pattern like ``pytest *`` or ``git diff *``.

    Words match exactly; a final ``*`` matches any remaining arguments (none included).
    """
    words = shlex.split(pattern)
    if words and words[-1] == "*":
        head = words[:-1]
        return argv[: len(head)] == head
    return argv == words


def matches(grant: Grant, capability: Capability, target: str) -> bool:
    """Whether ``grant`` covers ``capability`` on ``target``."""
    if grant.capability != capability:
        return False
    if capability in ("read", "write", "mesh", "mcp"):
        return path_matches(grant.pattern, target)
    if capability == "shell":
        return argv_matches(grant.pattern, shlex.split(target))
    return grant.pattern in ("*", target)


def covers(parent: Grant, child: Grant) -> bool:
    """Whether ``child`` asks for no more than ``parent`` (for delegation).

    A child pattern is covered when it equals the parent's, when the parent's is
    universal (``**``, ``*``), or when the child names one concrete target the parent
    matches. Anything else (two different globs) is refused: proving glob inclusion in
    general is not worth the risk of getting it wrong.
    """
    if parent.capability != child.capability:
        return False
    if parent.pattern == child.pattern or parent.pattern in ("**", "*"):
        return True
    concrete = not any(ch in child.pattern for ch in "*?[")
    return concrete and matches(parent, child.capability, child.pattern)

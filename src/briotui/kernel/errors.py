"""Every error the kernel raises, each with a title and a message that says what to do.

The tree::

    BrioError                      title + message; ``kind`` names it in JSON
    ├── ConfigError                a config file or setting is wrong
    ├── ProjectNotFound            the project directory (-C) is missing
    ├── EmptyRequest               a request with nothing in it
    ├── AgentNotFound              no agent of that name under agents/ or .brio/agents/
    ├── BuildError                 an agent could not be built (names agent, file, cause)
    │   ├── WitError               the WIT contract does not parse
    │   └── ComponentError         a .wasm is truncated, garbage, or imports what we lack
    ├── AgentError                 an agent run ended badly; the instance is discarded
    │   ├── AgentTimeout           past its wall-clock deadline (epoch interrupt)
    │   ├── FuelExhausted          past its fuel budget
    │   ├── MemoryLimit            past its memory limit
    │   ├── MessageTooLarge        an argument or a result over the size limit
    │   ├── CapabilityDenied       asked for something outside its grants
    │   ├── GuestPanic             the guest itself failed (carries its stderr tail)
    │   ├── GuestError             the guest returned an error value on purpose
    │   ├── AgentCancelled         its task was cancelled (epoch interrupt)
    │   ├── HostError              the kernel failed while serving the agent
    │   ├── AgentBusy              re-entry into an instance that is already running
    │   └── ReplayDiverged         a replayed run asked for what its journal does not have
    ├── JournalNotFound            a task has no run journal to replay
    └── ProviderError              a model provider failed (names provider, model, cause)

Nothing here formats tracebacks: a user sees ``title`` and ``message``; logs keep the
rest.

One piece: it is the one error tree (every error's title and what-to-do message), so a
front end can render any of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BrioError(Exception):
    """Base of every briotui error.

    Attributes:
        title: A short user-facing headline, e.g. "Agent ran out of time".
        message: What happened and what to do about it.
    """

    kind: str = "error"
    """A stable machine name for this class of error, used in ``--json`` output."""

    default_title: str = "briotui error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.title = title or self.default_title

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-able mapping: ``kind``, ``title``, ``message``."""
        return {"kind": self.kind, "title": self.title, "message": self.message}

    def __str__(self) -> str:
        return f"{self.title}: {self.message}"


class ConfigError(BrioError):
    """A configuration file or setting is invalid."""

    kind = "config"
    default_title = "Configuration problem"


class WitExportError(BrioError):
    """The WIT files could not be shown or exported (``briotui agents wit``)."""

    kind = "wit-export"
    default_title = "Could not export the WIT files"


class ProjectNotFound(BrioError):
    """The project directory given (``-C``) does not exist or is not a directory."""

    kind = "project-not-found"
    default_title = "No such project directory"


class EmptyRequest(BrioError):
    """A request with no words in it: there is nothing to plan or code."""

    kind = "empty-request"
    default_title = "Empty request"


class AgentNotFound(BrioError):
    """No agent with that name exists."""

    kind = "agent-not-found"
    default_title = "No such agent"


class BuildError(BrioError):
    """An agent could not be built into a component.

    Attributes:
        agent: The agent's name.
        file: The file at fault, if known.
    """

    kind = "build"
    default_title = "Agent build failed"

    def __init__(
        self, message: str, *, agent: str, file: str | None = None, title: str | None = None
    ) -> None:
        super().__init__(message, title=title)
        self.agent = agent
        self.file = file

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(agent=self.agent, file=self.file)
        return data


class WitError(BuildError):
    """The WIT contract an agent builds against does not parse or resolve."""

    kind = "wit"
    default_title = "WIT contract does not parse"


class ComponentError(BuildError):
    """A component file is unusable: truncated, not wasm, or imports unknown interfaces."""

    kind = "component"
    default_title = "Agent component is unusable"


class AgentError(BrioError):
    """An agent run ended with an error. The instance is discarded after a trap.

    Attributes:
        agent: The agent's name.
        stderr_tail: The last lines the guest wrote to stderr, if any.
    """

    kind = "agent"
    default_title = "Agent failed"

    def __init__(
        self,
        message: str,
        *,
        agent: str = "",
        title: str | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message, title=title)
        self.agent = agent
        self.stderr_tail = stderr_tail

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["agent"] = self.agent
        if self.stderr_tail:
            data["stderr_tail"] = self.stderr_tail
        return data


class AgentTimeout(AgentError):
    """The agent ran past its wall-clock deadline and was interrupted."""

    kind = "timeout"
    default_title = "Agent ran out of time"


class FuelExhausted(AgentError):
    """The agent used up its fuel (its instruction budget)."""

    kind = "fuel"
    default_title = "Agent ran out of fuel"


class MemoryLimit(AgentError):
    """The agent tried to grow its memory past its limit."""

    kind = "memory"
    default_title = "Agent hit its memory limit"


class MessageTooLarge(AgentError):
    """A message into or out of the agent is over the size limit."""

    kind = "too-large"
    default_title = "Message too large"


class CapabilityDenied(AgentError):
    """The agent asked for something its capabilities do not allow."""

    kind = "denied"
    default_title = "Capability denied"


class GuestPanic(AgentError):
    """The guest code crashed (an exception it did not handle, an abort, a trap)."""

    kind = "panic"
    default_title = "Agent crashed"


class GuestError(AgentError):
    """The guest returned an error value: it ran, and reports that it failed."""

    kind = "guest-error"
    default_title = "Agent reported a failure"


class AgentCancelled(AgentError):
    """The agent was stopped because its task was cancelled."""

    kind = "cancelled"
    default_title = "Agent cancelled"


class HostError(AgentError):
    """The kernel failed while serving an agent's call."""

    kind = "host"
    default_title = "Kernel error while serving an agent"


class AgentBusy(AgentError):
    """A call tried to enter an agent instance that is already running."""

    kind = "busy"
    default_title = "Agent is busy"


class ProviderError(BrioError):
    """A model provider failed.

    Attributes:
        provider: The provider's name, e.g. "anthropic".
        model: The model asked for.
        cause: A short machine name for the cause: "auth", "not-found",
            "rate-limit", "server", "connection", "timeout", "bad-request",
            "malformed", "exhausted", "cancelled".
        retryable: Whether trying again (or the next provider) may help.
    """

    kind = "provider"
    default_title = "Model provider failed"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str = "",
        cause: str = "failed",
        retryable: bool = False,
        title: str | None = None,
    ) -> None:
        super().__init__(message, title=title)
        self.provider = provider
        self.model = model
        self.cause = cause
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(provider=self.provider, model=self.model, cause=self.cause)
        return data


@dataclass(frozen=True)
class ErrorInfo:
    """A plain, picklable description of an error, for events and JSON output."""

    kind: str
    title: str
    message: str

    @classmethod
    def of(cls, error: BrioError) -> ErrorInfo:
        """Describe ``error``."""
        return cls(kind=error.kind, title=error.title, message=error.message)


# --- Sessions, paths, store (briotui.kernel.vfs, briotui.kernel.store) ---------------
#
#   BrioError
#   ├── PathRefused            a path is malformed (wit "invalid")
#   │   └── PathDenied         a path is protected or leaves the project (wit "denied")
#   ├── WorkspaceFileNotFound  no such file in the session (wit "not-found")
#   ├── HunkNotFound           no such hunk in the session (names the session's hunks)
#   ├── FileTooLarge           a file is over the session's size limit (wit "too-large")
#   ├── SessionNotFound        no session with that id
#   ├── SessionStateError      the session cannot do that in its state (wit "conflict")
#   ├── MergeConflict          a 3-way merge found real conflicts (wit "conflict")
#   ├── ConflictNotFound       no such conflict (or region) to resolve in the session
#   ├── ConflictMoved          a conflicting region cannot be found safely to resolve it
#   ├── CommitRefused          a commit would be unsafe; nothing was written
#   ├── GitError               a git command failed
#   └── StoreError             the project database is unusable
#       ├── StoreTooNew        written by a newer briotui
#       └── StoreCorrupt       not a database; moved aside, never deleted


class PathRefused(BrioError):
    """A path an agent or a command gave is malformed: absolute, ``..``, NUL, empty."""

    kind = "path-refused"
    default_title = "Path refused"
    wit_kind = "invalid"


class PathDenied(PathRefused):
    """A path is well formed but protected (``.git/``, ``.brio/``) or leaves the project."""

    kind = "path-denied"
    default_title = "Path denied"
    wit_kind = "denied"


class WorkspaceFileNotFound(BrioError):
    """The session has no file (or directory) at that path."""

    kind = "not-found"
    default_title = "No such file in the session"
    wit_kind = "not-found"


class HunkNotFound(BrioError):
    """A hunk id (or prefix) names no hunk of the session, or several."""

    kind = "hunk-not-found"
    default_title = "No such hunk"
    wit_kind = "not-found"


class FileTooLarge(BrioError):
    """A file is larger than the session accepts."""

    kind = "too-large"
    default_title = "File too large"
    wit_kind = "too-large"


class SessionNotFound(BrioError):
    """No session with that id exists in this project."""

    kind = "session-not-found"
    default_title = "No such session"
    wit_kind = "not-found"


class SessionStateError(BrioError):
    """The session cannot do that now (e.g. it is already committed or discarded)."""

    kind = "session-state"
    default_title = "Session is not open"
    wit_kind = "conflict"


class SessionNotContinuable(SessionStateError):
    """A follow-up request names a session it cannot continue: committed, discarded,
    a Coder's branch, or busy with another task."""

    kind = "session-not-continuable"
    default_title = "Cannot continue this session"


class MergeConflict(BrioError):
    """A 3-way merge found real conflicts; nothing was overwritten.

    Attributes:
        conflicts: One mapping per conflicting file: ``path`` and ``regions`` (each
            with ``base``, ``ours``, ``theirs`` text).
        merged: The paths merged anyway (a merge that keeps going past conflicts).
    """

    kind = "merge-conflict"
    default_title = "Merge conflict"
    wit_kind = "conflict"

    def __init__(
        self,
        message: str,
        *,
        conflicts: list[dict[str, Any]] | None = None,
        merged: list[str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(message, title=title)
        self.conflicts = conflicts or []
        self.merged = merged or []

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["conflicts"] = self.conflicts
        return data


class ConflictNotFound(BrioError):
    """The session has no conflict in that file, or no such region (the message lists
    what there is to resolve)."""

    kind = "conflict-not-found"
    default_title = "No such conflict"
    wit_kind = "not-found"


class ConflictMoved(BrioError):
    """A conflicting region's side is no longer where it can be found safely (the file
    changed after the merge); the whole file can still be resolved with a given text."""

    kind = "conflict-moved"
    default_title = "Conflict changed"
    wit_kind = "conflict"


class CommitRefused(BrioError):
    """A commit would be unsafe (unrelated staged changes, nothing accepted, no repo)."""

    kind = "commit-refused"
    default_title = "Commit refused"
    wit_kind = "conflict"


class CommitUnverified(CommitRefused):
    """What would be committed is not verified: the tests failed or never ran on it (the
    whole session, or exactly the accepted hunks); commit anyway only when the user
    confirms (``--force``)."""

    kind = "commit-unverified"
    default_title = "Not verified"


class DecisionsChanged(CommitRefused):
    """The session's accepted hunks changed between the test run on them and the commit
    (a hunk accepted or rejected meanwhile): what would be written was not tested."""

    kind = "decisions-changed"
    default_title = "Decisions changed"


class GitError(BrioError):
    """A git command failed; the message carries git's own words."""

    kind = "git"
    default_title = "git failed"


class StoreError(BrioError):
    """The project's database (``.brio/state.db``) cannot be used."""

    kind = "store"
    default_title = "Project database problem"


class StoreTooNew(StoreError):
    """The database was written by a newer briotui than this one."""

    kind = "store-too-new"
    default_title = "Project database is from a newer briotui"


class StoreCorrupt(StoreError):
    """The database file is not a usable SQLite database; it was moved aside."""

    kind = "store-corrupt"
    default_title = "Project database was corrupt"


# --- Models (briotui.kernel.llm) -------------------------------------------------------
#
#   BrioError
#   └── BudgetExceeded         a task, session or agent spent past its model budget


class BudgetExceeded(BrioError):
    """A model budget (cost or tokens) for a task, session or agent is spent.

    Attributes:
        scope: What the budget covers: "task", "session" or "agent".
        key: Which task, session or agent.
        action: What the budget asks for: "stop" the task or "pause" it for the user.
    """

    kind = "budget"
    default_title = "Model budget exceeded"

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        key: str,
        action: str = "stop",
        title: str | None = None,
    ) -> None:
        super().__init__(message, title=title)
        self.scope = scope
        self.key = key
        self.action = action

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(scope=self.scope, key=self.key, action=self.action)
        return data


# --- Mesh: messages between agents (briotui.kernel.mesh) ------------------------------
#
#   BrioError
#   └── MeshError              a message could not be sent, answered or received
#       ├── MeshPeerNotFound   no endpoint with that agent id (wit "not-found")
#       ├── MeshDenied         the two agents are not allowed to talk (wit "denied")
#       ├── MeshTimeout        no reply (or message) within the time limit (wit "timeout")
#       ├── MeshQueueFull      the peer's inbox is full (wit "unavailable")
#       ├── MeshMessageTooLarge  a body over the size limit (wit "too-large")
#       └── MeshClosed         the endpoint was unregistered (wit "unavailable")


class NotText(BrioError):
    """A file an agent asked to read as text (lines, a search) is not UTF-8."""

    kind = "not-text"
    default_title = "Not a text file"
    wit_kind = "invalid"


class MeshError(BrioError):
    """A mesh message could not be sent, answered or received."""

    kind = "mesh"
    default_title = "Agent message failed"
    wit_kind = "invalid"


class MeshPeerNotFound(MeshError):
    """No agent with that id is on the mesh (never registered, or already gone)."""

    kind = "mesh-not-found"
    default_title = "No such agent on the mesh"
    wit_kind = "not-found"


class MeshDenied(MeshError):
    """The sender and the recipient are not allowed to talk to each other."""

    kind = "mesh-denied"
    default_title = "Agents may not talk"
    wit_kind = "denied"


class MeshTimeout(MeshError):
    """A request got no reply within its time limit."""

    kind = "mesh-timeout"
    default_title = "No reply in time"
    wit_kind = "timeout"


class MeshQueueFull(MeshError):
    """The recipient's inbox is full; the message was not queued."""

    kind = "mesh-queue-full"
    default_title = "Agent inbox full"
    wit_kind = "unavailable"


class MeshMessageTooLarge(MeshError):
    """A message body is over the sender's or the recipient's size limit."""

    kind = "mesh-too-large"
    default_title = "Message too large"
    wit_kind = "too-large"


class MeshClosed(MeshError):
    """The endpoint was unregistered (its agent stopped) while in use."""

    kind = "mesh-closed"
    default_title = "Mesh endpoint closed"
    wit_kind = "unavailable"


# --- SQL for agents (briotui.kernel.sqlpolicy) ----------------------------------------
#
#   BrioError
#   └── SqlError               the agents database failed (wit "failed")
#       ├── SqlInvalid         malformed, several statements, or SQLite rejected it (wit "invalid")
#       ├── SqlDenied          outside the agent's tables, or a refused feature (wit "denied")
#       ├── SqlTooLarge        a result, a value or the database over its limit (wit "too-large")
#       └── SqlTimeout         past the step budget, or the database stayed locked (wit "timeout")


class SqlError(BrioError):
    """An agent's SQL statement failed."""

    kind = "sql"
    default_title = "SQL failed"
    wit_kind = "failed"


class SqlInvalid(SqlError):
    """The statement is malformed, is more than one statement, or SQLite rejected it."""

    kind = "sql-invalid"
    default_title = "SQL statement rejected"
    wit_kind = "invalid"


class SqlDenied(SqlError):
    """The statement touches a table outside the agent's prefix, or a refused feature."""

    kind = "sql-denied"
    default_title = "SQL not allowed"
    wit_kind = "denied"


class SqlTooLarge(SqlError):
    """A result, a single value, or the agents database is over its size limit."""

    kind = "sql-too-large"
    default_title = "SQL result too large"
    wit_kind = "too-large"


class SqlTimeout(SqlError):
    """The statement ran past its step or time budget, or the database stayed locked."""

    kind = "sql-timeout"
    default_title = "SQL statement took too long"
    wit_kind = "timeout"


# --- Commands for agents (briotui.kernel.shell) ---- -----------------------------------
#
#   BrioError
#   └── CommandError           a command could not be run (wit "failed")
#       ├── CommandRefused     not on the allowlist, or a refused argument (wit "denied")
#       ├── CommandNotFound    the program is not on the kernel's PATH (wit "not-found")
#       └── CommandFailed      it could not be started or sandboxed (wit "failed")
#           └── CommandTimeout past its time limit; its process group was killed (wit "timeout")


class CommandError(BrioError):
    """A command an agent asked for could not be run."""

    kind = "command"
    default_title = "Command failed"
    wit_kind = "failed"


class CommandRefused(CommandError):
    """The command is not allowed by the shell policy.

    Attributes:
        reason: Why, specifically (shown in the capability prompt).
        argv: The command as asked for.
    """

    kind = "command-refused"
    default_title = "Command not allowed"
    wit_kind = "denied"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        argv: list[str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(message, title=title)
        self.reason = reason or message
        self.argv = list(argv or [])

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(reason=self.reason, argv=self.argv)
        return data


class CommandNotFound(CommandError):
    """The program is not on the kernel's PATH."""

    kind = "command-not-found"
    default_title = "Program not found"
    wit_kind = "not-found"


class CommandFailed(CommandError):
    """The command could not be started, or its sandbox could not be set up."""

    kind = "command-failed"
    default_title = "Command could not run"
    wit_kind = "failed"


class CommandTimeout(CommandFailed):
    """The command ran past its time limit; its whole process group was killed.

    Attributes:
        stdout: What it wrote to stdout before it was killed (bounded).
        stderr: What it wrote to stderr before it was killed (bounded).
    """

    kind = "command-timeout"
    default_title = "Command took too long"
    wit_kind = "timeout"

    def __init__(
        self, message: str, *, stdout: str = "", stderr: str = "", title: str | None = None
    ) -> None:
        super().__init__(message, title=title)
        self.stdout = stdout
        self.stderr = stderr


class CommandStopped(CommandTimeout):
    """The command's agent run was stopped (cancelled, or past its deadline); the command
    and all its child processes were killed and none of its file changes were kept."""

    kind = "command-stopped"
    default_title = "Command stopped"


# --- Kernel state tree (briotui.kernel.state) -------------------------------------------
#
#   BrioError
#   └── StateError             a state-tree mutation is malformed (wit "invalid")
#       ├── StatePathError     the path does not exist or does not fit the tree
#       └── TaskNotFound       no task with that id in the task tree (wit "not-found")


class StateError(BrioError):
    """A mutation of the kernel state tree is malformed (a non-JSON value, a bad path)."""

    kind = "state"
    default_title = "Kernel state error"
    wit_kind = "invalid"


class StatePathError(StateError):
    """A state-tree path does not exist, or does not fit the tree (a key into a list)."""

    kind = "state-path"
    default_title = "No such state path"


class TaskNotFound(StateError):
    """No task with that id is in the task tree."""

    kind = "task-not-found"
    default_title = "No such task"
    wit_kind = "not-found"


class StateShapeError(StateError):
    """A value published in the state tree does not fit the state contract's shape.

    Attributes:
        path: The JSON Pointer of the field that does not fit.
    """

    kind = "state-shape"
    default_title = "State does not fit the contract"

    def __init__(self, message: str, *, path: str = "", title: str | None = None) -> None:
        super().__init__(
            message + " Publish it through briotui.kernel.contract's constructors.", title=title
        )
        self.path = path


class GrantNotFound(BrioError):
    """No active (unrevoked) grant with that id is stored for this project."""

    kind = "grant-not-found"
    default_title = "No such grant"
    wit_kind = "not-found"


# --- Configuration files and trust (briotui.kernel.settings, briotui.kernel.trust) ------
#
#   ConfigError
#   ├── ConfigFileError        a config file cannot be read or is not valid TOML
#   ├── KeyNotSent             a project config pairs an API key with a URL of its choosing
#   └── TrustRefused           `briotui trust` cannot ask (no terminal) or the user said no


class ConfigFileError(ConfigError):
    """A config file cannot be read or is not valid TOML (one text for every file)."""

    kind = "config-file"
    default_title = "Config file is invalid"

    @classmethod
    def of(cls, path: object, detail: str) -> ConfigFileError:
        """The error for ``path``, with the parser's or the OS's ``detail``."""
        return cls(f"{path} is not valid TOML or cannot be read ({detail}). Fix or remove it.")


class KeyNotSent(ConfigError):
    """A project's config would send an API key to a URL the user never paired it with."""

    kind = "key-not-sent"
    default_title = "API key not sent to a project-chosen URL"


class TrustRefused(ConfigError):
    """The project is not trusted: no terminal to ask on, or the user declined."""

    kind = "untrusted"
    default_title = "Project not trusted"


# --- MCP tools for agents (briotui.kernel.mcp) ---------------------------------------
#
#   BrioError
#   └── McpError               an MCP tool call failed (wit "failed")
#       ├── McpUnavailable     the server cannot start or crashed (wit "unavailable")
#       ├── McpTimeout         the server did not answer in time (wit "timeout")
#       ├── McpToolNotFound    no such server or tool (wit "not-found")
#       └── McpRefused         an argument outside its constraint, or past the budget (wit "denied")


class McpError(BrioError):
    """An MCP server's tool call failed (the tool reported an error)."""

    kind = "mcp"
    default_title = "MCP tool failed"
    wit_kind = "failed"


class McpUnavailable(McpError):
    """An MCP server cannot be started or reached, or it crashed."""

    kind = "mcp-unavailable"
    default_title = "MCP server unavailable"
    wit_kind = "unavailable"


class McpTimeout(McpError):
    """An MCP server did not answer within its time limit."""

    kind = "mcp-timeout"
    default_title = "MCP server did not answer"
    wit_kind = "timeout"


class McpToolNotFound(McpError):
    """No configured MCP server or tool has that name."""

    kind = "mcp-not-found"
    default_title = "MCP tool not found"
    wit_kind = "not-found"


class McpRefused(McpError):
    """A call outside the server's argument constraints, or past the task's budget."""

    kind = "mcp-refused"
    default_title = "MCP tool call refused"
    wit_kind = "denied"


# --- A served kernel and its clients (briotui.kernel.serve) --------------------------------
#
#   RemoteError                a served kernel or its connection failed
#   ├── RemoteRefused          the server refused the connection (token, origin, TLS)
#   ├── RemoteProtocolError    a message is malformed, too large, or an unknown command
#   ├── RemoteClosed           the connection closed (the client may rejoin)
#   ├── RemoteCommandFailed    a command failed on the served kernel (carries its error's kind)
#   ├── PromptNotFound         the prompt was already answered (first answer wins) or withdrawn
#   └── ServeRefused           `briotui serve` will not start as asked (non-loopback, no TLS)


class RemoteError(BrioError):
    """A served kernel, or the connection to it, failed."""

    kind = "remote"
    default_title = "Remote kernel error"


class RemoteRefused(RemoteError):
    """The server refused the connection: wrong token, bad origin, or TLS mismatch."""

    kind = "remote-refused"
    default_title = "Connection refused by the kernel"


class RemoteProtocolError(RemoteError):
    """A message is not valid JSON, too large, of an unknown type, or an unknown command."""

    kind = "remote-protocol"
    default_title = "Malformed message"


class RemoteClosed(RemoteError):
    """The connection to the served kernel closed (the client may rejoin)."""

    kind = "remote-closed"
    default_title = "Connection to the kernel closed"


class RemoteCommandFailed(RemoteError):
    """A command sent to a served kernel failed there; ``kind``, ``title`` and ``message``
    are the kernel's own error's (e.g. ``session-not-found``)."""

    kind = "remote-command"
    default_title = "Command failed"

    @classmethod
    def of(cls, error: dict[str, Any]) -> RemoteCommandFailed:
        """The error a result message's ``error`` object describes."""
        failed = cls(str(error.get("message", "")), title=str(error.get("title") or "") or None)
        failed.kind = str(error.get("kind") or cls.kind)
        return failed


class PromptNotFound(RemoteError):
    """No such waiting prompt: another client answered it first, or it was withdrawn."""

    kind = "prompt-not-found"
    default_title = "Prompt already answered"


class ServeRefused(ConfigError):
    """``briotui serve`` will not start as asked (a non-loopback host without TLS)."""

    kind = "serve-refused"
    default_title = "Refusing to serve"


class ReplayDiverged(AgentError):
    """A replayed agent run asked for something its journal does not have at that point:
    its code (or what it was given) is no longer what made the recorded run."""

    kind = "replay-diverged"
    default_title = "Replay diverged from the recorded run"


class JournalNotFound(BrioError):
    """A task has no run journal to replay or resume from."""

    kind = "journal-not-found"
    default_title = "No run journal"


class WorkerLost(AgentError):
    """The worker running an agent stopped heartbeating (killed, crashed, cut off); the
    run failed and its task may be retried once elsewhere from a clean session."""

    kind = "worker-lost"
    default_title = "Worker lost"


class ClusterError(ConfigError):
    """The kernel or a worker cannot use the configured NATS cluster (unreachable, a
    wrong token, a token in a repository file)."""

    kind = "cluster"
    default_title = "Cluster problem"


# --- A project's state followed over NATS (briotui.kernel.cluster.statefeed) -----------------
#
#   RemoteError
#   ├── StateFeedError         the state feed over NATS failed (a bad subject prefix, a reply
#   │   │                      that does not parse)
#   │   └── StateFeedTooLarge  a snapshot over the feed's size bound was refused
#   ├── StateFeedRefused       (a RemoteRefused) the NATS server refused the token or credentials
#   ├── StateFeedUnavailable   (a RemoteClosed) NATS cannot be reached, or no kernel publishes
#   │                          the project's state on it
#   └── ObserverReadOnly       an observer following over NATS tried to submit or decide


class StateFeedError(RemoteError):
    """The state feed over NATS failed: a bad subject prefix, or a message that does not parse."""

    kind = "state-feed"
    default_title = "State feed over NATS failed"


class StateFeedTooLarge(StateFeedError):
    """The project's state is larger than the feed's snapshot bound (it was not sent)."""

    kind = "state-feed-too-large"
    default_title = "Project state too large for the feed"


class StateFeedRefused(RemoteRefused):
    """The NATS server refused the connection (a wrong token or credentials)."""

    kind = "state-feed-refused"
    default_title = "NATS refused the connection"


class StateFeedUnavailable(RemoteClosed):
    """NATS cannot be reached, or no kernel publishes the project's state on it."""

    kind = "state-feed-unavailable"
    default_title = "No state feed on NATS"


class ObserverReadOnly(RemoteError):
    """An observer following a project over NATS can only watch: no request, no decision."""

    kind = "observer-read-only"
    default_title = "Read-only observer"

"""The wire format of a served kernel: message shapes, commands and their arguments.

Shared by the server and the client so both read the same rules. Parsing a client's
message either yields a :class:`Command` with checked arguments or raises
:class:`~briotui.kernel.errors.RemoteProtocolError` with a message saying what is wrong;
nothing is run for a message that does not parse. The package docstring
(:mod:`briotui.kernel.serve`) describes the protocol as a whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from briotui.kernel.errors import BrioError, RemoteProtocolError

PROTOCOL: Final = 1
"""The protocol's version, sent in ``hello``."""

CLOSE_SLOW: Final = 4002
"""The close code of a client dropped for being too slow (it may rejoin)."""

CLOSE_SHUTDOWN: Final = 1001
"""The close code when the server stops."""

DEFAULT_MAX_MESSAGE: Final = 256 * 1024
"""The largest message a client may send (bytes); a larger one closes the connection."""

DEFAULT_QUEUE_LIMIT: Final = 4096
"""How many messages may wait for one client before it is dropped."""

DEFAULT_REPLAY: Final = 2048
"""How many recent patches the server keeps for clients rejoining with ``since``."""

CLIENT_MAX_MESSAGE: Final = 256 * 1024 * 1024
"""The largest message a client accepts from the server (a snapshot of a big tree)."""

ANSWERS: Final = ("once", "session", "project", "deny")
"""The answers to a capability prompt."""

_STR = (str,)
_BOOL = (bool,)
_OPT_STR = (str, type(None))

COMMANDS: Final[dict[str, dict[str, tuple[tuple[type, ...], bool]]]] = {
    "submit": {"goal": (_STR, True), "agent": (_OPT_STR, False), "session": (_OPT_STR, False)},
    "cancel": {"task": (_STR, True)},
    "decide": {
        "session": (_STR, True),
        "decision": (_STR, True),
        "hunks": ((list, type(None)), False),
        "reason": (_STR, False),
        "path": (_OPT_STR, False),
    },
    "commit": {
        "session": (_STR, True),
        "git": (_BOOL, False),
        "message": (_OPT_STR, False),
        "force": (_BOOL, False),
        "expected": ((list, type(None)), False),
    },
    "rollback": {"session": (_STR, True), "force": (_BOOL, False)},
    "discard": {"session": (_STR, True)},
    "revise": {"session": (_STR, True), "instruction": (_STR, False)},
    "resolve": {
        "session": (_STR, True),
        "path": (_STR, True),
        "choice": (_STR, True),
        "region": ((int, type(None)), False),
        "text": (_STR, False),
    },
    "retest": {"session": (_STR, True)},
    "answer": {"prompt": (_STR, True), "answer": (_STR, True)},
    "verify_commit": {"session": (_STR, True)},
    "session": {"session": (_STR, True)},
    "sessions": {},
    "task_of_session": {"session": (_STR, True)},
    "transcript": {"task": (_STR, True)},
    "test_run": {"session": (_STR, True)},
}
"""Each command's arguments: ``name -> (accepted types, required)``."""

QUERIES: Final = frozenset(
    {"verify_commit", "session", "sessions", "task_of_session", "transcript", "test_run"}
)
"""The commands that only read (not written to the audit log)."""

STREAMED_EVENTS: Final = frozenset({"ModelDelta", "ModelReply", "ModelReset", "ModelFallback"})
"""The kernel events forwarded as ``{"type": "event", "kind", "event"}``: the streamed
conversation, which is not state (the transcript keeps it)."""

DECISIONS: Final = ("accepted", "rejected", "pending")

MAX_TEXT: Final = 100_000
"""The longest string argument (a request, a reason) in characters."""


@dataclass(frozen=True, slots=True)
class Command:
    """A client's command, its arguments checked against :data:`COMMANDS`."""

    id: str | int
    name: str
    args: dict[str, Any]


def dumps(message: dict[str, Any]) -> str:
    """One message as compact JSON text."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def message_id(message: object) -> str | int | None:
    """The ``id`` of a message if it has a usable one (for the error reply)."""
    if isinstance(message, dict):
        given = message.get("id")
        if isinstance(given, str) and len(given) <= 200:
            return given
        if isinstance(given, int) and not isinstance(given, bool):
            return given
    return None


def parse_command(text: str | bytes) -> Command:
    """The command in a client's message.

    Raises:
        RemoteProtocolError: the message is not JSON, not a command object, names an
            unknown command, or its arguments do not fit.
    """
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise RemoteProtocolError(
            'The message is not JSON. Send {"type": "command", "id": ..., "name": ..., '
            '"args": {...}}.'
        ) from None
    if not isinstance(message, dict):
        raise RemoteProtocolError("The message must be a JSON object.")
    if message.get("type") != "command":
        raise RemoteProtocolError(
            f"Unknown message type {str(message.get('type'))[:40]!r}; clients send only "
            '"command" messages.'
        )
    ident = message_id(message)
    if ident is None:
        raise RemoteProtocolError('A command needs an "id" (a string or an integer).')
    name = message.get("name")
    if not isinstance(name, str) or name not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        raise RemoteProtocolError(f"Unknown command {str(name)[:40]!r}. Known: {known}.")
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise RemoteProtocolError(f'"args" of {name!r} must be an object.')
    spec = COMMANDS[name]
    for key in args:
        if key not in spec:
            raise RemoteProtocolError(f"{name!r} takes no argument {str(key)[:40]!r}.")
    for key, (kinds, required) in spec.items():
        if key not in args:
            if required:
                raise RemoteProtocolError(f"{name!r} needs the argument {key!r}.")
            continue
        value = args[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RemoteProtocolError(f"{name!r}: the argument {key!r} has the wrong type.")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise RemoteProtocolError(f"{name!r}: the argument {key!r} is too long.")
    if name == "decide":
        if args["decision"] not in DECISIONS:
            raise RemoteProtocolError(f"decide: 'decision' must be one of {', '.join(DECISIONS)}.")
        hunks = args.get("hunks")
        if hunks is not None and not all(isinstance(h, str) for h in hunks):
            raise RemoteProtocolError("decide: 'hunks' must be a list of hunk ids.")
    if name == "commit":
        expected = args.get("expected")
        if expected is not None and not all(isinstance(h, str) for h in expected):
            raise RemoteProtocolError("commit: 'expected' must be a list of hunk ids.")
    return Command(ident, name, dict(args))


def result_ok(ident: str | int, value: Any) -> str:
    """A successful result message."""
    return dumps({"type": "result", "id": ident, "ok": True, "value": value})


def result_error(ident: str | int | None, error: BrioError) -> str:
    """A failed result message carrying the error's kind, title and message."""
    return dumps({"type": "result", "id": ident, "ok": False, "error": error.to_dict()})


__all__ = [
    "ANSWERS",
    "CLIENT_MAX_MESSAGE",
    "CLOSE_SHUTDOWN",
    "CLOSE_SLOW",
    "COMMANDS",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_QUEUE_LIMIT",
    "DEFAULT_REPLAY",
    "PROTOCOL",
    "QUERIES",
    "STREAMED_EVENTS",
    "Command",
    "dumps",
    "parse_command",
    "result_error",
    "result_ok",
]

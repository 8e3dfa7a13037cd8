"""The scripted provider and the one replies-file format it shares with the fake servers.

:class:`ScriptedProvider` is a real :class:`~briotui.kernel.llm.types.Provider`, clearly
labelled "scripted" wherever a reply's provenance shows; users run it with
``--provider scripted:FILE``. The fake model servers of ``briotui dev fake-llm``
(``briotui.devtools.loopback``) read the very same files through :func:`load_replies`,
so one file drives either.

A replies file is a JSON array; each element answers one request:

- a string: the reply text;
- an object with any of the attributes of :class:`ScriptedReply`, e.g.
  ``{"text": "...", "delay_ms": 0, "error": null, "model": "...", "agent": "coder",
  "match": "words"}``. ``delay_ms`` waits before answering (to test time limits),
  ``error`` fails the request (one of :data:`ERROR_KINDS`, or a message), and
  ``agent`` / ``match`` make the reply answer only a request from that agent whose
  messages contain those words (agents that run in parallel ask in no fixed order).

A reply may call tools instead of (or besides) answering in text: ``"tool_calls":
[{"name": "read_file", "arguments": {"path": "calc.py", "start": 120, "end": 180}}]``
(an ``"id"`` is optional). The scripted provider returns them as the completion's tool
calls; the fake servers send them in each vendor's wire format. ``match`` also looks
at the tool results the request carries, so a reply can answer what a read returned.

A request gets the first unused reply that fits it. When the replies run out, the next
request fails with a clear error.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from briotui.kernel.errors import ConfigError, ProviderError
from briotui.kernel.llm.tools import arguments_text, as_text_request
from briotui.kernel.llm.types import (
    Completion,
    CompletionRequest,
    DeltaCallback,
    ToolCall,
    Usage,
)

SCRIPTED_MODEL = "scripted"

ErrorKind = Literal[
    "auth", "permission", "not-found", "bad-request", "rate-limit", "server", "overloaded"
]
"""Error kinds a reply can name; the fake servers answer each with the vendor's own
status code and JSON shape, the scripted provider with the matching failure cause."""

ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)

_MALFORMED = "Scripted replies are malformed"


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer, for the scripted provider and the fake model servers alike.

    Attributes:
        text: The reply text.
        chunks: How the text is split into deltas; by default, word by word.
        input_tokens: Reported prompt tokens; by default about a token per 4 characters.
        output_tokens: Reported reply tokens; by default about a token per 4 characters.
        error: Fail the request instead of answering: one of :data:`ERROR_KINDS`, or a
            message (a server error on a fake server).
        error_message: The error's message when ``error`` is a kind.
        mid_stream_error: After the chunks, fail the stream (a kind or a message).
        delay_ms: Wait before answering.
        chunk_delay_ms: Wait between deltas.
        drop_after: Break the stream after this many deltas (a fake server closes
            the connection).
        malformed_after: Break the stream after this many deltas (a fake server sends
            an event that is not JSON).
        truncate_after: End the stream after this many deltas without its final event.
            The scripted provider fails each of these three as "malformed", as the
            vendor providers do.
        model: The model named in the reply; by default "scripted" for the scripted
            provider and the requested model on a fake server.
        stop: Why the reply ended: "end" or "max-tokens".
        agent: Answer only a request from this agent (the scripted provider; the wire
            carries no agent name, so the fake servers ignore it).
        match: Answer only a request whose messages (or tool results) contain these words.
        tool_calls: Tool calls the reply makes, each ``{"name", "arguments", "id"?}``.
    """

    text: str = ""
    chunks: tuple[str, ...] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    error_message: str | None = None
    mid_stream_error: str | None = None
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    drop_after: int | None = None
    malformed_after: int | None = None
    truncate_after: int | None = None
    model: str | None = None
    stop: Literal["end", "max-tokens"] = "end"
    agent: str | None = None
    match: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def pieces(self) -> list[str]:
        """The deltas this reply streams, in order."""
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\S+\s*|\s+", self.text)

    def fits(self, request: CompletionRequest) -> bool:
        """Whether this reply may answer ``request``."""
        if self.agent is not None and self.agent != request.agent:
            return False
        return self.match is None or self.match in request_text(request)

    def fits_prompt(self, prompt: str) -> bool:
        """Whether this reply may answer a request whose messages read ``prompt``."""
        return self.match is None or self.match in prompt

    @classmethod
    def from_json(cls, raw: Any, where: str = "reply") -> ScriptedReply:
        """Build a reply from its JSON form: a string, or an object of the attributes.

        Raises:
            ConfigError: the value is neither, names an unknown attribute, or gives one
                a value of the wrong type.
        """
        if isinstance(raw, str):
            return cls(text=raw)
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{where} is a JSON {type(raw).__name__}; write a string or an object like "
                '{"text": "hi", "delay_ms": 20}.',
                title=_MALFORMED,
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"{where} has unknown keys {unknown}; known keys are {sorted(known)}.",
                title=_MALFORMED,
            )
        values = dict(raw)
        for key, value in raw.items():
            check, expected = _CHECKS[key]
            if not check(value):
                raise ConfigError(f"{where}: {key} {value!r} is not {expected}.", title=_MALFORMED)
        if values.get("chunks") is not None:
            values["chunks"] = tuple(values["chunks"])
        if "tool_calls" in values:
            values["tool_calls"] = tuple(
                ToolCall(
                    call.get("id") or f"call_{zlib.crc32(where.encode()):08x}_{n}",
                    call["name"],
                    arguments_text(call.get("arguments")),
                )
                for n, call in enumerate(values["tool_calls"])
            )
        for key in ("delay_ms", "chunk_delay_ms"):
            if key in values:
                values[key] = max(0, values[key])
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_chunks(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(c, str) for c in value)


def _is_tool_calls(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict)
        and isinstance(c.get("name"), str)
        and c["name"]
        and set(c) <= {"id", "name", "arguments"}
        and isinstance(c.get("arguments", {}), dict | str)
        and isinstance(c.get("id", ""), str)
        for c in value
    )


def request_text(request: CompletionRequest) -> str:
    """Everything a request's messages say: their text and their tool results."""
    parts: list[str] = []
    for m in request.messages:
        parts.append(m.content)
        parts.extend(r.content for r in m.tool_results)
    return "".join(parts)


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_STR = (_is_str, "a string")
_INT = (_is_int, "a whole number")
_OPT_STR = (_or_null(_is_str), "null or a string")
_OPT_INT = (_or_null(_is_int), "null or a whole number")
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": _STR,
    "chunks": (_or_null(_is_chunks), "null or a list of strings"),
    "input_tokens": _OPT_INT,
    "output_tokens": _OPT_INT,
    "error": _OPT_STR,
    "error_message": _OPT_STR,
    "mid_stream_error": _OPT_STR,
    "delay_ms": _INT,
    "chunk_delay_ms": _INT,
    "drop_after": _OPT_INT,
    "malformed_after": _OPT_INT,
    "truncate_after": _OPT_INT,
    "model": _OPT_STR,
    "stop": (lambda v: v in ("end", "max-tokens"), '"end" or "max-tokens"'),
    "agent": _OPT_STR,
    "match": _OPT_STR,
    "tool_calls": (
        _is_tool_calls,
        'a list of {"name": "...", "arguments": {...}} objects (with an optional "id")',
    ),
}
"""Each JSON attribute of a reply: how to check its value, and what it must be."""


def load_replies(path: Path | str) -> list[ScriptedReply]:
    """Read a replies file: a JSON array of :class:`ScriptedReply` JSON forms.

    Raises:
        ConfigError: the file is missing, not JSON, or not such an array.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file} does not exist. Write a JSON array of replies, e.g. "
            '["first reply", {"text": "slow reply", "delay_ms": 50}].',
            title="Scripted replies not found",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{file} is not readable JSON ({exc}). It must be a JSON array of replies.",
            title=_MALFORMED,
        ) from None
    if not isinstance(data, list):
        raise ConfigError(
            f"{file} holds a JSON {type(data).__name__}, not an array of replies.",
            title=_MALFORMED,
        )
    return [ScriptedReply.from_json(item, f"{file} element {i + 1}") for i, item in enumerate(data)]


def approx_tokens(text: str) -> int:
    """A deterministic token estimate (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _cause(error: str) -> str:
    """The failure cause a scripted error stands for (see ``llm.failures``)."""
    if error == "permission":
        return "auth"
    return error if error in ERROR_KINDS else "scripted"


class ScriptedProvider:
    """Answers each request with the next scripted reply, streamed word by word."""

    name = "scripted"

    def __init__(
        self, replies: Sequence[ScriptedReply], *, source: str = "<memory>", tools: bool = True
    ) -> None:
        self.tools = tools
        """Whether requests' tools are taken natively (else the conversation goes as text)."""
        self._replies = list(replies)
        self._used = [False] * len(self._replies)
        self._source = source
        self._lock = asyncio.Lock()

    @classmethod
    def from_file(cls, path: Path | str, *, tools: bool = True) -> ScriptedProvider:
        """Load replies from a JSON file (see :func:`load_replies`).

        Raises:
            ConfigError: the file is missing, not JSON, or not an array of replies.
        """
        return cls(load_replies(path), source=str(path), tools=tools)

    @property
    def remaining(self) -> int:
        """How many replies are left."""
        return self._used.count(False)

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Answer with the next scripted reply."""
        offered = bool(request.tools) and self.tools
        if not offered:
            request = as_text_request(request)
        async with self._lock:
            index = next(
                (i for i, r in enumerate(self._replies) if not self._used[i] and r.fits(request)),
                None,
            )
            if index is None:
                left = self._used.count(False)
                raise ProviderError(
                    f"No scripted reply is left for this request from {request.agent or 'an agent'}"
                    f" ({left} of {len(self._replies)} unused in {self._source}, none fitting); "
                    "add replies to the file for this run.",
                    provider=self.name,
                    model=SCRIPTED_MODEL,
                    cause="exhausted",
                    title="Scripted replies ran out",
                )
            self._used[index] = True
            reply = self._replies[index]
        model = reply.model or SCRIPTED_MODEL
        if reply.delay_ms:
            await asyncio.sleep(reply.delay_ms / 1000)
        if reply.error is not None:
            message = reply.error_message or reply.error
            raise ProviderError(message, provider=self.name, model=model, cause=_cause(reply.error))
        pieces = reply.pieces()
        broken = [
            n
            for n in (reply.drop_after, reply.malformed_after, reply.truncate_after)
            if n is not None
        ]
        for piece in pieces[: min(broken)] if broken else pieces:
            if on_delta is not None:
                on_delta(piece)
            if reply.chunk_delay_ms:
                await asyncio.sleep(reply.chunk_delay_ms / 1000)
        if broken:
            raise ProviderError(
                f"The scripted stream broke after {min(broken)} deltas.",
                provider=self.name,
                model=model,
                cause="malformed",  # what the vendor providers make of a broken stream
            )
        if reply.mid_stream_error is not None:
            raise ProviderError(
                reply.error_message or reply.mid_stream_error,
                provider=self.name,
                model=model,
                cause=_cause(reply.mid_stream_error),
            )
        if reply.tool_calls and not offered:
            raise ProviderError(
                f"A scripted reply calls tools ({', '.join(c.name for c in reply.tool_calls)}) "
                "but the request offered none; script a text reply for it.",
                provider=self.name,
                model=model,
                cause="malformed",
            )
        text = "".join(pieces)
        prompt = request_text(request)
        tokens_in = approx_tokens(prompt) if reply.input_tokens is None else reply.input_tokens
        tokens_out = approx_tokens(text) if reply.output_tokens is None else reply.output_tokens
        return Completion(
            text=text,
            provider=self.name,
            model=model,
            usage=Usage(tokens_in, tokens_out),
            stop_reason="tool-use" if reply.tool_calls else reply.stop,
            tool_calls=reply.tool_calls,
            tools_offered=offered,
        )

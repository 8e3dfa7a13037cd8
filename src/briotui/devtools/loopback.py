"""Fake model servers on 127.0.0.1 that speak the vendors' real wire protocols, for tests and tries.

Each :class:`LoopbackServer` speaks one protocol, so the official SDK clients
(``anthropic.AsyncAnthropic``, ``ollama.AsyncClient``, ``openai.AsyncOpenAI``) talk to
it unchanged:

- ``anthropic``: ``POST /v1/messages`` answered with server-sent events
  (``message_start``, ``content_block_delta``..., ``message_delta`` with usage,
  ``message_stop``); errors as ``{"type": "error", "error": {"type": ..., "message": ...}}``;
  ``GET /v1/models``.
- ``ollama``: ``POST /api/chat`` answered with NDJSON lines, the last one ``"done": true``
  carrying ``prompt_eval_count``/``eval_count``; errors as ``{"error": "..."}``;
  ``GET /api/tags`` and ``GET /api/version``.
- ``openai``: ``POST /v1/chat/completions`` answered with SSE ``chat.completion.chunk``
  objects, the usage chunk when ``stream_options.include_usage`` is set, then
  ``data: [DONE]``; errors as ``{"error": {"message", "type", "param", "code"}}``;
  ``GET /v1/models``.

A reply's tool calls are sent in each vendor's tool format: Anthropic ``tool_use``
content blocks whose input streams as ``input_json_delta`` pieces and ``stop_reason:
"tool_use"``; OpenAI ``delta.tool_calls`` pieces (id and name, then the arguments in
fragments) and ``finish_reason: "tool_calls"``; Ollama ``message.tool_calls`` whole in
one line. Tool results come back in the next request, recorded like any request.

Replies are scripted (:class:`FakeReply`, the scripted provider's
:class:`~briotui.kernel.llm.scripted.ScriptedReply`, read from the same files by the same
:func:`~briotui.kernel.llm.scripted.load_replies`): text and its chunks, usage, an error
with the vendor's status code and JSON shape, delays, a connection dropped mid-stream, a
garbage event, or a stream that ends without its final event. The server records every request
it receives and notices when a client hangs up mid-reply (:attr:`LoopbackServer.disconnects`).

Only the standard library is used (``asyncio`` streams). The server binds 127.0.0.1
only, bounds header and body sizes and requests per connection, and stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, get_args

from briotui.kernel.errors import ConfigError
from briotui.kernel.llm.scripted import (
    ERROR_KINDS,
    ErrorKind,
    ScriptedReply,
    approx_tokens,
)
from briotui.kernel.llm.tools import arguments_object
from briotui.kernel.llm.types import ToolCall
from briotui.kernel.paths import user_config_dir

WireProtocol = Literal["anthropic", "ollama", "openai"]
"""The wire protocols a loopback server can speak."""

PROTOCOLS: tuple[WireProtocol, ...] = get_args(WireProtocol)

LOOPBACK_HOST = "127.0.0.1"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_REQUESTS_PER_CONNECTION = 10_000
READ_IDLE_TIMEOUT_S = 30.0

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Overloaded",
}


FakeReply = ScriptedReply
"""A loopback server's scripted answer: the scripted provider's reply, one format for both."""


def fault(error: str, message: str | None) -> tuple[ErrorKind, str | None]:
    """The vendor error a reply's ``error`` (a kind, or a message) is served as.

    Args:
        error: One of :data:`ERROR_KINDS`, or a message (served as a server error).
        message: The reply's ``error_message``.
    """
    for kind in ERROR_KINDS:
        if error == kind:
            return kind, message
    return "server", message or error


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the loopback server saw it (secrets are not kept).

    Attributes:
        method: The HTTP method.
        path: The request path, without the query.
        body: The decoded JSON body, or None.
        had_credentials: Whether an API key header was present.
    """

    method: str
    path: str
    body: Any
    had_credentials: bool


class _Disconnected(Exception):
    """The client hung up while the server was answering."""


@dataclass
class _Wire:
    """The bytes of one protocol's stream, built per reply."""

    protocol: WireProtocol
    model: str
    include_usage: bool
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])

    # --- errors -----------------------------------------------------------------------

    def error(self, kind: ErrorKind, message: str | None) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body of an error, in this vendor's shape."""
        if self.protocol == "anthropic":
            status, etype, default = {
                "auth": (401, "authentication_error", "invalid x-api-key"),
                "permission": (403, "permission_error", "Your API key does not have permission"),
                "not-found": (404, "not_found_error", f"model: {self.model}"),
                "bad-request": (400, "invalid_request_error", "messages: field required"),
                "rate-limit": (429, "rate_limit_error", "Number of requests has exceeded limit"),
                "server": (500, "api_error", "Internal server error"),
                "overloaded": (529, "overloaded_error", "Overloaded"),
            }[kind]
            body: dict[str, Any] = {
                "type": "error",
                "error": {"type": etype, "message": message or default},
                "request_id": f"req_{self.msg_id}",
            }
            return status, body
        if self.protocol == "openai":
            status, etype, code, default = {
                "auth": (
                    401,
                    "invalid_request_error",
                    "invalid_api_key",
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                ),
                "permission": (403, "invalid_request_error", None, "Permission denied"),
                "not-found": (
                    404,
                    "invalid_request_error",
                    "model_not_found",
                    f"The model `{self.model}` does not exist or you do not have access to it.",
                ),
                "bad-request": (
                    400,
                    "invalid_request_error",
                    None,
                    "'messages' is a required property",
                ),
                "rate-limit": (
                    429,
                    "requests",
                    "rate_limit_exceeded",
                    f"Rate limit reached for {self.model}. Please try again in 1s.",
                ),
                "server": (
                    500,
                    "server_error",
                    None,
                    "The server had an error while processing your request. Sorry about that!",
                ),
                "overloaded": (
                    503,
                    "server_error",
                    None,
                    "The engine is currently overloaded, please try again later",
                ),
            }[kind]
            return status, {
                "error": {"message": message or default, "type": etype, "param": None, "code": code}
            }
        status, default = {
            "auth": (401, "unauthorized"),
            "permission": (403, "forbidden"),
            "not-found": (404, f"model '{self.model}' not found, try pulling it first"),
            "bad-request": (400, "invalid request: messages must not be empty"),
            "rate-limit": (429, "too many requests"),
            "server": (500, "llama runner process has terminated: exit status 2"),
            "overloaded": (
                503,
                "server busy, please try again.  maximum pending requests exceeded",
            ),
        }[kind]
        return status, {"error": message or default}

    def stream_error(self, kind: ErrorKind, message: str | None) -> bytes:
        """An error sent inside an already started stream."""
        _, body = self.error(kind, message)
        if self.protocol == "anthropic":
            return _sse(body, "error")
        if self.protocol == "openai":
            return _sse(body)
        return _line(body)

    # --- stream events ----------------------------------------------------------------

    def head(self, input_tokens: int) -> list[bytes]:
        """The events before the first delta."""
        if self.protocol == "anthropic":
            message: dict[str, Any] = {
                "id": f"msg_{self.msg_id}",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": self.model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            }
            return [
                _sse({"type": "message_start", "message": message}, "message_start"),
                _sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                ),
                _sse({"type": "ping"}, "ping"),
            ]
        if self.protocol == "openai":
            return [_sse(self._openai_chunk({"role": "assistant", "content": ""}, None))]
        return []

    def delta(self, text: str) -> bytes:
        """One text delta."""
        if self.protocol == "anthropic":
            return _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            )
        if self.protocol == "openai":
            return _sse(self._openai_chunk({"content": text}, None))
        return _line(
            {
                "model": self.model,
                "created_at": _now_iso(),
                "message": {"role": "assistant", "content": text},
                "done": False,
            }
        )

    def garbage(self) -> bytes:
        """An event whose data is not JSON."""
        if self.protocol == "anthropic":
            return b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
        if self.protocol == "openai":
            return b'data: {"id": "chatcmpl-broken", "choi\n\n'
        return b'{"model": "broken", "mess\n'

    def tool_calls(self, calls: Sequence[ToolCall]) -> list[bytes]:
        """The events of a reply's tool calls, after its text (Anthropic: after the text
        block's ``content_block_stop``, which :meth:`tail` then leaves out)."""
        events: list[bytes] = []
        if self.protocol == "anthropic":
            events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
            for n, call in enumerate(calls, 1):
                block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
                events.append(
                    _sse(
                        {"type": "content_block_start", "index": n, "content_block": block},
                        "content_block_start",
                    )
                )
                half = len(call.arguments) // 2  # the input streams in pieces
                for piece in (call.arguments[:half], call.arguments[half:]):
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    events.append(
                        _sse(
                            {"type": "content_block_delta", "index": n, "delta": delta},
                            "content_block_delta",
                        )
                    )
                events.append(
                    _sse({"type": "content_block_stop", "index": n}, "content_block_stop")
                )
            return events
        if self.protocol == "openai":
            for n, call in enumerate(calls):
                head = {
                    "index": n,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                events.append(_sse(self._openai_chunk({"tool_calls": [head]}, None)))
                half = len(call.arguments) // 2
                for piece in (call.arguments[:half], call.arguments[half:]):
                    more = {"index": n, "function": {"arguments": piece}}
                    events.append(_sse(self._openai_chunk({"tool_calls": [more]}, None)))
            return events
        message = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": c.name, "arguments": arguments_object(c.arguments)}}
                for c in calls
            ],
        }
        return [
            _line(
                {"model": self.model, "created_at": _now_iso(), "message": message, "done": False}
            )
        ]

    def tail(
        self, input_tokens: int, output_tokens: int, stop: str, *, tools: bool = False
    ) -> list[bytes]:
        """The events after the last delta (and the tool calls), with usage and stop reason."""
        if self.protocol == "anthropic":
            reason = "tool_use" if tools else "end_turn" if stop == "end" else "max_tokens"
            closing = (
                []
                if tools
                else [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop")]
            )
            return [
                *closing,
                _sse(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": None},
                        "usage": {"output_tokens": output_tokens},
                    },
                    "message_delta",
                ),
                _sse({"type": "message_stop"}, "message_stop"),
            ]
        if self.protocol == "openai":
            reason = "tool_calls" if tools else "stop" if stop == "end" else "length"
            events = [_sse(self._openai_chunk({}, reason))]
            if self.include_usage:
                chunk = self._openai_chunk({}, None)
                chunk["choices"] = []
                chunk["usage"] = {
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                }
                events.append(_sse(chunk))
            events.append(b"data: [DONE]\n\n")
            return events
        return [
            _line(
                {
                    "model": self.model,
                    "created_at": _now_iso(),
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop" if stop == "end" else "length",
                    "total_duration": 1_000_000,
                    "load_duration": 10_000,
                    "prompt_eval_count": input_tokens,
                    "prompt_eval_duration": 100_000,
                    "eval_count": output_tokens,
                    "eval_duration": 800_000,
                }
            )
        ]

    def _openai_chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.msg_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    @property
    def content_type(self) -> str:
        return "application/x-ndjson" if self.protocol == "ollama" else "text/event-stream"


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _line(data: Any) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _prompt_text(protocol: WireProtocol, body: dict[str, Any]) -> str:
    parts: list[str] = []
    if protocol == "anthropic" and isinstance(body.get("system"), str):
        parts.append(body["system"])
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                inner = block.get("content") if block.get("type") == "tool_result" else None
                if isinstance(inner, str):
                    parts.append(inner)
                elif isinstance(inner, list):
                    parts.extend(str(b.get("text", "")) for b in inner if isinstance(b, dict))
                else:
                    parts.append(str(block.get("text", "")))
    return "".join(parts)


DEFAULT_FAKE_MODEL = "fake-model"
"""The model name the fake servers list when they serve any model."""


class LoopbackServer:
    """A fake model server for one wire protocol, on 127.0.0.1.

    Use it as an async context manager, or call :meth:`start` and :meth:`stop`::

        async with LoopbackServer("anthropic", [FakeReply("Hello!")]) as server:
            client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="test")

    Args:
        protocol: Which vendor's protocol to speak.
        replies: The scripted replies, answered in order.
        port: The TCP port; 0 picks a free one.
        api_key: When set, requests must carry this key (else the vendor's 401).
        models: When set, a request for any other model gets the vendor's 404.
        cycle: Start over at the first reply when the script runs out (for
            benchmarks and manual tries); otherwise the server answers a 500 error.
    """

    def __init__(
        self,
        protocol: WireProtocol,
        replies: Iterable[FakeReply] = (),
        *,
        port: int = 0,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        cycle: bool = False,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"Unknown protocol {protocol!r}; pick one of {', '.join(PROTOCOLS)}.",
                title="Unknown fake-llm protocol",
            )
        self.protocol: WireProtocol = protocol
        self._script: list[FakeReply] = list(replies)
        self._queue: deque[FakeReply] = deque(self._script)
        self._port = port
        self._api_key = api_key
        self._models = set(models) if models is not None else None
        self._cycle = cycle
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.requests: list[ReceivedRequest] = []
        """Every request received, in order (the completion requests and the probes)."""
        self.disconnects = 0
        """How many times a client hung up before its reply was complete."""
        self.disconnected = asyncio.Event()
        """Set each time a client hangs up before its reply was complete."""

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 and start answering."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve_connection, LOOPBACK_HOST, self._port, limit=MAX_HEADER_BYTES
        )

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()
        self._server = None

    async def serve_forever(self) -> None:
        """Start, then answer until cancelled."""
        await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.stop()

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- addresses and script ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the loopback server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host_url(self) -> str:
        """``http://127.0.0.1:PORT``: the Anthropic and Ollama clients' base URL."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL the vendor's SDK wants (``.../v1`` for OpenAI)."""
        return self.host_url + "/v1" if self.protocol == "openai" else self.host_url

    def push(self, *replies: FakeReply) -> None:
        """Append replies to the script."""
        self._script.extend(replies)
        self._queue.extend(replies)

    @property
    def completion_requests(self) -> list[ReceivedRequest]:
        """The received chat/message requests (not the probes)."""
        return [r for r in self.requests if r.method == "POST"]

    def _next_reply(self, prompt: str) -> FakeReply | None:
        """The first reply left whose ``match`` fits ``prompt`` (``agent`` is not on the wire)."""
        if not self._queue and self._cycle and self._script:
            self._queue.extend(self._script)
        for index, reply in enumerate(self._queue):
            if reply.fits_prompt(prompt):
                del self._queue[index]
                return reply
        return None

    # --- HTTP -------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                keep_alive = await self._serve_request(reader, writer)
                if not keep_alive:
                    break
        except (_Disconnected, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # stop() closes connections by cancelling them; end quietly
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_IDLE_TIMEOUT_S)
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._respond_json(writer, 413, {"error": "request head too large"}, False)
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            await self._respond_json(writer, 400, {"error": "bad request line"}, False)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or "0")
        if length > MAX_BODY_BYTES:
            await self._respond_json(writer, 413, {"error": "request body too large"}, False)
            return False
        raw = await asyncio.wait_for(reader.readexactly(length), READ_IDLE_TIMEOUT_S)
        keep_alive = headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = None
        credentials = headers.get("x-api-key") or headers.get("authorization", "")
        credentials = credentials.removeprefix("Bearer ").strip()
        self.requests.append(ReceivedRequest(method, path, body, bool(credentials)))
        key_ok = self._api_key is None or credentials == self._api_key

        if method == "GET":
            return await self._answer_probe(writer, path, key_ok, keep_alive)
        chat_path = {
            "anthropic": "/v1/messages",
            "ollama": "/api/chat",
            "openai": "/v1/chat/completions",
        }[self.protocol]
        if method != "POST" or path != chat_path:
            await self._respond_json(
                writer, 404, {"error": f"no route {method} {path}"}, keep_alive
            )
            return keep_alive
        request = body if isinstance(body, dict) else {}
        model = str(request.get("model", ""))
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        wire = _Wire(self.protocol, model, include_usage)
        if not isinstance(body, dict) or not request.get("messages"):
            status, err = wire.error("bad-request", None)
            await self._respond_json(writer, status, err, keep_alive)
            return keep_alive
        if not key_ok:
            status, err = wire.error("auth", None)
            await self._respond_json(writer, status, err, keep_alive)
            return keep_alive
        if self._models is not None and model not in self._models:
            status, err = wire.error("not-found", None)
            await self._respond_json(writer, status, err, keep_alive)
            return keep_alive
        reply = self._next_reply(_prompt_text(self.protocol, request))
        if reply is None:
            status, err = wire.error(
                "server", "loopback server: no scripted reply left for this request"
            )
            await self._respond_json(writer, status, err, keep_alive)
            return keep_alive
        if reply.model:
            wire = replace(wire, model=reply.model)
        if reply.delay_ms:
            await self._pause(reader, reply.delay_ms)
        if reply.error is not None:
            status, err = wire.error(*fault(reply.error, reply.error_message))
            await self._respond_json(writer, status, err, keep_alive)
            return keep_alive
        if request.get("stream") is False:
            await self._respond_whole(writer, wire, reply, request, keep_alive)
            return keep_alive
        return await self._stream(reader, writer, wire, reply, request, keep_alive)

    async def _answer_probe(
        self, writer: asyncio.StreamWriter, path: str, key_ok: bool, keep_alive: bool
    ) -> bool:
        # Any model is served when none is set; list the name `briotui dev fake-llm`
        # prints, so a provider check over that config finds its model.
        names = sorted(self._models) if self._models is not None else [DEFAULT_FAKE_MODEL]
        wire = _Wire(self.protocol, "", False)
        if self.protocol == "ollama" and path == "/api/version":
            await self._respond_json(writer, 200, {"version": "0.0.0-loopback"}, keep_alive)
        elif self.protocol == "ollama" and path == "/api/tags":
            models = [
                {"name": n, "model": n, "modified_at": _now_iso(), "size": 0, "digest": "0" * 64}
                for n in names
            ]
            await self._respond_json(writer, 200, {"models": models}, keep_alive)
        elif self.protocol != "ollama" and path == "/v1/models":
            if not key_ok:
                status, err = wire.error("auth", None)
                await self._respond_json(writer, status, err, keep_alive)
            elif self.protocol == "anthropic":
                data = [
                    {
                        "type": "model",
                        "id": n,
                        "display_name": n,
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                    for n in names
                ]
                page = {"data": data, "has_more": False, "first_id": None, "last_id": None}
                await self._respond_json(writer, 200, page, keep_alive)
            else:
                listing = [
                    {"id": n, "object": "model", "created": 0, "owned_by": "loopback"}
                    for n in names
                ]
                page = {"object": "list", "data": listing}
                await self._respond_json(writer, 200, page, keep_alive)
        else:
            await self._respond_json(writer, 404, {"error": f"no route GET {path}"}, keep_alive)
        return keep_alive

    async def _respond_json(
        self, writer: asyncio.StreamWriter, status: int, body: Any, keep_alive: bool
    ) -> None:
        payload = json.dumps(body).encode()
        writer.write(
            self._head(status, "application/json", keep_alive, length=len(payload)) + payload
        )
        await writer.drain()

    async def _respond_whole(
        self,
        writer: asyncio.StreamWriter,
        wire: _Wire,
        reply: FakeReply,
        request: dict[str, Any],
        keep_alive: bool,
    ) -> None:
        text = "".join(reply.pieces())
        tin = reply.input_tokens
        tin = approx_tokens(_prompt_text(self.protocol, request)) if tin is None else tin
        tout = approx_tokens(text) if reply.output_tokens is None else reply.output_tokens
        body: dict[str, Any]
        if self.protocol == "anthropic":
            body = {
                "id": f"msg_{wire.msg_id}",
                "type": "message",
                "role": "assistant",
                "model": wire.model,
                "content": [{"type": "text", "text": text}]
                + [
                    {
                        "type": "tool_use",
                        "id": c.id,
                        "name": c.name,
                        "input": arguments_object(c.arguments),
                    }
                    for c in reply.tool_calls
                ],
                "stop_reason": "tool_use"
                if reply.tool_calls
                else "end_turn"
                if reply.stop == "end"
                else "max_tokens",
                "stop_sequence": None,
                "usage": {"input_tokens": tin, "output_tokens": tout},
            }
        elif self.protocol == "openai":
            body = {
                "id": f"chatcmpl-{wire.msg_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": wire.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text}
                        | (
                            {
                                "tool_calls": [
                                    {
                                        "id": c.id,
                                        "type": "function",
                                        "function": {"name": c.name, "arguments": c.arguments},
                                    }
                                    for c in reply.tool_calls
                                ]
                            }
                            if reply.tool_calls
                            else {}
                        ),
                        "finish_reason": "tool_calls"
                        if reply.tool_calls
                        else "stop"
                        if reply.stop == "end"
                        else "length",
                    }
                ],
                "usage": {
                    "prompt_tokens": tin,
                    "completion_tokens": tout,
                    "total_tokens": tin + tout,
                },
            }
        else:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": arguments_object(c.arguments)}}
                    for c in reply.tool_calls
                ]
            body = {
                "model": wire.model,
                "created_at": _now_iso(),
                "message": message,
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": tin,
                "eval_count": tout,
            }
        await self._respond_json(writer, 200, body, keep_alive)

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        wire: _Wire,
        reply: FakeReply,
        request: dict[str, Any],
        keep_alive: bool,
    ) -> bool:
        pieces = reply.pieces()
        tin = reply.input_tokens
        tin = approx_tokens(_prompt_text(self.protocol, request)) if tin is None else tin
        tout = (
            approx_tokens("".join(pieces)) if reply.output_tokens is None else reply.output_tokens
        )
        writer.write(self._head(200, wire.content_type, keep_alive, length=None))
        for event in wire.head(tin):
            await self._chunk(writer, event)
        for index, piece in enumerate(pieces):
            if reply.drop_after is not None and index >= reply.drop_after:
                return await self._drop(writer)
            if reply.malformed_after is not None and index == reply.malformed_after:
                await self._chunk(writer, wire.garbage())
            if reply.truncate_after is not None and index >= reply.truncate_after:
                await self._end_chunks(writer)
                return keep_alive
            await self._chunk(writer, wire.delta(piece))
            if reply.chunk_delay_ms:
                await self._pause(reader, reply.chunk_delay_ms)
        if reply.drop_after is not None and reply.drop_after >= len(pieces):
            return await self._drop(writer)
        if reply.malformed_after is not None and reply.malformed_after >= len(pieces):
            await self._chunk(writer, wire.garbage())
        if reply.truncate_after is not None:
            await self._end_chunks(writer)
            return keep_alive
        if reply.mid_stream_error is not None:
            await self._chunk(
                writer, wire.stream_error(*fault(reply.mid_stream_error, reply.error_message))
            )
        else:
            for event in wire.tool_calls(reply.tool_calls) if reply.tool_calls else ():
                await self._chunk(writer, event)
            for event in wire.tail(tin, tout, reply.stop, tools=bool(reply.tool_calls)):
                await self._chunk(writer, event)
        await self._end_chunks(writer)
        return keep_alive

    async def _drop(self, writer: asyncio.StreamWriter) -> bool:
        await writer.drain()
        writer.transport.abort()
        return False

    async def _pause(self, reader: asyncio.StreamReader, delay_ms: int) -> None:
        """Wait ``delay_ms``, noticing if the client hangs up meanwhile."""
        try:
            data = await asyncio.wait_for(reader.read(1), delay_ms / 1000)
        except TimeoutError:
            return
        if not data:
            self.disconnects += 1
            self.disconnected.set()
            raise _Disconnected

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        try:
            await writer.drain()
        except ConnectionError:
            self.disconnects += 1
            self.disconnected.set()
            raise _Disconnected from None

    async def _end_chunks(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _head(status: int, content_type: str, keep_alive: bool, *, length: int | None) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
            lines.append("Cache-Control: no-cache")
        else:
            lines.append(f"Content-Length: {length}")
        if status == 429:
            lines.append("Retry-After: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def env_hint(
    protocol: WireProtocol, base_url: str, *, key: str = "fake-key", model: str = "fake-model"
) -> list[str]:
    """Shell lines and a config snippet that point briotui at a loopback server.

    Args:
        protocol: The server's protocol.
        base_url: The server's :attr:`LoopbackServer.base_url`.
        key: The key to export (the server accepts any unless it was given one).
        model: The model name to configure.

    Returns:
        Lines to print for the user.
    """
    key_env = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}.get(protocol, "")
    env = [f"export {key_env}={key}"] if key_env else [f"export OLLAMA_HOST={base_url}"]
    config = [
        "[llm]",
        f'fallback = ["fake-{protocol}"]',
        "",
        "[[llm.providers]]",
        f'name = "fake-{protocol}"',
        f'kind = "{protocol}"',
        f'base_url = "{base_url}"',
        f'model = "{model}"',
        f'api_key_env = "{key_env}"',
    ]
    return [
        *env,
        "",
        f"# in your user config, {user_config_dir() / 'config.toml'}",
        "# (a project's .brio/config.toml may not send a key to a URL it chooses):",
        *config,
    ]


def parse_protocol(value: str) -> WireProtocol:
    """Check a protocol name from the command line.

    Raises:
        ConfigError: it is not one of :data:`PROTOCOLS`.
    """
    for protocol in PROTOCOLS:
        if value == protocol:
            return protocol
    raise ConfigError(
        f"Unknown protocol {value!r}; pick one of {', '.join(PROTOCOLS)}.",
        title="Unknown fake-llm protocol",
    )


def replies_of(texts: Sequence[str]) -> list[FakeReply]:
    """Plain text replies, one per string."""
    return [FakeReply(text=t) for t in texts]

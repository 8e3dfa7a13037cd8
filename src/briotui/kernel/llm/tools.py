"""Tool use across providers: the text form for providers without tools, labels, argument JSON.

The vendor providers write :class:`~briotui.kernel.llm.types.ToolSpec`,
:class:`~briotui.kernel.llm.types.ToolCall` and
:class:`~briotui.kernel.llm.types.ToolResult` in their own wire formats; what they share
lives here:

- :func:`as_text_request` turns a conversation with tool calls into plain messages for
  a provider that does not support tools (or a model that refuses them): the calls and
  results become text, the tools are not offered, and the model answers in text (an
  agent then reads its fenced fallback requests). This is also what a router fallback
  to such a provider sends: the conversation carries over, in text.
- :func:`label` names a call compactly for the conversation view ("read calc.py:120-180").
- :func:`arguments_object` and :func:`schema_object` parse the JSON texts the WIT carries
  for the SDKs that want objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from briotui.kernel.llm.types import CompletionRequest, Message, ToolCall, ToolSpec

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def arguments_object(arguments: str) -> dict[str, Any]:
    """A call's arguments as an object (``{}`` when the text is not a JSON object)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def arguments_text(arguments: Any) -> str:
    """Arguments as JSON text: kept when already text, dumped when an object."""
    if isinstance(arguments, str):
        return arguments or "{}"
    return json.dumps(arguments if arguments is not None else {}, separators=(",", ":"))


def schema_object(spec: ToolSpec) -> dict[str, Any]:
    """A tool's parameters schema as an object (an empty object schema if unreadable)."""
    try:
        value = json.loads(spec.parameters)
    except ValueError:
        return dict(_EMPTY_SCHEMA)
    return value if isinstance(value, dict) else dict(_EMPTY_SCHEMA)


def safe_id(call_id: str, fallback: str) -> str:
    """``call_id`` in the characters every vendor accepts (Anthropic is the strictest)."""
    cleaned = _ID_UNSAFE.sub("_", call_id)[:64]
    return cleaned or fallback


def label(call: ToolCall) -> str:
    """A short description of a call for the conversation view.

    ``read_file {"path": "calc.py", "start": 120, "end": 180}`` reads "read
    calc.py:120-180", ``search {"pattern": "def parse"}`` reads "search def parse";
    another tool reads as its name and arguments, cut to 80 characters.
    """
    args = arguments_object(call.arguments)
    if call.name == "read_file" and isinstance(args.get("path"), str):
        start, end = args.get("start"), args.get("end")
        span = ""
        if start is not None or end is not None:
            span = f":{start if start is not None else 1}-{end if end is not None else ''}"
        return f"read {args['path']}{span}"
    if call.name == "search" and isinstance(args.get("pattern"), str):
        where = args.get("path_glob")
        return f"search {args['pattern']}" + (
            f" in {where}" if isinstance(where, str) and where else ""
        )
    name = call.name
    if "__" in name:  # an MCP tool offered as server__tool: shown as server/tool
        server, _, tool = name.partition("__")
        name = f"{server}/{tool}"
    text = f"{name} {call.arguments}"
    return text if len(text) <= 80 else text[:79] + "…"


def _call_text(call: ToolCall) -> str:
    return f"[tool call {call.name} {call.arguments}]"


def as_text_request(request: CompletionRequest) -> CompletionRequest:
    """``request`` for a provider without tools: the tool turns as text, no tools offered.

    An assistant message's calls are appended to its text as ``[tool call NAME ARGS]``
    lines; a user message's results come before its text as ``[result of NAME: ...]``
    paragraphs. Nothing of the conversation is dropped.
    """
    if not request.tools and not any(m.tool_calls or m.tool_results for m in request.messages):
        return request
    messages: list[Message] = []
    for m in request.messages:
        if not m.tool_calls and not m.tool_results:
            messages.append(m)
            continue
        parts: list[str] = []
        if m.tool_results:
            for r in m.tool_results:
                failed = " (failed)" if r.is_error else ""
                parts.append(f"[result of {r.name}{failed}]\n{r.content}")
        if m.content:
            parts.append(m.content)
        if m.tool_calls:
            parts.extend(_call_text(c) for c in m.tool_calls)
        messages.append(Message(m.role, "\n\n".join(parts)))
    return replace(request, messages=tuple(messages), tools=())

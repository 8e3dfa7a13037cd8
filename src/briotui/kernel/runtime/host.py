"""The host side of the WIT contract: what each ``brio:agent`` import does, and linking.

:func:`build_linker` checks a component's imports against its world and the
functions the kernel provides, then defines every import in a ``Linker``. Each host
function is wrapped so that:

- arguments and results are converted once per type (:mod:`.values`);
- no Python exception ever escapes into wasmtime (in wasmtime-py that can crash or
  cross-talk between threads): failures become WIT ``error`` values, and the rare
  fatal case raises a ``WasmtimeError`` after recording a typed error in the context;
- results over the message-size limit are refused with ``too-large``.

One piece: it is the table of every WIT host function and the one wrapper (capability
check, error mapping, size limits) each goes through; the services behind them live
elsewhere.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import re2  # type: ignore[import-untyped]
import wasmtime
from wasmtime import component as wc

from briotui.kernel import telemetry
from briotui.kernel.agents import WIT_PACKAGE, WIT_VERSION, AgentSpec, world_imports
from briotui.kernel.caps.model import Capability, CapabilityRequest, Delegator
from briotui.kernel.errors import (
    AgentCancelled,
    BrioError,
    CapabilityDenied,
    ComponentError,
    HostError,
    NotText,
)
from briotui.kernel.llm.router import Router
from briotui.kernel.llm.tools import label as tool_label
from briotui.kernel.llm.types import (
    Completion,
    CompletionRequest,
    FailedAttempt,
    Message,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from briotui.kernel.mesh import Endpoint, Envelope, anyone
from briotui.kernel.runtime import context as ctxmod
from briotui.kernel.runtime.context import CallContext, HostTimeout, TaskHost
from briotui.kernel.runtime.events import (
    COMMAND_OUTPUT_TAIL,
    CommandRan,
    Milestone,
    ModelAttemptFailed,
    ModelDelta,
    ModelFallback,
    ModelReply,
    ModelReset,
    Progress,
)
from briotui.kernel.runtime.pyruntime import AGENT_CODE
from briotui.kernel.runtime.values import (
    Case,
    Err,
    FuncShape,
    Ok,
    component_exports,
    component_imports,
    export_shape,
    func_shape,
)
from briotui.kernel.shell.runner import INSTALL_HINT
from briotui.kernel.sqlpolicy import AgentSql
from briotui.kernel.vfs import Session
from briotui.kernel.vfs.paths import DEFAULT_POLICY
from briotui.kernel.workspace import Entry

log = logging.getLogger(__name__)

WASI_PREFIXES = (
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
)
"""WASI Preview 2 interfaces the kernel links (``Linker.add_wasip2``). The store's
WasiConfig grants no directories, no network, no environment and no stdin."""

AGENT_EXPORT = f"{WIT_PACKAGE}/agent@{WIT_VERSION}"

TYPE_ONLY_INTERFACES = frozenset({"types"})
"""Interfaces with types and no functions; any world may import them (via ``use``)."""

HostImpl = Callable[..., Any]


def _error(kind: str, message: str) -> Err[dict[str, str]]:
    return Err({"kind": kind, "message": message})


def _wit_kind(exc: BrioError) -> str:
    kind = getattr(exc, "wit_kind", None)
    return kind if isinstance(kind, str) else "failed"


def _too_large(ctx: CallContext, size: int, what: str) -> Err[dict[str, str]] | None:
    if size > ctx.limits.max_message_bytes:
        return _error(
            "too-large",
            f"{what} is {size} bytes, over this agent's limit of "
            f"{ctx.limits.max_message_bytes} bytes (max_message_bytes).",
        )
    return None


# -- log, clock ---------------------------------------------------------------------


def log_emit(ctx: CallContext, level: str, message: str) -> None:
    limit = ctx.limits.max_message_bytes
    if len(message) > limit:
        message = message[:limit] + "… [truncated]"
    ctx.emit_log(level, message)


def clock_now_ms(ctx: CallContext) -> int:
    return time.time_ns() // 1_000_000


def clock_monotonic_ns(ctx: CallContext) -> int:
    return time.monotonic_ns()


# -- llm -----------------------------------------------------------------------------


def llm_complete(ctx: CallContext, request: dict[str, Any]) -> Any:
    req = CompletionRequest(
        messages=tuple(Message(m["role"], m["content"]) for m in request["messages"]),
        max_tokens=request["max_tokens"],
        temperature=request["temperature"],
        stop=tuple(request["stop"]),
        purpose=request["purpose"],
        agent=ctx.agent,
        task_id=ctx.bindings.task_id,
    )
    completion = _complete(ctx, req)
    if isinstance(completion, Err):
        return completion
    return Ok(
        {
            "text": completion.text,
            "provider": completion.provider,
            "model": completion.model,
            "usage": _usage(completion),
            # a plain request offers no tools, so its reply never stops for one
            "stop_reason": "end"
            if completion.stop_reason == "tool-use"
            else completion.stop_reason,
        }
    )


def _tool_call(call: dict[str, Any]) -> ToolCall:
    return ToolCall(call["id"], call["name"], call["arguments"])


def llm_complete_with_tools(ctx: CallContext, request: dict[str, Any]) -> Any:
    """One completion that may call tools: the agent runs the calls and asks again."""
    req = CompletionRequest(
        messages=tuple(
            Message(
                t["role"],
                t["content"],
                tuple(_tool_call(c) for c in t["tool_calls"]),
                tuple(
                    ToolResult(r["call_id"], r["name"], r["content"], r["is_error"])
                    for r in t["tool_results"]
                ),
            )
            for t in request["turns"]
        ),
        max_tokens=request["max_tokens"],
        temperature=request["temperature"],
        stop=tuple(request["stop"]),
        purpose=request["purpose"],
        agent=ctx.agent,
        task_id=ctx.bindings.task_id,
        tools=tuple(
            ToolSpec(t["name"], t["description"], t["parameters"]) for t in request["tools"]
        ),
    )
    completion = _complete(ctx, req)
    if isinstance(completion, Err):
        return completion
    return Ok(
        {
            "text": completion.text,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments}
                for c in completion.tool_calls
            ],
            "provider": completion.provider,
            "model": completion.model,
            "usage": _usage(completion),
            "stop_reason": completion.stop_reason,
            "tools_offered": completion.tools_offered,
        }
    )


def _usage(completion: Completion) -> dict[str, int]:
    return {
        "input_tokens": completion.usage.input_tokens,
        "output_tokens": completion.usage.output_tokens,
    }


def _last_prompt(req: CompletionRequest) -> str:
    """What the agent said last, for the transcript (tool results included)."""
    if not req.messages:
        return ""
    last = req.messages[-1]
    parts = [f"[{r.name} result]\n{r.content}" for r in last.tool_results]
    return "\n\n".join([*parts, last.content] if last.content else parts)


def _complete(ctx: CallContext, req: CompletionRequest) -> Completion | Err[dict[str, str]]:
    """Ask the run's provider, in a GenAI ``chat`` span when tracing is on."""
    if ctx.bindings.trace is None:
        return _complete_untraced(ctx, req)
    attributes = {
        "gen_ai.operation.name": "chat",
        "briotui.purpose": req.purpose[:200],
        "gen_ai.request.max_tokens": req.max_tokens,
        "briotui.tools_offered": len(req.tools),
    }
    with telemetry.span("chat", attributes, parent=ctx.bindings.trace) as span:
        result = _complete_untraced(ctx, req)
        if isinstance(result, Completion):
            assert span is not None
            span.update_name(f"chat {result.model}")
            telemetry.set_attributes(
                span,
                {
                    "gen_ai.system": result.provider,
                    "gen_ai.provider.name": result.provider,
                    "gen_ai.request.model": result.model,
                    "gen_ai.response.model": result.model,
                    "gen_ai.response.finish_reasons": (result.stop_reason,),
                    "gen_ai.usage.input_tokens": result.usage.input_tokens,
                    "gen_ai.usage.output_tokens": result.usage.output_tokens,
                    "briotui.cost_usd": result.cost_usd,
                    "briotui.fallback_attempts": ctx.last_model_failures,
                },
            )
            for kind, tokens in (
                ("input", result.usage.input_tokens),
                ("output", result.usage.output_tokens),
            ):
                telemetry.count(
                    "gen_ai.client.token.usage",
                    tokens,
                    {"gen_ai.token.type": kind, "gen_ai.system": result.provider},
                )
            telemetry.count(
                "briotui.cost_usd", result.cost_usd or 0.0, {"gen_ai.system": result.provider}
            )
        else:
            telemetry.set_attributes(span, {"error.type": result.value["kind"]})
        return result


def _complete_untraced(
    ctx: CallContext, req: CompletionRequest
) -> Completion | Err[dict[str, str]]:
    """Ask the run's provider; publish the reply's events; count its usage."""
    provider = ctx.bindings.provider
    if provider is None:
        return _error(
            "unavailable",
            "No model provider is configured for this run. Pass --provider, or set one "
            "up in .brio/config.toml (see `briotui doctor`).",
        )
    if (refused := _too_large(ctx, req.text_size(), "The completion request")) is not None:
        return refused

    task_id = ctx.bindings.task_id
    failures: list[FailedAttempt] = []

    def on_delta(text: str) -> None:
        ctx.events(ModelDelta(agent=ctx.agent, instance=ctx.instance_id, task=task_id, text=text))

    def on_reset() -> None:  # the text streamed so far came from a failed attempt
        ctx.events(ModelReset(agent=ctx.agent, instance=ctx.instance_id, task=task_id))

    def on_failure(attempt: FailedAttempt) -> None:
        failures.append(attempt)
        ctx.events(
            ModelAttemptFailed(
                agent=ctx.agent,
                instance=ctx.instance_id,
                task=task_id,
                session=ctx.bindings.session_id,
                provider=attempt.provider,
                model=attempt.model,
                cause=attempt.cause,
                message=attempt.message,
            )
        )

    try:
        if isinstance(provider, Router):
            completion = ctx.await_(
                provider.complete(req, on_delta, on_reset=on_reset, on_failure=on_failure)
            )
        else:
            completion = ctx.await_(provider.complete(req, on_delta))
    except HostTimeout as exc:
        return _error("timeout", f"The model request was cut off {exc}.")
    except BrioError as exc:
        return _error("unavailable", f"{exc.title}: {exc.message}")
    ctx.last_model_failures = len(failures)
    size = len(completion.text) + sum(len(c.arguments) for c in completion.tool_calls)
    if (refused := _too_large(ctx, size, "The model's reply")) is not None:
        return refused
    ctx.usage = ctx.usage + completion.usage
    ctx.models.append((completion.provider, completion.model))
    first = failures[0] if failures else None
    fallback_from = ""
    if first is not None and first.provider != completion.provider:
        fallback_from = first.provider
        ctx.events(
            ModelFallback(
                agent=ctx.agent,
                instance=ctx.instance_id,
                task=task_id,
                from_provider=first.provider,
                from_model=first.model,
                to_provider=completion.provider,
                to_model=completion.model,
                cause=first.cause,
            )
        )
    ctx.events(
        ModelReply(
            agent=ctx.agent,
            instance=ctx.instance_id,
            task=ctx.bindings.task_id,
            purpose=req.purpose,
            prompt=_last_prompt(req),
            text=completion.text,
            provider=completion.provider,
            model=completion.model,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cost_usd=completion.cost_usd,
            fallback_from=fallback_from,
            tool_calls=tuple(tool_label(c) for c in completion.tool_calls),
        )
    )
    return completion


# -- workspace -----------------------------------------------------------------------

_NO_SESSION = (
    "This run has no session, so there are no project files to read or write. "
    "Run the agent through `briotui run`, which gives it a session."
)


def _entry(entry: Entry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "kind": entry.kind,
        "size": entry.size,
        "executable": entry.executable,
    }


def check_capability(
    ctx: CallContext, capability: Capability, target: str, reason: str = ""
) -> Err[dict[str, str]] | None:
    """Check one capability for the calling agent; a WIT ``denied`` error if refused."""
    caps = ctx.bindings.capabilities
    if caps is None:
        return None
    verdict = caps.check(
        CapabilityRequest(
            agent=ctx.agent,
            capability=capability,
            target=target,
            instance=ctx.instance_id,
            task_id=ctx.bindings.task_id,
            session_id=ctx.bindings.session_id,
            reason=reason,
            scope=ctx.bindings.scope,
            ceiling=ctx.bindings.ceiling,
        ),
        should_stop=ctx.should_stop,
    )
    if verdict.allowed:
        return None
    why = f" ({verdict.reason})" if verdict.reason else ""
    return _error("denied", f"{capability} {target!r} was denied{why}.")


def _workspace_call(
    ctx: CallContext,
    capability: Capability,
    paths: tuple[str, ...],
    what: Callable[..., Any],
    *,
    allow_root: bool = False,
) -> Any:
    """Validate ``paths`` with the one path policy, check the capability on each, then
    run ``what(view, *normalized_paths)`` against the session."""
    view = ctx.bindings.workspace
    if view is None:
        return _error("unavailable", _NO_SESSION)
    try:
        rels = tuple(DEFAULT_POLICY.normalize(p, allow_root=allow_root) for p in paths)
        for rel in rels or ("",):
            if (denied := check_capability(ctx, capability, rel)) is not None:
                return denied
        return what(view, *rels)
    except BrioError as exc:
        return _error(_wit_kind(exc), exc.message)
    except FileNotFoundError as exc:
        return _error("not-found", str(exc))
    except OSError as exc:
        return _error("failed", f"{type(exc).__name__}: {exc}")


def ws_read(ctx: CallContext, path: str) -> Any:
    def go(view: Any, rel: str) -> Any:
        data = view.read(rel)
        return _too_large(ctx, len(data), rel) or Ok(data)

    return _workspace_call(ctx, "read", (path,), go)


def ws_read_text(ctx: CallContext, path: str) -> Any:
    def go(view: Any, rel: str) -> Any:
        data = view.read(rel)
        if (refused := _too_large(ctx, len(data), rel)) is not None:
            return refused
        try:
            return Ok(data.decode("utf-8"))
        except UnicodeDecodeError:
            return _error("invalid", f"{rel} is not UTF-8 text; read it as bytes instead.")

    return _workspace_call(ctx, "read", (path,), go)


def ws_list_dir(ctx: CallContext, path: str, recursive: bool) -> Any:
    return _workspace_call(
        ctx,
        "read",
        (path,),
        lambda v, rel: Ok([_entry(e) for e in v.list_dir(rel, recursive)]),
        allow_root=True,
    )


def ws_stat(ctx: CallContext, path: str) -> Any:
    def go(view: Any, rel: str) -> Any:
        entry = view.stat(rel)
        return Ok(None if entry is None else _entry(entry))

    return _workspace_call(ctx, "read", (path,), go)


def ws_changes(ctx: CallContext) -> Any:
    def go(view: Any) -> Any:
        diff = view.changes()
        return _too_large(ctx, len(diff), "The session's diff") or Ok(diff)

    return _workspace_call(ctx, "read", (), go)


SEARCH_MAX_HITS = 200
"""The most lines one ``workspace.search`` returns, whatever the agent asks."""

SEARCH_MAX_FILE_BYTES = 4_000_000
"""Files larger than this are not searched (generated data, not code)."""

SEARCH_MAX_TOTAL_BYTES = 64_000_000
"""A search stops after reading this many bytes of the session."""

SEARCH_MAX_PATTERN = 500
"""The longest pattern accepted (a bounded expression, a bounded cost)."""

SEARCH_MAX_LINE_CHARS = 4000
"""Only the first this many characters of a line are searched (minified files)."""

SEARCH_LINE_CHARS = 300
"""A hit's text is cut to this many characters."""


def _text_of(rel: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotText(f"{rel} is not UTF-8 text; read it as bytes instead.") from None


def ws_read_lines(ctx: CallContext, path: str, start: int, end: int) -> Any:
    """Lines ``start..end`` of a text file of any size, cut at the message limit."""

    def go(view: Any, rel: str) -> Any:
        lines = _text_of(rel, view.read(rel)).splitlines(keepends=True)
        total = len(lines)
        first = max(1, start)
        last = total if end == 0 or end > total else end
        budget = ctx.limits.max_message_bytes - 1024
        out: list[str] = []
        size = 0
        truncated = False
        for number in range(first, last + 1):
            line = lines[number - 1]
            size += len(line.encode())
            if size > budget:
                truncated = True
                break
            out.append(line)
        shown_end = first + len(out) - 1 if out else 0
        return Ok(
            {
                "text": "".join(out),
                "start": first,
                "end": shown_end,
                "total_lines": total,
                "truncated": truncated,
            }
        )

    return _workspace_call(ctx, "read", (path,), go)


def _search_regex(pattern: str, literal: bool) -> Any:
    """The compiled search pattern: RE2, which matches in time linear in the line.

    An agent chooses the pattern, so Python's backtracking ``re`` would let it stall the
    host thread for hours on one line (``(a+)+$``); RE2 has no backtracking. Its errors
    are raised, not logged to the terminal.
    """
    options = re2.Options()
    options.log_errors = False
    return re2.compile(re2.escape(pattern) if literal else pattern, options=options)


def ws_search(ctx: CallContext, pattern: str, literal: bool, path: str, max_hits: int) -> Any:
    """Lines of the session's text files matching ``pattern``, bounded in count and cost.

    The search root is checked (and audited) like a listing; each file that has a hit is
    checked like a read before its lines are returned, so a file the agent may not read
    never shows through a search.
    """
    if not pattern or len(pattern) > SEARCH_MAX_PATTERN:
        return _error(
            "invalid",
            f"A search pattern must have 1 to {SEARCH_MAX_PATTERN} characters.",
        )
    try:
        regex = _search_regex(pattern, literal)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return _error(
            "invalid",
            f"The search pattern is not a valid RE2 regular expression ({reason}): "
            "backreferences and lookaround are not supported; search for it as plain "
            "text (literal) instead.",
        )
    limit = max(1, min(max_hits or SEARCH_MAX_HITS, SEARCH_MAX_HITS))

    def go(view: Any, rel: str) -> Any:
        hits: list[dict[str, Any]] = []
        scanned = 0
        entries = sorted(
            (e for e in view.list_dir(rel, True) if e.kind == "file"), key=lambda e: e.path
        )
        for entry in entries:
            if ctx.should_stop():  # cancelled or past the deadline: stop between files
                break
            if entry.size > SEARCH_MAX_FILE_BYTES or scanned > SEARCH_MAX_TOTAL_BYTES:
                continue
            data = view.read(entry.path)
            scanned += len(data)
            if b"\0" in data[:8192]:
                continue
            text = data.decode("utf-8", errors="replace")
            found = [
                (number, line)
                for number, line in enumerate(text.splitlines(), start=1)
                if regex.search(line, 0, SEARCH_MAX_LINE_CHARS)
            ]
            if not found:
                continue
            if check_capability(ctx, "read", entry.path) is not None:
                continue
            for number, line in found[: limit - len(hits)]:
                hits.append({"path": entry.path, "line": number, "text": line[:SEARCH_LINE_CHARS]})
            if len(hits) >= limit:
                break
        return Ok(hits)

    return _workspace_call(ctx, "read", (path,), go, allow_root=True)


def ws_write(ctx: CallContext, path: str, contents: bytes, executable: bool) -> Any:
    if (refused := _too_large(ctx, len(contents), f"The write to {path}")) is not None:
        return refused

    def go(view: Any, rel: str) -> Any:
        view.write(rel, contents, executable)
        return Ok(None)

    return _workspace_call(ctx, "write", (path,), go)


def ws_delete(ctx: CallContext, path: str) -> Any:
    def go(view: Any, rel: str) -> Any:
        view.delete(rel)
        return Ok(None)

    return _workspace_call(ctx, "write", (path,), go)


def ws_rename(ctx: CallContext, src: str, dst: str) -> Any:
    def go(view: Any, old: str, new: str) -> Any:
        view.rename(old, new)
        return Ok(None)

    return _workspace_call(ctx, "write", (src, dst), go)


# -- shell, sql, mesh ----------------------------------------------------------------


def _unavailable(service: str) -> Err[dict[str, str]]:
    return _error(
        "unavailable",
        f"This run has no {service} service (it runs only inside a session the kernel "
        "manages, e.g. `briotui run` or the TUI).",
    )


def _request(
    ctx: CallContext, capability: Capability, target: str, reason: str
) -> CapabilityRequest:
    return CapabilityRequest(
        agent=ctx.agent,
        capability=capability,
        target=target,
        instance=ctx.instance_id,
        task_id=ctx.bindings.task_id,
        session_id=ctx.bindings.session_id,
        reason=reason,
        ceiling=ctx.bindings.ceiling,
    )


def shell_run(ctx: CallContext, command: dict[str, Any]) -> Any:
    service, session = ctx.bindings.shell, ctx.bindings.workspace
    if service is None or not isinstance(session, Session):
        return _unavailable("shell")
    argv = [str(a) for a in command["argv"]]
    if not argv:
        return _error("invalid", "The command is empty: give a program and its arguments.")
    line = shlex.join(argv)
    decision = service.check(argv)
    if not decision.allowed:
        caps = ctx.bindings.capabilities
        if caps is not None:
            caps.refuse(_request(ctx, "shell", line, command["reason"]), "rule", decision.reason)
        return _error("denied", f"{line!r} is refused: {decision.reason}")
    if (denied := check_capability(ctx, "shell", line, command["reason"])) is not None:
        return denied
    confirmed = False
    caps = ctx.bindings.capabilities
    if service.needs_confirmation() and caps is not None:
        # No OS sandbox here: no grant covers that; the user (or --approve) decides.
        verdict = caps.confirm(
            replace(_request(ctx, "shell", line, command["reason"]), unsandboxed=True),
            refusal=f"no OS sandbox here and nobody was asked (--approve never). {INSTALL_HINT}",
            should_stop=ctx.should_stop,
        )
        if not verdict.allowed:
            return _error(
                "denied",
                f"{line!r} was not run: there is no OS sandbox (bubblewrap) here and it was "
                f"not confirmed ({verdict.reason}).",
            )
        confirmed = True
    limit_s = min(ctx.limits.host_call_timeout_ms / 1000, max(1.0, ctx.remaining_seconds()))
    asked = command["timeout_ms"]
    timeout_s = min(limit_s, asked / 1000) if asked else limit_s
    try:
        run = service.run(
            session,
            argv,
            cwd=command["cwd"],
            timeout_s=timeout_s,
            confirmed=confirmed,
            should_stop=ctx.should_stop,
        )
    except BrioError as exc:
        return _error(_wit_kind(exc), exc.message)
    out = run.output
    ctx.events(
        CommandRan(
            agent=ctx.agent,
            instance=ctx.instance_id,
            task=ctx.bindings.task_id,
            session=session.id,
            argv=tuple(argv),
            exit_code=out.exit_code,
            duration_ms=out.duration_ms,
            output=_tail(out.stdout, out.stderr),
            truncated=out.truncated or len(out.stdout) + len(out.stderr) > COMMAND_OUTPUT_TAIL,
        )
    )
    limit = ctx.limits.max_message_bytes // 2
    return Ok(
        {
            "exit_code": out.exit_code,
            "stdout": out.stdout[-limit:],
            "stderr": out.stderr[-limit:],
            "truncated": out.truncated or len(out.stdout) > limit or len(out.stderr) > limit,
            "duration_ms": out.duration_ms,
        }
    )


def _tail(stdout: str, stderr: str) -> str:
    """What a command printed, stdout then stderr, cut to its last characters."""
    both = stdout + ("\n" if stdout and stderr and not stdout.endswith("\n") else "") + stderr
    return both[-COMMAND_OUTPUT_TAIL:]


def _sql(ctx: CallContext) -> AgentSql | Err[dict[str, str]]:
    service = ctx.bindings.sql
    if service is None:
        return _unavailable("sql")
    if ctx.sql is None:
        if (denied := check_capability(ctx, "sql", "*", "a private SQL scratch space")) is not None:
            return denied
        try:
            ctx.sql = service.open()
        except BrioError as exc:
            return _error(_wit_kind(exc), exc.message)
    return ctx.sql


def sql_prefix(ctx: CallContext) -> str:
    conn = _sql(ctx)
    return conn.prefix if isinstance(conn, AgentSql) else ""


def _sql_value(value: Case) -> Any:
    return None if value.tag == "null" else value.payload


def _wit_value(value: Any) -> Case:
    if value is None:
        return Case("null")
    if isinstance(value, bool | int):
        return Case("integer", int(value))
    if isinstance(value, float):
        return Case("real", value)
    if isinstance(value, bytes):
        return Case("blob", value)
    return Case("text", str(value))


def sql_execute(ctx: CallContext, statement: str, params: list[Case]) -> Any:
    conn = _sql(ctx)
    if not isinstance(conn, AgentSql):
        return conn
    try:
        rows = conn.execute(statement, [_sql_value(p) for p in params], should_stop=ctx.should_stop)
    except BrioError as exc:
        return _error(_wit_kind(exc), exc.message)
    return Ok(
        {
            "columns": list(rows.columns),
            "rows": [[_wit_value(v) for v in row] for row in rows.rows],
            "changes": rows.changes,
        }
    )


def _endpoint(ctx: CallContext) -> Endpoint | Err[dict[str, str]]:
    mesh = ctx.bindings.mesh
    if mesh is None:
        return _unavailable("mesh")
    if ctx.endpoint is None:
        try:
            ctx.endpoint = mesh.register(
                ctx.instance_id, peers=anyone, max_message_bytes=ctx.limits.max_message_bytes
            )
        except BrioError as exc:
            return _error(_wit_kind(exc), exc.message)
    return ctx.endpoint


def _peer(ctx: CallContext, to: str) -> str:
    """An instance id for ``to``: itself, or a running instance of the agent so named."""
    mesh = ctx.bindings.mesh
    assert mesh is not None
    if to in mesh:
        return to
    return next((i for i in mesh.ids() if i.partition("#")[0] == to), to)


def _envelope(ctx: CallContext, env: Envelope) -> dict[str, Any]:
    request_id = None
    if env.wants_reply:
        request_id = len(ctx.requests) + 1
        ctx.requests[request_id] = env
    return {
        "sender": env.sender,
        "topic": env.topic,
        "body": str(env.body),
        "request_id": request_id,
    }


def _mesh_call(ctx: CallContext, to: str | None, act: Callable[[Endpoint, str], Any]) -> Any:
    endpoint = _endpoint(ctx)
    if not isinstance(endpoint, Endpoint):
        return endpoint
    peer = ""
    if to is not None:
        peer = _peer(ctx, to)
        name = peer.partition("#")[0]
        if (denied := check_capability(ctx, "mesh", name, f"message {to}")) is not None:
            return denied
    try:
        return act(endpoint, peer)
    except BrioError as exc:
        return _error(_wit_kind(exc), exc.message)


def mesh_send(ctx: CallContext, to: str, topic: str, body: str) -> Any:
    return _mesh_call(ctx, to, lambda ep, peer: Ok(ep.send(peer, topic, body) and None))


def mesh_request(ctx: CallContext, to: str, topic: str, body: str, timeout_ms: int) -> Any:
    wait = min(timeout_ms / 1000, max(0.0, ctx.remaining_seconds()))
    return _mesh_call(
        ctx, to, lambda ep, peer: Ok(_envelope(ctx, ep.request(peer, topic, body, wait)))
    )


def mesh_receive(ctx: CallContext, timeout_ms: int) -> Any:
    wait = min(timeout_ms / 1000, max(0.0, ctx.remaining_seconds()))

    def receive(ep: Endpoint, _peer: str) -> Any:
        env = ep.receive(wait)
        return Ok(None if env is None else _envelope(ctx, env))

    return _mesh_call(ctx, None, receive)


def mesh_reply(ctx: CallContext, request_id: int, body: str) -> Any:
    request = ctx.requests.pop(request_id, None)
    if request is None:
        return _error("not-found", f"No request {request_id} is waiting for a reply.")
    return _mesh_call(ctx, None, lambda ep, _peer: Ok(ep.reply(request, body) and None))


# -- tools (MCP) ---------------------------------------------------------------------


def tools_list(ctx: CallContext) -> Any:
    """The MCP tools the agent may ask for (every configured server's)."""
    hub = ctx.bindings.mcp
    if hub is None:
        return Ok([])
    found, failures = hub.list_tools(should_stop=ctx.should_stop)
    if failures and not found:
        first = failures[0]
        return _error(_wit_kind(first), first.message)
    for failure in failures:
        ctx.emit_log("warn", f"MCP: {failure.message}")
    return Ok(
        [{"name": t.qualified, "description": t.description, "parameters": t.parameters}
         for t in found]
    )  # fmt: skip


def tools_call(ctx: CallContext, name: str, arguments: str) -> Any:
    """Call an MCP tool: constraints, budget and the ``mcp`` capability first, audited."""
    hub = ctx.bindings.mcp
    if hub is None:
        return _error(
            "not-found",
            "No MCP server is configured for this project (add [mcp.servers.NAME] to "
            ".brio/config.toml and trust the project).",
        )
    if (refused := _too_large(ctx, len(arguments), "The tool call's arguments")) is not None:
        return refused
    server, slash, tool = name.partition("/")
    if not slash or not server or not tool:
        return _error("invalid", f"{name!r} is not a tool name: use server/tool from list-tools.")
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return _error("invalid", "The arguments must be a JSON object.")
    shown = json.dumps(args, ensure_ascii=False, sort_keys=True)
    try:
        info = hub.describe(server, tool, should_stop=ctx.should_stop)
    except BrioError as exc:
        return _error(_wit_kind(exc), exc.message)
    request = _request(ctx, "mcp", name, f"{info.description[:300]}\narguments: {shown[:1500]}")
    caps = ctx.bindings.capabilities
    try:
        hub.config(server).check_arguments(tool, args)
        hub.spend(ctx.bindings.task_id)
    except BrioError as exc:  # a hard rule: no prompt can allow it
        if caps is not None:
            caps.refuse(request, "mcp:policy", exc.message)
        return _error(_wit_kind(exc), exc.message)
    if caps is not None:
        verdict = caps.check(request, should_stop=ctx.should_stop)
        if not verdict.allowed:
            why = f" ({verdict.reason})" if verdict.reason else ""
            return _error("denied", f"mcp {name!r} was denied{why}.")
    try:
        result = hub.call(server, tool, args, should_stop=ctx.should_stop)
    except BrioError as exc:
        ctx.emit_log("warn", f"MCP {name}: {exc.title}: {exc.message}")
        return _error(_wit_kind(exc), exc.message)
    return _too_large(ctx, len(result), f"The result of {name}") or Ok(result)


# -- tasks ---------------------------------------------------------------------------


def tasks_progress(ctx: CallContext, percent: int, note: str) -> None:
    ctx.events(
        Progress(
            agent=ctx.agent,
            instance=ctx.instance_id,
            task=ctx.bindings.task_id,
            percent=min(100, percent),
            note=note[:500],
        )
    )


def tasks_milestone(ctx: CallContext, name: str) -> None:
    ctx.events(
        Milestone(
            agent=ctx.agent, instance=ctx.instance_id, task=ctx.bindings.task_id, name=name[:200]
        )
    )


def _tasks_call(ctx: CallContext, make: Callable[[TaskHost], Any]) -> Any:
    host = ctx.bindings.tasks
    if host is None:
        return _error(
            "unavailable",
            "This run has no supervisor, so it cannot start subtasks. Run the whole "
            "pipeline with `briotui run` (without --agent) or from the TUI.",
        )
    try:
        return Ok(ctx.await_(make(host)))
    except HostTimeout as exc:
        return _error("timeout", f"The subtask call was cut off {exc}.")
    except BrioError as exc:
        return _error(_wit_kind(exc), exc.message)


def _subtask_dict(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent": task["agent"],
        "goal": task["goal"],
        "scope": [DEFAULT_POLICY.normalize(p) if "*" not in p else p for p in task["scope"]],
        "acceptance": list(task["acceptance"]),
    }


def _child_ceiling(ctx: CallContext) -> tuple[Delegator, ...]:
    """The agents a subtask of the caller answers to: the caller's own, then the caller."""
    b = ctx.bindings
    return (*b.ceiling, Delegator(ctx.agent, b.task_id, b.session_id))


def tasks_spawn(ctx: CallContext, task: dict[str, Any]) -> Any:
    parent = ctx.bindings.task_id
    return _tasks_call(
        ctx,
        lambda h: h.spawn(parent, ctx.agent, _subtask_dict(task), ceiling=_child_ceiling(ctx)),
    )


def tasks_await(ctx: CallContext, ids: list[str], timeout_ms: int) -> Any:
    return _tasks_call(ctx, lambda h: h.wait(ids, timeout_ms / 1000))


def tasks_merge(ctx: CallContext, ids: list[str]) -> Any:
    parent = ctx.bindings.task_id

    async def merge(host: TaskHost) -> str:
        return json.dumps(await host.merge(parent, ids))

    return _tasks_call(ctx, merge)


def tasks_run_subtask(ctx: CallContext, task: dict[str, Any]) -> Any:
    parent = ctx.bindings.task_id

    async def run(host: TaskHost) -> dict[str, Any]:
        sub_id = await host.spawn(
            parent, ctx.agent, _subtask_dict(task), ceiling=_child_ceiling(ctx)
        )
        [result] = await host.wait([sub_id], ctx.remaining_seconds())
        return result

    return _tasks_call(ctx, run)


def tasks_ask_user(ctx: CallContext, question: str) -> Any:
    ask = ctx.bindings.ask_user
    if ask is None:
        return _error(
            "unavailable",
            "No user can answer in this run (headless). Decide with what you have and "
            "say what you assumed.",
        )
    try:
        return Ok(ctx.await_(ask(ctx.agent, question)))
    except HostTimeout as exc:
        return _error("timeout", f"No answer from the user {exc}.")


HOST_FUNCTIONS: dict[str, dict[str, HostImpl]] = {
    "types": {},
    "log": {"emit": log_emit},
    "clock": {"now-ms": clock_now_ms, "monotonic-ns": clock_monotonic_ns},
    "llm": {"complete": llm_complete, "complete-with-tools": llm_complete_with_tools},
    "workspace": {
        "read": ws_read,
        "read-text": ws_read_text,
        "list-dir": ws_list_dir,
        "stat": ws_stat,
        "changes": ws_changes,
        "read-lines": ws_read_lines,
        "search": ws_search,
    },
    "workspace-write": {"write": ws_write, "delete": ws_delete, "rename": ws_rename},
    "shell": {"run": shell_run},
    "tools": {"list-tools": tools_list, "call-tool": tools_call},
    "sql": {"prefix": sql_prefix, "execute": sql_execute},
    "mesh": {
        "send": mesh_send,
        "request": mesh_request,
        "receive": mesh_receive,
        "reply": mesh_reply,
    },
    "tasks": {
        "run-subtask": tasks_run_subtask,
        "spawn-subtask": tasks_spawn,
        "await-subtasks": tasks_await,
        "merge-subtasks": tasks_merge,
        "progress": tasks_progress,
        "milestone": tasks_milestone,
        "ask-user": tasks_ask_user,
    },
}
"""Every host function, by interface and WIT function name."""


def _wrap(iface: str, name: str, impl: HostImpl, shape: FuncShape) -> Callable[..., Any]:
    params = shape.params
    lower = shape.result
    label = f"{iface}.{name}"

    def stop_if_cancelled(ctx: CallContext) -> None:
        # An abandoned run's thread coming back (from a WASI sleep, say) stops here
        # too: nothing it asks for after its run was given up on is done.
        if ctx.cancelled.is_set():  # stop now, not at the guest's next epoch check
            if ctx.fatal is None:
                ctx.fatal = AgentCancelled(
                    f"{ctx.agent!r} was stopped: its task was cancelled.", agent=ctx.agent
                )
            raise wasmtime.WasmtimeError("brio: cancelled")

    def host_function(_store: Any, *args: Any) -> Any:
        ctx = ctxmod.current()
        if ctx.loading and iface != AGENT_CODE:
            # A warm instance loading its agent's code before any run: a host call now
            # would be made outside a run (no task, no bindings). The kernel discards
            # the instance; the run loads the code itself, as a cold one does.
            raise wasmtime.WasmtimeError(f"brio: {label} called while the agent's code loads")
        started = time.perf_counter()
        ctx.host_calls += 1
        try:
            stop_if_cancelled(ctx)
            if ctx.on_host_call is not None:
                ctx.on_host_call()
            lifted = tuple(conv(arg) for conv, arg in zip(params, args, strict=True))
            dispatch = ctx.dispatch
            if dispatch is None:
                result = impl(ctx, *lifted)
            else:
                result = dispatch(ctx, iface, name, impl, lifted)
            stop_if_cancelled(ctx)
            return None if lower is None else lower(result)
        except wasmtime.WasmtimeError:
            raise
        except Exception as exc:  # never let it escape into wasmtime
            log.exception("host function %s failed for agent %s", label, ctx.agent)
            if lower is not None:
                try:
                    return lower(_error("failed", f"The kernel failed serving {label}: {exc}"))
                except Exception:  # the result type has no error case: stop the guest
                    pass
            ctx.fatal = HostError(
                f"The kernel failed serving {label}: {type(exc).__name__}: {exc}",
                agent=ctx.agent,
            )
            raise wasmtime.WasmtimeError(f"brio host error in {label}") from None
        finally:
            ctx.host_seconds += time.perf_counter() - started

    return host_function


def _split(name: str) -> tuple[str, str, str] | None:
    """``brio:agent/llm@0.1.0`` -> ("brio:agent", "llm", "0.1.0")."""
    if "/" not in name:
        return None
    package, rest = name.split("/", 1)
    iface, _, ver = rest.partition("@")
    return package, iface, ver


def build_linker(
    engine: wasmtime.Engine,
    component: wc.Component,
    spec: AgentSpec,
    *,
    extra: Mapping[str, Mapping[str, HostImpl]] | None = None,
) -> tuple[wc.Linker, FuncShape]:
    """A linker for ``component`` that provides exactly what ``spec``'s world allows.

    Returns the linker and the converters of the exported ``agent.run``. ``extra``
    adds brio interfaces outside the world, with their functions, for this component
    only (the shared Python runtime's ``agent-code``: its agent's sources).

    Raises:
        CapabilityDenied: the component imports a brio interface its world does not.
        ComponentError: it imports something the kernel does not provide, was built
            against another version of the contract, or does not export ``agent.run``.
    """
    provided = {**HOST_FUNCTIONS, **(extra or {})}
    allowed = world_imports()[spec.world] | TYPE_ONLY_INTERFACES | set(extra or {})
    imports = component_imports(component, engine)
    brio: dict[str, dict[str, Any]] = {}
    for name, funcs in imports.items():
        if name.startswith(WASI_PREFIXES):
            continue
        parts = _split(name)
        if parts is None or parts[0] != WIT_PACKAGE:
            raise ComponentError(
                f"Agent {spec.name!r} imports {name!r}, which the kernel does not provide. "
                f"Agents may import the {WIT_PACKAGE} interfaces of their world and WASI "
                "Preview 2.",
                agent=spec.name,
                file=str(spec.component_file or spec.directory / "app.py"),
                title="Agent imports an unknown interface",
            )
        _, iface, ver = parts
        if ver != WIT_VERSION:
            raise ComponentError(
                f"Agent {spec.name!r} was built against {WIT_PACKAGE}@{ver}; this kernel "
                f"provides {WIT_VERSION}. Rebuild it with `briotui agents build --force`.",
                agent=spec.name,
                title="Agent built for another contract version",
            )
        if iface not in allowed:
            raise CapabilityDenied(
                f"Agent {spec.name!r} imports {iface!r}, which its world {spec.world!r} does "
                f"not include (it may import: {', '.join(sorted(allowed))}). The component "
                "was refused at link time.",
                agent=spec.name,
                title="Capability denied at link time",
            )
        known = provided.get(iface, {})
        missing = sorted(set(funcs) - set(known))
        if missing:
            raise ComponentError(
                f"Agent {spec.name!r} imports {iface}.{', '.join(missing)}, which the kernel "
                "does not provide.",
                agent=spec.name,
                title="Agent imports an unknown function",
            )
        brio[name] = funcs

    exports = component_exports(component, engine)
    run_type = exports.get(AGENT_EXPORT, {}).get("run")
    if run_type is None:
        raise ComponentError(
            f"Agent {spec.name!r} does not export {AGENT_EXPORT} with a run function. "
            "Python agents define `class Agent` with `run(self, task)` in app.py.",
            agent=spec.name,
            title="Agent has no entry point",
        )

    linker = wc.Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        for name, funcs in brio.items():
            iface = name.split("/", 1)[1].split("@", 1)[0]
            with root.add_instance(name) as instance:
                for fname, fty in funcs.items():
                    impl = provided[iface][fname]
                    instance.add_func(fname, _wrap(iface, fname, impl, func_shape(fty)))
    return linker, export_shape(run_type)

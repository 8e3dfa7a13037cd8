"""The Smart Agent: general purpose, with files, the allowlisted shell and MCP tools.

Given a command (the kernel passes the project's test command as JSON in the
"command" context), it runs it in the session through ``shell.run`` and reports the
result. When the project configures MCP servers (``tools.list-tools`` names some), it
offers those tools to the model natively and runs the calls the model makes through
``tools.call-tool`` (each capability-checked by the kernel) until the model answers.
Otherwise it asks the model which one allowlisted command to run for the goal, runs
it, and asks the model to summarize the output. Commands always run as an argv, never
through a shell, in a copy of the session with a scrubbed environment.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, shell, tasks, tools, types

TOOL_ROUNDS = 8
"""The most model turns of one tool-use conversation."""

TOOLS_PROMPT = """You are the Smart Agent inside briotui. Use the tools offered to do
what the user asks; then answer the user in a few sentences (no tool call)."""

SYSTEM_PROMPT = """You are the Smart Agent inside briotui. You may run one command from
the project's allowlist (e.g. pytest, python -m pytest, ruff check, git diff). Answer
with one JSON object and nothing else: {"argv": ["pytest", "-q"], "why": "..."}"""


def ask(messages, purpose):
    request = llm.CompletionRequest(messages=messages, max_tokens=None, temperature=None, stop=[], purpose=purpose)
    try:
        return llm.complete(request).text
    except Err as failure:
        raise Err(types.Error(kind=failure.value.kind, message="The model call failed: " + failure.value.message))


def run(argv, reason):
    try:
        return shell.run(shell.Command(argv=argv, cwd="", timeout_ms=None, reason=reason))
    except Err as failure:
        raise Err(types.Error(kind=failure.value.kind, message="Running " + " ".join(argv) + " failed: " + failure.value.message))


def model_name(name, taken):
    """A tool name the model accepts ("server/tool" -> "server__tool")."""
    base = "".join(c if c.isalnum() or c in "_-" else "_" for c in name.replace("/", "__"))[:60] or "tool"
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{base}_{n}"
    return out


def turn(role, content, calls=None, results=None):
    return llm.Turn(role=role, content=content, tool_calls=calls or [], tool_results=results or [])


def call_tool(name, arguments):
    """Run one MCP tool call; a failure goes back to the model as an error result."""
    try:
        return tools.call_tool(name, arguments), False
    except Err as failure:
        kind = failure.value.kind.name.lower().replace("_", "-")
        return f"{kind}: {failure.value.message}", True


def use_tools(goal, offered):
    """The tool-use conversation: the model calls MCP tools until it answers."""
    names = {}
    specs = []
    for info in offered:
        alias = model_name(info.name, names)
        names[alias] = info.name
        specs.append(llm.Tool(name=alias, description=info.description[:1000], parameters=info.parameters))
    turns = [turn(llm.Role.SYSTEM, TOOLS_PROMPT), turn(llm.Role.USER, goal)]
    used = []
    for _ in range(TOOL_ROUNDS):
        request = llm.ToolRequest(turns=turns, tools=specs, max_tokens=None, temperature=None, stop=[], purpose="use the project's tools")
        try:
            reply = llm.complete_with_tools(request)
        except Err as failure:
            raise Err(types.Error(kind=failure.value.kind, message="The model call failed: " + failure.value.message))
        if not reply.tool_calls:
            return reply.text, used
        turns.append(turn(llm.Role.ASSISTANT, reply.text, reply.tool_calls))
        results = []
        for call in reply.tool_calls:
            real = names.get(call.name)
            if real is None:
                content, failed = f"invalid: there is no tool {call.name!r}", True
            else:
                tasks.progress(50, "tool " + real)
                content, failed = call_tool(real, call.arguments)
                used.append({"tool": real, "ok": not failed})
            results.append(llm.ToolResult(call_id=call.id, name=call.name, content=content, is_error=failed))
        turns.append(turn(llm.Role.USER, "", None, results))
    return "Stopped after the most tool rounds allowed; the last results are above.", used


def offered_tools():
    try:
        return tools.list_tools()
    except Err as failure:
        log.emit(log.Level.WARN, "smart: MCP tools are unavailable: " + failure.value.message)
        return []


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        context = dict(task.context)
        offered = [] if "command" in context else offered_tools()
        if offered:
            summary, used = use_tools(task.goal, offered)
            return agent.Outcome(summary=summary, data=json.dumps({"tool_calls": used}))
        if "command" in context:
            argv = json.loads(context["command"])
            reason = "run the project's tests"
        else:
            reply = ask([llm.Message(role=llm.Role.SYSTEM, content=SYSTEM_PROMPT), llm.Message(role=llm.Role.USER, content=task.goal)], "choose a command")
            start, end = reply.find("{"), reply.rfind("}")
            try:
                choice = json.loads(reply[start : end + 1])
                argv = [str(a) for a in choice["argv"]]
                reason = str(choice.get("why", task.goal))
            except (ValueError, KeyError, TypeError):
                raise Err(types.Error(kind=types.ErrorKind.INVALID, message="The model named no command to run."))
        tasks.progress(30, "running " + " ".join(argv))
        out = run(argv, reason)
        tail = (out.stdout + out.stderr)[-3000:]
        passed = out.exit_code == 0
        log.emit(log.Level.INFO, f"smart: {' '.join(argv)} exited {out.exit_code} in {out.duration_ms} ms")
        tasks.milestone("tests pass" if passed else "tests fail")
        summary = f"`{' '.join(argv)}` {'passed' if passed else 'failed'} (exit {out.exit_code})."
        if "command" not in context:
            summary = ask([llm.Message(role=llm.Role.USER, content=f"Summarize for the user in two sentences. Command: {' '.join(argv)}, exit {out.exit_code}. Output tail:\n{tail}")], "summarize the result")
        return agent.Outcome(summary=summary, data=json.dumps({"argv": argv, "exit_code": out.exit_code, "output_tail": tail, "truncated": out.truncated}))

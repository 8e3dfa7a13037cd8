"""The Council: reads the project and turns a request into a plan of subtasks.

It asks the model for a JSON plan — subtasks, each with a goal, the files in scope and
how to know it is done — and may ask the user one clarifying question through the
kernel first. The plan goes back to the kernel as the outcome's data. The prompt holds
the file list, the kernel's repository map (the "repo-map" context) and the small files
the request names; a named file too large to show is said to be left out.

On a provider that supports tools, the model may look at code before it plans, through
the provider's own tool-calling API: ``read_file {path, start, end}`` and ``search
{pattern, path_glob}``, run through the Council's workspace import (its capability
checks and audit), at most MAX_READ_ROUNDS rounds; past them the model is told to plan
with what it has. A provider without tools plans from the prompt, as before.
"""

import fnmatch
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, tasks, types, workspace

MAX_FILE_BYTES = 20_000
MAX_CONTEXT_BYTES = 120_000
MAX_READ_ROUNDS = 4
MAX_READ_LINES = 300
MAX_SEARCH_HITS = 50

SYSTEM_PROMPT = """You are the Council inside briotui: you plan code changes; others write
them. Answer with one JSON object and nothing else:

{"question": null,
 "subtasks": [{"title": "short title",
               "goal": "what to change, precisely, for a programmer",
               "files": ["path/one.py"],
               "acceptance": ["how to know it is done"]}]}

Split the work into independent subtasks that touch different files where you can, so
they can be coded in parallel. Use only paths from the file list (or new paths). If the
request is ambiguous in a way that matters, put one short question in "question" and
leave "subtasks" empty. When you have the read_file and search tools, you may look at
the code you need to plan well before you answer."""

TOOLS = [
    llm.Tool(
        name="read_file",
        description=(
            "Read lines start to end (1-based, inclusive) of a text file of the project; "
            f"at most {MAX_READ_LINES} lines a call."
        ),
        parameters=json.dumps(
            {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file, relative to the root"},
                    "start": {"type": "integer", "description": "The first line (1-based)"},
                    "end": {"type": "integer", "description": "The last line (inclusive)"},
                },
                "required": ["path"],
            }
        ),
    ),
    llm.Tool(
        name="search",
        description=(
            "Search the project's text files for a regular expression; returns the "
            f"matching lines as path:line:text (at most {MAX_SEARCH_HITS})."
        ),
        parameters=json.dumps(
            {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "A regular expression"},
                    "path_glob": {
                        "type": "string",
                        "description": "Only files whose path matches this glob, e.g. src/*.py",
                    },
                },
                "required": ["pattern"],
            }
        ),
    ),
]


def extract_json(text):
    """The first JSON object in a reply (tolerates prose and ``` fences)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        for end in range(start, len(text)):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start : end + 1])
                    except ValueError:
                        break
        start = text.find("{", start + 1)
    return None


def project_summary(goal, repo_map=""):
    """The file list, the kernel's repository map and the small files the request names.

    A named file too large to include is said to be left out (with its size), never
    dropped silently: the map gives its symbols and line numbers instead.
    """
    try:
        entries = workspace.list_dir("", True)
    except Err:
        entries = []
    files = [e.path for e in entries if e.kind == workspace.EntryKind.FILE]
    sizes = {e.path: e.size for e in entries}
    parts = ["Files in the project:\n" + "\n".join(files[:400])]
    if len(files) > 400:
        parts[0] += f"\n({len(files) - 400} more files not listed)"
    if repo_map:
        parts.append(
            "Repository map (the symbols of the project's files, most relevant first):\n" + repo_map
        )
    budget = MAX_CONTEXT_BYTES
    left_out = []
    for path in files:
        if path in goal or path.rsplit("/", 1)[-1] in goal:
            try:
                text = workspace.read_text(path)
            except Err as failure:
                left_out.append(f"- {path}: not shown ({failure.value.message})")
                continue
            if len(text) <= min(MAX_FILE_BYTES, budget):
                budget -= len(text)
                parts.append(f"{path}\n```\n{text}```")
            else:
                left_out.append(
                    f"- {path}: not shown, {sizes.get(path, len(text))} bytes (too large); "
                    "its symbols are in the repository map"
                )
    if left_out:
        parts.append(
            "Files the request names that were left out of this prompt:\n"
            + "\n".join(left_out)
            + "\nThe Coder can read any part of them; put them in the subtask's files."
        )
    return "\n\n".join(parts)


def turn(role, content, calls=None, results=None):
    return llm.Turn(role=role, content=content, tool_calls=calls or [], tool_results=results or [])


def _whole(value, default):
    """A tool argument as a whole number (models send 120 or "120"), else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default


def read_range(path, start, end):
    """(text, ok): lines ``start`` to ``end`` of ``path``, at most MAX_READ_LINES."""
    if end == 0 or end - start + 1 > MAX_READ_LINES:
        end = start + MAX_READ_LINES - 1
    try:
        got = workspace.read_lines(path, start, end)
    except Err as failure:
        return f"read_file {path}: {failure.value.message}", False
    if got.end == 0:
        return f"read_file {path}: it has {got.total_lines} line(s); that range is empty.", True
    return f"{path} lines {got.start}-{got.end} of {got.total_lines}:\n```\n{got.text}```", True


def search_text(pattern, glob):
    """(text, ok): the lines matching ``pattern`` (in files matching ``glob``, if any)."""
    label = f"search {pattern}" + (f" in {glob}" if glob else "")
    root = ""
    if glob:
        fixed = glob.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        root = fixed.rsplit("/", 1)[0] if "/" in fixed else ""
    wanted = 200 if glob else MAX_SEARCH_HITS
    try:
        hits = workspace.search(pattern, False, root, wanted)
    except Err as failure:
        if failure.value.kind != types.ErrorKind.INVALID:
            return f"{label}: {failure.value.message}", False
        try:
            hits = workspace.search(pattern, True, root, wanted)
        except Err as again:
            return f"{label}: {again.value.message}", False
    if glob:
        hits = [h for h in hits if fnmatch.fnmatch(h.path, glob)][:MAX_SEARCH_HITS]
    if not hits:
        return f"{label}: no line matches.", True
    return f"{label}:\n" + "\n".join(f"{h.path}:{h.line}:{h.text}" for h in hits), True


def run_tool(call):
    """Run one tool call through the workspace import; its result, never an exception."""
    try:
        args = json.loads(call.arguments or "{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        text, ok = f"{call.name}: the arguments are not a JSON object", False
    elif call.name == "read_file" and isinstance(args.get("path"), str) and args["path"]:
        start = max(1, _whole(args.get("start"), 1))
        text, ok = read_range(args["path"], start, _whole(args.get("end"), 0))
    elif call.name == "search" and isinstance(args.get("pattern"), str) and args["pattern"]:
        glob = args.get("path_glob")
        text, ok = search_text(args["pattern"], glob if isinstance(glob, str) else "")
    else:
        text, ok = f"{call.name}: unknown tool or missing arguments", False
    return llm.ToolResult(call_id=call.id, name=call.name, content=text, is_error=not ok)


def complete(turns):
    request = llm.ToolRequest(
        turns=turns,
        tools=TOOLS,
        max_tokens=None,
        temperature=None,
        stop=[],
        purpose="plan the change",
    )
    try:
        return llm.complete_with_tools(request)
    except Err as failure:
        raise Err(
            types.Error(
                kind=failure.value.kind, message="The model call failed: " + failure.value.message
            )
        ) from None


def ask(turns, reads):
    """The model's text answer, after running its tool calls (``reads``: rounds so far).

    Returns (text, reads). Past MAX_READ_ROUNDS, calls are answered with a refusal that
    tells the model to plan now; a model that still calls tools gets its text taken as is.
    """
    refusals = 0
    while True:
        reply = complete(turns)
        if not reply.tool_calls:
            return reply.text, reads
        turns.append(turn(llm.Role.ASSISTANT, reply.text, calls=reply.tool_calls))
        if reads >= MAX_READ_ROUNDS:
            refusals += 1
            why = (
                f"Not run: the budget of {MAX_READ_ROUNDS} rounds of reading is spent. "
                "Answer with the JSON plan now."
            )
            results = [
                llm.ToolResult(call_id=c.id, name=c.name, content=why, is_error=True)
                for c in reply.tool_calls
            ]
            turns.append(turn(llm.Role.USER, "Answer with the JSON plan now.", results=results))
            if refusals > 1:
                return reply.text, reads
            continue
        reads += 1
        tasks.progress(10 + reads * 5, f"reading the code ({reads})")
        log.emit(log.Level.INFO, f"council: running {len(reply.tool_calls)} tool call(s)")
        results = [run_tool(c) for c in reply.tool_calls[:10]]
        results += [
            llm.ToolResult(
                call_id=c.id, name=c.name, content="Not run: at most 10 a reply.", is_error=True
            )
            for c in reply.tool_calls[10:]
        ]
        turns.append(turn(llm.Role.USER, "", results=results))


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        tasks.progress(10, "reading the project")
        messages = [
            turn(llm.Role.SYSTEM, SYSTEM_PROMPT),
            turn(
                llm.Role.USER,
                project_summary(task.goal, dict(task.context).get("repo-map", ""))
                + "\n\nRequest: "
                + task.goal,
            ),
        ]
        plan = None
        reads = 0
        for _attempt in range(3):
            reply, reads = ask(messages, reads)
            plan = extract_json(reply)
            problem = None
            if not isinstance(plan, dict):
                problem = "the reply was not one JSON object"
            elif plan.get("question") and not plan.get("subtasks"):
                try:
                    answer = tasks.ask_user(str(plan["question"]))
                except Err as failure:
                    answer = (
                        "(no answer: "
                        + failure.value.message
                        + ") Decide yourself and say what you assumed."
                    )
                log.emit(log.Level.INFO, "council: asked the user: " + str(plan["question"]))
                messages.append(turn(llm.Role.ASSISTANT, reply))
                messages.append(turn(llm.Role.USER, "Answer: " + answer + "\nNow give the plan."))
                continue
            elif not isinstance(plan.get("subtasks"), list) or not plan["subtasks"]:
                problem = "the plan has no subtasks"
            if problem is None:
                break
            log.emit(log.Level.WARN, "council: " + problem + "; asking again")
            messages.append(turn(llm.Role.ASSISTANT, reply))
            messages.append(
                turn(
                    llm.Role.USER,
                    "That was not usable: " + problem + ". Answer with the JSON object only.",
                )
            )
        if not isinstance(plan, dict) or not plan.get("subtasks"):
            raise Err(
                types.Error(kind=types.ErrorKind.INVALID, message="The model gave no usable plan.")
            )
        subtasks = []
        for raw in plan["subtasks"]:
            if not isinstance(raw, dict) or not raw.get("goal"):
                continue
            subtasks.append(
                {
                    "title": str(raw.get("title") or raw["goal"])[:80],
                    "goal": str(raw["goal"]),
                    "files": [str(f) for f in raw.get("files", []) if isinstance(f, str)],
                    "acceptance": [str(a) for a in raw.get("acceptance", []) if isinstance(a, str)],
                }
            )
        tasks.milestone("plan ready")
        summary = f"Planned {len(subtasks)} subtask(s): " + "; ".join(s["title"] for s in subtasks)
        return agent.Outcome(summary=summary, data=json.dumps({"subtasks": subtasks}))

"""The Coder agent: asks the model for SEARCH/REPLACE edits and applies them to its session.

The model answers with blocks like::

    path/to/file.py
    ```python
    <<<<<<< SEARCH
    the exact old lines
    =======
    the new lines
    >>>>>>> REPLACE
    ```

An empty SEARCH creates (or replaces) the file. A block whose SEARCH text is not found
exactly once is not applied; the model is told why and asked again, at most
MAX_ROUNDS times (so is a block with a malformed path, such as an absolute one). A
block the session refuses (a protected path such as ``.git/config``, a file over the
size limit) is refused alone: the other blocks are still applied, the refusal is final
(the model is not asked again because of it, but a later round's request names it and
says why) and the outcome reports it under "refused". No single block ends the run,
but when every block was refused and nothing applied, the run fails with the session's
reasons (there is nothing to review). Edits land in the session, never in the user's
files. Rejected hunks with reasons arrive in the task's "feedback" context and go into
the prompt.

The model sees the files in scope that fit the budget, the kernel's repository map
(the "repo-map" context) and, for every file left out, its size and how to ask for
it: instead of edits it may answer with fenced requests, which the Coder answers
from the session and asks again (at most MAX_READ_ROUNDS times)::

    ```read path/to/file.py:120-180```
    ```search def parse_header```

On a provider that supports tools, the model is offered two tools instead, through the
provider's own tool-calling API: ``read_file {path, start, end}`` and ``search
{pattern, path_glob}``. The Coder runs each call through its workspace import (the same
capability checks and audit rows as a fenced request: a refused read comes back to the
model as a failed tool result), sends the results back, and asks again; tool rounds and
fenced requests share one budget of MAX_READ_ROUNDS, and past it the model is told to
send its edits. A provider without tools gets the same conversation as text and answers
with fenced requests, which work as before.

A SEARCH that does not match gets back the file's most similar lines, with their line
numbers, so the model can copy the real text.
"""

import fnmatch
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, tasks, types, workspace, workspace_write

MAX_ROUNDS = 3
MAX_READ_ROUNDS = 8
MAX_FILE_BYTES = 60_000
MAX_CONTEXT_BYTES = 200_000
MAX_READ_LINES = 400
MAX_SEARCH_HITS = 50

SYSTEM_PROMPT = """You are the Coder inside briotui. You change a project by answering
with SEARCH/REPLACE blocks only. For each edit, write the file's path on its own line,
then a fenced block:

path/to/file.py
```
<<<<<<< SEARCH
exact lines copied from the current file
=======
the lines that replace them
>>>>>>> REPLACE
```

The SEARCH part must match the current file exactly, once. To create a file, leave
SEARCH empty. Keep each block small. Explain nothing outside the blocks.

If you need to see code you were not shown, call the read_file and search tools
when you have them. Without tools, answer with requests instead of blocks, one fenced
line each, and you will get the text back:

```read path/to/file.py:120-180```   (lines 120 to 180; without a range, from the start)
```search some regular expression```  (matching lines as path:line:text)

Copy SEARCH lines from what you read."""

TOOLS = [
    llm.Tool(
        name="read_file",
        description=(
            "Read lines start to end (1-based, inclusive) of a text file of the project, "
            f"as your session sees it; at most {MAX_READ_LINES} lines a call. Without "
            "start and end, the file's first lines."
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
"""The tools offered to a provider that supports tools."""


def parse_blocks(text):
    """(path, search, replace) triples from a reply, in order."""
    blocks = []
    lines = text.splitlines()
    i = 0
    last_path = ""
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped == "<<<<<<< SEARCH":
            search, replace = [], []
            i += 1
            while i < len(lines) and lines[i].strip() != "=======":
                search.append(lines[i])
                i += 1
            i += 1
            while i < len(lines) and lines[i].strip() != ">>>>>>> REPLACE":
                replace.append(lines[i])
                i += 1
            blocks.append((last_path, search, replace))
        elif stripped and not stripped.startswith("```"):
            last_path = stripped.strip("`*: ")
        i += 1
    return blocks


def join(lines):
    return "".join(line + "\n" for line in lines)


class Refused(Exception):
    """The session will not take this block (its path or its size), whatever the text."""

    def __init__(self, path, failure):
        super().__init__(f"{path}: {failure.message}")
        self.path = path
        self.reason = failure.message
        self.kind = failure.kind


FINAL_KINDS = (types.ErrorKind.DENIED, types.ErrorKind.TOO_LARGE)
"""Error kinds that sending the block again would not change: the block is refused."""


def write(path, data, executable):
    """Write one file of the session; None, or a sentence saying why it was not written.

    Raises:
        Refused: the session will not take this file (a protected path, too large).
        Err: the workspace is not there at all; the run cannot go on.
    """
    try:
        workspace_write.write(path, data, executable)
    except Err as failure:
        if failure.value.kind in FINAL_KINDS:
            raise Refused(path, failure.value) from None
        if failure.value.kind == types.ErrorKind.UNAVAILABLE:
            raise
        return f"{path}: cannot write it ({failure.value.message})"
    return None


def apply_block(path, search, replace):
    """Apply one block; returns None on success or a sentence saying why it failed.

    Raises:
        Refused: the session refuses the block's path or content; the model cannot fix
            that by sending the block again.
    """
    if not path:
        return "a block had no file path on the line before it"
    new_text = join(replace)
    if not search:
        return write(path, new_text.encode(), False)
    try:
        current = workspace.read_text(path)
    except Err as failure:
        if failure.value.kind in FINAL_KINDS:
            raise Refused(path, failure.value) from None
        return f"{path}: cannot read it ({failure.value.message})"
    old_text = join(search)
    count = current.count(old_text)
    if count == 0 and not current.endswith("\n") and current.endswith(old_text[:-1]):
        old_text, new_text, count = old_text[:-1], new_text[:-1], 1
    if count != 1:
        if count == 0:
            near = nearest_lines(current, search)
            if near:
                return (
                    f"{path}: the SEARCH text was not found. The most similar lines of "
                    f"{path} are (line numbers are not part of the file):\n{near}\n"
                    "Copy the SEARCH lines exactly from the file"
                )
            return (
                f"{path}: the SEARCH text was not found and no line of the file is like it; "
                f"read the region first (the read_file tool, or ```read {path}:START-END```; "
                "the search tool, or ```search TEXT```)"
            )
        return (
            f"{path}: the SEARCH text was found {count} times; "
            "add lines around it so it matches once"
        )
    entry = workspace.stat(path)
    return write(
        path, current.replace(old_text, new_text).encode(), bool(entry and entry.executable)
    )


def parse_requests(text):
    """("read"|"search", argument) pairs from fenced request lines in a reply."""
    requests = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        for kind in ("read", "search"):
            head = "```" + kind
            if stripped.startswith(head) and (
                len(stripped) == len(head) or stripped[len(head)] in " \t:"
            ):
                arg = stripped[len(head) :].strip(" \t:")
                if arg.endswith("```"):
                    arg = arg[:-3].strip()
                if not arg and i + 1 < len(lines):
                    arg = lines[i + 1].strip()
                if arg and arg != "```":
                    requests.append((kind, arg))
    return requests


def read_request(arg):
    """Answer one ``read path[:start-end]`` request from the session."""
    path, start, end = arg, 1, 0
    head, sep, span = arg.rpartition(":")
    if not (sep and span.replace("-", "").strip().isdigit()):
        head, sep, span = arg.rpartition(" ")  # "path 120-180" as well as "path:120-180"
    if sep and span and span.replace("-", "").replace(" ", "").isdigit():
        path = head.strip()
        first, _, last = span.partition("-")
        start = int(first.strip() or "1")
        end = int(last.strip()) if last.strip() else 0
    path = path.strip("`*'\" ")
    text, _ok = read_range(path, start, end, f"read {arg}", tool=False)
    return text


def read_range(path, start, end, label, tool):
    """(text, ok): lines ``start`` to ``end`` of ``path`` (end 0: a page from start)."""
    if end == 0 or end - start + 1 > MAX_READ_LINES:
        end = max(start, 1) + MAX_READ_LINES - 1
    try:
        got = workspace.read_lines(path, max(start, 1), end)
    except Err as failure:
        return f"{label}: {failure.value.message}", False
    if got.end == 0:
        return f"{label}: {path} has {got.total_lines} line(s); that range is empty.", True
    more = ""
    if got.end < got.total_lines:
        following = f"{got.end + 1}-{min(got.total_lines, got.end + MAX_READ_LINES)}"
        ask = f"read_file start={got.end + 1}" if tool else f"```read {path}:{following}```"
        more = f" (the file has {got.total_lines} lines; ask for more with {ask})"
    head = f"{path} lines {got.start}-{got.end} of {got.total_lines}{more}:\n"
    return head + f"```\n{got.text}```", True


def search_request(arg):
    """Answer one ``search pattern`` request from the session."""
    text, _ok = search_text(arg, "")
    return text


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
    lines = [f"{h.path}:{h.line}:{h.text}" for h in hits]
    if len(hits) >= MAX_SEARCH_HITS:
        lines.append(f"(stopped at {MAX_SEARCH_HITS} matches; search for something narrower)")
    return f"{label}:\n" + "\n".join(lines), True


def answer_requests(requests):
    """The text that answers a reply's read and search requests."""
    parts = []
    for kind, arg in requests[:10]:
        parts.append(read_request(arg) if kind == "read" else search_request(arg))
    if len(requests) > 10:
        parts.append("(only the first 10 requests were answered)")
    return "\n\n".join(parts)


def _whole(value, default):
    """A tool argument as a whole number (models send 120 or "120"), else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default


def run_tool(call):
    """Run one tool call through the workspace import; its result, never an exception."""
    try:
        args = json.loads(call.arguments or "{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        text, ok = f"{call.name}: the arguments are not a JSON object: {call.arguments}", False
    elif call.name == "read_file":
        path = args.get("path")
        if not isinstance(path, str) or not path.strip():
            text, ok = "read_file: give the file's path", False
        else:
            start = max(1, _whole(args.get("start"), 1))
            end = _whole(args.get("end"), 0)
            label = f"read_file {path}"
            text, ok = read_range(path.strip(), start, end, label, tool=True)
    elif call.name == "search":
        pattern = args.get("pattern")
        glob = args.get("path_glob")
        if not isinstance(pattern, str) or not pattern:
            text, ok = "search: give a pattern", False
        else:
            text, ok = search_text(pattern, glob if isinstance(glob, str) else "")
    else:
        text, ok = f"There is no tool {call.name!r}; the tools are read_file and search.", False
    return llm.ToolResult(call_id=call.id, name=call.name, content=text, is_error=not ok)


def refuse_tools(calls, why):
    """Results that run none of ``calls``, saying why."""
    return [llm.ToolResult(call_id=c.id, name=c.name, content=why, is_error=True) for c in calls]


def nearest_lines(current, search, context_lines=2):
    """The file's lines most like ``search``, numbered, for a SEARCH that did not match.

    A sliding window as long as the SEARCH scores how many of its lines appear
    (whitespace aside) in the SEARCH; the best window, with a little context, comes
    back as ``NNN: text`` lines. Empty when nothing is alike.
    """
    lines = current.splitlines()
    wanted = [line.strip() for line in search]
    size = max(1, len(wanted))
    wanted_set = set(w for w in wanted if w)
    if not lines or not wanted_set:
        return ""
    hit = [1 if line.strip() in wanted_set else 0 for line in lines]
    window = sum(hit[:size])
    best, best_at = window, 0
    for start in range(1, max(1, len(lines) - size + 1)):
        window += hit[start + size - 1] - hit[start - 1]
        if window > best:
            best, best_at = window, start
    if best == 0:
        # no line matches exactly: look for the first SEARCH line as a fragment
        probe = next((w for w in wanted if w), "")
        for number, line in enumerate(lines):
            if probe and (probe in line or (line.strip() and line.strip() in probe)):
                best_at = number
                break
        else:
            return ""
    first = max(0, best_at - context_lines)
    last = min(len(lines), best_at + size + context_lines)
    width = len(str(last))
    return "\n".join(f"{n + 1:>{width}}: {lines[n]}" for n in range(first, last))


def project_context(goal, context):
    """The file list and the contents of the files in scope, within a budget."""
    try:
        entries = workspace.list_dir("", True)
    except Err:
        entries = []
    files = [e.path for e in entries if e.kind == workspace.EntryKind.FILE]
    scope = [p for p in context.get("files", "").split() if p] or [
        p for p in files if p in goal or p.rsplit("/", 1)[-1] in goal
    ]
    sizes = {e.path: e.size for e in entries}
    listed = files[:500]
    parts = ["Files in the project:\n" + "\n".join(listed)]
    if len(files) > len(listed):
        parts[0] += (
            f"\n({len(files) - len(listed)} more files not listed; "
            "find them with ```search PATTERN```)"
        )
    if context.get("repo-map"):
        parts.append(
            "Repository map (the symbols of the project's files, most relevant first):\n"
            + context["repo-map"]
        )
    budget = MAX_CONTEXT_BYTES
    left_out = []
    for path in scope:
        try:
            text = workspace.read_text(path)
        except Err as failure:
            if failure.value.kind == types.ErrorKind.NOT_FOUND:
                continue  # a file the plan will create
            left_out.append(f"- {path}: not shown ({failure.value.message})")
            continue
        if len(text) > min(MAX_FILE_BYTES, budget):
            left_out.append(
                f"- {path}: not shown, {sizes.get(path, len(text))} bytes, "
                f"{text.count(chr(10)) + 1} lines (too large for the prompt)"
            )
            continue
        budget -= len(text)
        parts.append(f"{path}\n```\n{text}```")
    if left_out:
        parts.append(
            "These files in scope were left out of this prompt:\n"
            + "\n".join(left_out)
            + "\nRead the part you need with ```read PATH:START-END``` or find it with "
            "```search PATTERN``` (or the read_file and search tools, when you have them) "
            "before you edit it; SEARCH text must come from what you read."
        )
    return "\n\n".join(parts)


def refusal_note(refused):
    """What the model is told about the blocks the session refused (none: nothing)."""
    if not refused:
        return ""
    lines = [f"- refused: {r.path}: {r.reason}" for r in refused]
    return (
        "These blocks were refused and will not be applied; do not send them again:\n"
        + "\n".join(lines)
        + "\n\n"
    )


def turn(role, content, calls=None, results=None):
    return llm.Turn(role=role, content=content, tool_calls=calls or [], tool_results=results or [])


def ask(turns):
    """One model call, offering the tools; raises the run's error if it fails."""
    request = llm.ToolRequest(
        turns=turns,
        tools=TOOLS,
        max_tokens=None,
        temperature=None,
        stop=[],
        purpose="write the edits",
    )
    try:
        return llm.complete_with_tools(request)
    except Err as failure:
        raise Err(
            types.Error(
                kind=failure.value.kind,
                message=f"The model call failed: {failure.value.message}",
            )
        ) from None


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        context = dict(task.context)
        prompt = project_context(task.goal, context) + "\n\nRequest: " + task.goal
        if context.get("feedback"):
            prompt += "\n\nThe user rejected parts of your last attempt:\n" + context["feedback"]
        if context.get("tests_failed"):
            prompt += (
                "\n\nThe project's tests failed after your change:\n" + context["tests_failed"]
            )
        turns = [turn(llm.Role.SYSTEM, SYSTEM_PROMPT), turn(llm.Role.USER, prompt)]
        applied, failures, refused = [], [], []
        reads = 0
        tool_calls = 0
        native = False
        round_no = 0
        while round_no < MAX_ROUNDS:
            round_no += 1
            tasks.progress(min(90, round_no * 30), f"round {round_no}: asking for edits")
            reply = ask(turns)
            native = native or reply.tools_offered
            blocks = parse_blocks(reply.text)
            if reply.tool_calls:
                # Every call gets a result (the vendors require it), run or refused.
                turns.append(turn(llm.Role.ASSISTANT, reply.text, calls=reply.tool_calls))
                note = ""
                if blocks:
                    note = (
                        "The SEARCH/REPLACE blocks of a reply that also calls tools are not "
                        "applied; send them again once you have read what you need.\n"
                    )
                if reads >= MAX_READ_ROUNDS:
                    failures = [f"the model asked to read more than {MAX_READ_ROUNDS} times"]
                    why = (
                        f"Not run: the budget of {MAX_READ_ROUNDS} rounds of reading is spent. "
                        "Send the SEARCH/REPLACE blocks now, from what you have read."
                    )
                    turns.append(
                        turn(
                            llm.Role.USER,
                            note + "No more tool calls: send the SEARCH/REPLACE blocks now.",
                            results=refuse_tools(reply.tool_calls, why),
                        )
                    )
                    continue
                reads += 1
                round_no -= 1  # reading is not an editing round
                calls = reply.tool_calls[:10]
                tool_calls += len(calls)
                log.emit(log.Level.INFO, f"coder: running {len(calls)} tool call(s)")
                tasks.progress(min(90, 10 + reads * 5), f"reading ({reads})")
                results = [run_tool(c) for c in calls]
                results += refuse_tools(
                    reply.tool_calls[10:], "Not run: at most 10 tool calls a reply."
                )
                turns.append(turn(llm.Role.USER, note, results=results))
                continue
            requests = parse_requests(reply.text)
            if requests and not blocks:
                turns.append(turn(llm.Role.ASSISTANT, reply.text))
                if reads >= MAX_READ_ROUNDS:
                    failures = [f"the model asked to read more than {MAX_READ_ROUNDS} times"]
                    turns.append(
                        turn(llm.Role.USER, "No more reads: send the SEARCH/REPLACE blocks now.")
                    )
                    continue
                reads += 1
                round_no -= 1  # reading is not an editing round
                log.emit(log.Level.INFO, f"coder: answering {len(requests)} read request(s)")
                tasks.progress(min(90, 10 + reads * 5), f"reading ({reads})")
                turns.append(
                    turn(
                        llm.Role.USER,
                        answer_requests(requests)
                        + "\n\nSend SEARCH/REPLACE blocks now, or more requests.",
                    )
                )
                continue
            new_refusals = []
            if not blocks:
                failures = ["the reply had no SEARCH/REPLACE blocks"]
            else:
                failures = []
                for path, search, replace in blocks:
                    try:
                        problem = apply_block(path, search, replace)
                    except Refused as refusal:
                        new_refusals.append(refusal)
                        log.emit(log.Level.WARN, f"coder: refused {refusal}")
                        continue
                    if problem is None:
                        applied.append(path)
                        log.emit(log.Level.INFO, f"coder: edited {path}")
                    else:
                        failures.append(problem)
                        log.emit(log.Level.WARN, f"coder: {problem}")
            refused.extend(new_refusals)
            if not failures:
                break
            turns.append(turn(llm.Role.ASSISTANT, reply.text))
            turns.append(
                turn(
                    llm.Role.USER,
                    refusal_note(new_refusals)
                    + "These blocks were not applied:\n- "
                    + "\n- ".join(failures)
                    + "\nSend corrected blocks for those only.",
                )
            )
        edited = sorted(set(applied))
        if refused and not edited and not failures:
            # nothing to review: the run fails with the session's own words
            reasons = [r.reason for r in refused]
            raise Err(
                types.Error(
                    kind=refused[0].kind,
                    message=reasons[0]
                    if len(reasons) == 1
                    else "Every block was refused: " + " ".join(reasons),
                )
            )
        tasks.milestone("edits applied" if not failures and not refused else "edits partly applied")
        summary = (
            f"Edited {len(edited)} file(s): {', '.join(edited)}."
            if edited
            else "No edits were applied."
        )
        if refused:
            summary += " Refused: " + "; ".join(f"{r.path} ({r.reason})" for r in refused)
        if failures:
            summary += " Not applied: " + "; ".join(failures)
        return agent.Outcome(
            summary=summary,
            data=json.dumps(
                {
                    "edited": edited,
                    "failed": failures,
                    "refused": [{"path": r.path, "reason": r.reason} for r in refused],
                    "rounds": round_no,
                    "reads": reads,
                    "tool_calls": tool_calls,
                    "tools": native,
                }
            ),
        )

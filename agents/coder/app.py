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
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, tasks, types, workspace, workspace_write

MAX_ROUNDS = 3
MAX_FILE_BYTES = 60_000
MAX_CONTEXT_BYTES = 200_000

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
SEARCH empty. Keep each block small. Explain nothing outside the blocks."""


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
        where = "not found" if count == 0 else f"found {count} times"
        return f"{path}: the SEARCH text was {where}; copy the lines exactly from the file"
    entry = workspace.stat(path)
    return write(
        path, current.replace(old_text, new_text).encode(), bool(entry and entry.executable)
    )


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
    parts = ["Files in the project:\n" + "\n".join(files[:500])]
    budget = MAX_CONTEXT_BYTES
    for path in scope:
        try:
            text = workspace.read_text(path)
        except Err:
            continue
        if len(text) > min(MAX_FILE_BYTES, budget):
            continue
        budget -= len(text)
        parts.append(f"{path}\n```\n{text}```")
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


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        context = dict(task.context)
        prompt = project_context(task.goal, context) + "\n\nRequest: " + task.goal
        if context.get("feedback"):
            prompt += "\n\nThe user rejected parts of your last attempt:\n" + context["feedback"]
        messages = [
            llm.Message(role=llm.Role.SYSTEM, content=SYSTEM_PROMPT),
            llm.Message(role=llm.Role.USER, content=prompt),
        ]
        applied, failures, refused = [], [], []
        for round_no in range(1, MAX_ROUNDS + 1):
            tasks.progress(min(90, round_no * 30), f"round {round_no}: asking for edits")
            request = llm.CompletionRequest(
                messages=messages,
                max_tokens=None,
                temperature=None,
                stop=[],
                purpose="write the edits",
            )
            try:
                reply = llm.complete(request)
            except Err as failure:
                raise Err(
                    types.Error(
                        kind=failure.value.kind,
                        message=f"The model call failed: {failure.value.message}",
                    )
                ) from None
            blocks = parse_blocks(reply.text)
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
            messages.append(llm.Message(role=llm.Role.ASSISTANT, content=reply.text))
            messages.append(
                llm.Message(
                    role=llm.Role.USER,
                    content=refusal_note(new_refusals)
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
                }
            ),
        )

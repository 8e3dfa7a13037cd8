"""The Council: reads the project and turns a request into a plan of subtasks.

It asks the model for a JSON plan — subtasks, each with a goal, the files in scope and
how to know it is done — and may ask the user one clarifying question through the
kernel first. The plan goes back to the kernel as the outcome's data. The prompt holds
the file list, the kernel's repository map (the "repo-map" context) and the small files
the request names; a named file too large to show is said to be left out.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, tasks, types, workspace

MAX_FILE_BYTES = 20_000
MAX_CONTEXT_BYTES = 120_000

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
leave "subtasks" empty."""


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


def ask(messages):
    request = llm.CompletionRequest(
        messages=messages, max_tokens=None, temperature=None, stop=[], purpose="plan the change"
    )
    try:
        return llm.complete(request).text
    except Err as failure:
        raise Err(
            types.Error(
                kind=failure.value.kind, message="The model call failed: " + failure.value.message
            )
        )


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        tasks.progress(10, "reading the project")
        messages = [
            llm.Message(role=llm.Role.SYSTEM, content=SYSTEM_PROMPT),
            llm.Message(
                role=llm.Role.USER,
                content=project_summary(task.goal, dict(task.context).get("repo-map", ""))
                + "\n\nRequest: "
                + task.goal,
            ),
        ]
        plan = None
        for attempt in range(3):
            reply = ask(messages)
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
                messages.append(llm.Message(role=llm.Role.ASSISTANT, content=reply))
                messages.append(
                    llm.Message(
                        role=llm.Role.USER, content="Answer: " + answer + "\nNow give the plan."
                    )
                )
                continue
            elif not isinstance(plan.get("subtasks"), list) or not plan["subtasks"]:
                problem = "the plan has no subtasks"
            if problem is None:
                break
            log.emit(log.Level.WARN, "council: " + problem + "; asking again")
            messages.append(llm.Message(role=llm.Role.ASSISTANT, content=reply))
            messages.append(
                llm.Message(
                    role=llm.Role.USER,
                    content="That was not usable: "
                    + problem
                    + ". Answer with the JSON object only.",
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

"""The Smart Agent: general purpose, with files and the allowlisted shell.

Given a command (the kernel passes the project's test command as JSON in the
"command" context), it runs it in the session through ``shell.run`` and reports the
result. Otherwise it asks the model which one allowlisted command to run for the goal,
runs it, and asks the model to summarize the output. Commands always run as an argv,
never through a shell, in a copy of the session with a scrubbed environment.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, shell, tasks, types

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


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        context = dict(task.context)
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

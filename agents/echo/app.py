"""The echo agent: asks the model the task's goal and returns the reply.

It shows the whole shape of a briotui agent in a few lines: a class ``Agent`` with
``run(task)``, logging, one model call through the kernel (the agent never sees a key
or a provider), and an ``Err`` with a WIT error for failures.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import clock, llm, log, types

SYSTEM_PROMPT = "You are a terse assistant inside briotui. Answer the request directly."


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        started = clock.monotonic_ns()
        log.emit(log.Level.INFO, f"echo: asking the model about {task.goal[:60]!r}")
        request = llm.CompletionRequest(
            messages=[
                llm.Message(role=llm.Role.SYSTEM, content=SYSTEM_PROMPT),
                llm.Message(role=llm.Role.USER, content=task.goal),
            ],
            max_tokens=1024,
            temperature=None,
            stop=[],
            purpose="answer the request",
        )
        try:
            reply = llm.complete(request)
        except Err as failure:
            error = failure.value
            log.emit(log.Level.ERROR, f"echo: the model call failed: {error.message}")
            raise Err(
                types.Error(kind=error.kind, message=f"The model call failed: {error.message}")
            )
        elapsed_ms = (clock.monotonic_ns() - started) // 1_000_000
        details = {
            "provider": reply.provider,
            "model": reply.model,
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
            "elapsed_ms": elapsed_ms,
        }
        return agent.Outcome(summary=reply.text, data=json.dumps(details))

"""The scripted demo: clearly labelled canned model replies, for trying briotui without a key.

Every built-in agent gets a reply in the format it expects (see the README's "Reply
formats"), so any request walks the whole loop: the Council plans one subtask, the
Coder first calls the ``search`` tool (a scripted tool call, shown in the conversation
as one compact line), then writes ``BRIOTUI_DEMO.md`` in its session, the Reviewer
leaves a finding on the hunk it finds in the diff, and the project's tests run if a
test command is configured. Nothing reaches the project unless the user accepts the
hunk and commits, like any other change.
"""

from __future__ import annotations

import json
import re
from typing import Final

from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.llm.types import Completion, CompletionRequest, DeltaCallback, ToolCall

DEMO_FILE: Final = "BRIOTUI_DEMO.md"

DEMO_MODEL: Final = "demo"

_REQUEST = re.compile(r"(?:^|\n)Request: ([^\n]*)")
_ASKED = "saying what was asked: "
_HUNK = re.compile(r"#(h-[0-9a-f]+)")


def _request(request: CompletionRequest) -> str:
    """The user's request as the asking agent wrote it in its prompt (its first line)."""
    for message in reversed(request.messages):
        found = list(_REQUEST.finditer(message.content)) if message.role == "user" else []
        if found:
            goal = found[-1].group(1).strip()
            return goal.partition(_ASKED)[2] or goal or "your request"
    return "your request"


def plan_reply(goal: str) -> str:
    """The Council's plan: one subtask writing the demo file."""
    plan = {
        "question": None,
        "subtasks": [
            {
                "title": f"Describe the request in {DEMO_FILE}",
                "goal": f"Write {DEMO_FILE}, saying what was asked: {goal}",
                "files": [DEMO_FILE],
                "acceptance": [f"{DEMO_FILE} names the request"],
            }
        ],
    }
    return json.dumps(plan, indent=1)


def coder_reply(goal: str, n: int) -> str:
    """The Coder's SEARCH/REPLACE block: (re)write the demo file (edit ``n`` of the run)."""
    return f"""{DEMO_FILE}
```
<<<<<<< SEARCH
=======
# briotui demo

This file was proposed by the **scripted demo** provider, not by a real model
(edit {n} of this run), for the request:

> {goal}

Review it with ctrl+r: accept (a) or reject (r) the hunk, then commit (c) or roll
back (ctrl+z). Nothing reaches your working tree until you commit.
>>>>>>> REPLACE
```
"""


def review_reply(prompt: str) -> str:
    """The Reviewer's verdict, with a finding on the first hunk of the diff in ``prompt``
    (the user's messages: the system prompt's example id is no hunk)."""
    hunks = _HUNK.findall(prompt)
    findings = (
        [
            {
                "hunk": hunks[0],
                "severity": "info",
                "message": "A canned finding from the scripted demo; a real model reads the "
                "change against the request here.",
                "suggestion": "",
            }
        ]
        if hunks
        else []
    )
    return json.dumps({"verdict": "approve", "findings": findings}, indent=1)


def command_reply() -> str:
    """The Smart agent's choice of command when it has no test command to run."""
    return json.dumps({"argv": ["git", "status", "--short"], "why": "the scripted demo"})


class DemoProvider:
    """Answers each built-in agent in its reply format; labelled "scripted" everywhere."""

    name = "scripted"

    def __init__(self) -> None:
        self._edits = 0

    def reply_for(self, request: CompletionRequest) -> str:
        """The demo's reply text for ``request`` (by the asking agent and its purpose)."""
        goal = _request(request)
        agent = request.agent
        if agent == "council":
            return plan_reply(goal)
        if agent == "coder":
            self._edits += 1
            return coder_reply(goal, self._edits)
        if agent == "reviewer":
            return review_reply("\n".join(m.content for m in request.messages if m.role == "user"))
        if agent == "smart" and "summar" not in request.purpose:
            return command_reply()
        return (
            "This is the scripted demo, not a real model: it answers each built-in agent "
            "in the format the agent expects. Configure a provider to get real answers."
        )

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Answer ``request`` (streamed word by word, like any scripted reply)."""
        last = request.messages[-1] if request.messages else None
        searched = any(m.tool_results for m in request.messages)
        if request.agent == "coder" and request.tools and last is not None and not searched:
            # the demo's one tool call: look for notes left in the code before editing
            search = ToolCall("demo-search", "search", json.dumps({"pattern": "TODO|FIXME"}))
            reply = ScriptedReply(text="", tool_calls=(search,), model=DEMO_MODEL)
        else:
            reply = ScriptedReply(text=self.reply_for(request), model=DEMO_MODEL)
        return await ScriptedProvider([reply], source="the built-in demo").complete(
            request, on_delta
        )


def demo_provider() -> DemoProvider:
    """The provider of the scripted demo (the TUI's ``--demo`` and palette entry)."""
    return DemoProvider()

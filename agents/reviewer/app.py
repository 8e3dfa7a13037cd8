"""The Reviewer: reads a session's diff and attaches findings to its hunks.

Read-only by construction: its WIT world imports no ``workspace-write`` and no
``shell``, so it could not change anything even if its model told it to. It asks the
model for a verdict and findings tied to hunk ids, keeps only findings whose hunk
exists, and returns them as the outcome's data for the kernel to show beside the hunks.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import llm, log, tasks, types, workspace

SEVERITIES = ("info", "warning", "error")

SYSTEM_PROMPT = """You are the Reviewer inside briotui. You read a diff whose hunk headers
end with an id like #h-1a2b3c4d5e. Answer with one JSON object and nothing else:

{"verdict": "approve" or "request-changes",
 "findings": [{"hunk": "h-1a2b3c4d5e", "severity": "info" | "warning" | "error",
               "message": "what is wrong or worth knowing",
               "suggestion": "how to fix it, or empty"}]}

Point out bugs, missing tests, risky changes and style problems that matter. Use
"request-changes" only for errors."""


def extract_json(text):
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        return None
    try:
        return json.loads(text[start : end + 1])
    except ValueError:
        return None


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        try:
            diff = workspace.changes()
        except Err as failure:
            raise Err(types.Error(kind=failure.value.kind, message="Cannot read the diff: " + failure.value.message))
        hunks = set(re.findall(r"#(h-[0-9a-f]+)", diff))
        if not hunks:
            return agent.Outcome(summary="Nothing to review: the session has no changes.", data=json.dumps({"verdict": "approve", "findings": []}))
        tasks.progress(30, f"reviewing {len(hunks)} hunk(s)")
        request = llm.CompletionRequest(
            messages=[
                llm.Message(role=llm.Role.SYSTEM, content=SYSTEM_PROMPT),
                llm.Message(role=llm.Role.USER, content="The request was: " + task.goal + "\n\nThe diff:\n" + diff),
            ],
            max_tokens=None, temperature=None, stop=[], purpose="review the diff",
        )
        try:
            reply = llm.complete(request).text
        except Err as failure:
            raise Err(types.Error(kind=failure.value.kind, message="The model call failed: " + failure.value.message))
        review = extract_json(reply)
        if not isinstance(review, dict):
            log.emit(log.Level.WARN, "reviewer: the model's review was not JSON; recording it as one finding")
            review = {"verdict": "request-changes", "findings": [{"hunk": "", "severity": "warning", "message": reply[:2000], "suggestion": ""}]}
        findings = []
        for raw in review.get("findings", []):
            if not isinstance(raw, dict):
                continue
            hunk = str(raw.get("hunk", ""))
            if hunk and hunk not in hunks:
                log.emit(log.Level.WARN, f"reviewer: dropped a finding for unknown hunk {hunk}")
                continue
            severity = raw.get("severity") if raw.get("severity") in SEVERITIES else "info"
            findings.append({"hunk_id": hunk, "severity": severity, "message": str(raw.get("message", "")), "suggestion": str(raw.get("suggestion", ""))})
        verdict = "request-changes" if review.get("verdict") == "request-changes" else "approve"
        tasks.milestone("review done")
        errors = sum(1 for f in findings if f["severity"] == "error")
        summary = f"Review: {verdict}; {len(findings)} finding(s), {errors} error(s)."
        return agent.Outcome(summary=summary, data=json.dumps({"verdict": verdict, "findings": findings}))

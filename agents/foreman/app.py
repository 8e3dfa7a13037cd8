"""The Foreman: runs a plan's subtasks in parallel branches and merges them back.

Each subtask goes to a Coder through ``tasks.spawn-subtask``: the kernel gives it a
branch (a fork of this task's session) and confines its writes to the subtask's files.
A subtask that fails is retried once with the failure explained (the retry budget);
then the finished branches are merged back three-way: every conflict-free file and region;
the conflicting regions are reported for the user to resolve, never overwritten. The Foreman keeps its attempts in its private SQL tables.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import log, sql, tasks, types

RETRIES = 1
WAIT_MS = 600_000


def note(table, values):
    """Record a row in this agent's own table (best effort: notes never fail a run)."""
    try:
        name = sql.prefix() + "_" + table
        sql.execute(
            f"CREATE TABLE IF NOT EXISTS {name} (subtask TEXT, attempt INTEGER, ok INTEGER, summary TEXT)",
            [],
        )
        sql.execute(
            f"INSERT INTO {name} VALUES (?, ?, ?, ?)",
            [
                sql.Value_Text(values[0]),
                sql.Value_Integer(values[1]),
                sql.Value_Integer(values[2]),
                sql.Value_Text(values[3]),
            ],
        )
    except Err as failure:
        log.emit(log.Level.DEBUG, "foreman: notes unavailable: " + failure.value.message)


def spawn(item, extra=""):
    goal = item["goal"] + extra
    if item.get("acceptance"):
        goal += "\nDone when: " + "; ".join(item["acceptance"])
    return tasks.spawn_subtask(
        tasks.Subtask(
            agent="coder",
            goal=goal,
            scope=item.get("files", []),
            acceptance=item.get("acceptance", []),
        )
    )


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        context = dict(task.context)
        try:
            plan = json.loads(context.get("plan", "[]"))
        except ValueError:
            raise Err(types.Error(kind=types.ErrorKind.INVALID, message="The plan is not JSON."))
        if not plan:
            raise Err(
                types.Error(kind=types.ErrorKind.INVALID, message="The plan has no subtasks.")
            )
        try:
            ids = [spawn(item) for item in plan]
            tasks.progress(20, f"{len(ids)} coder(s) started")
            results = tasks.await_subtasks(ids, WAIT_MS)
            for attempt in range(1, RETRIES + 1):
                failed = [i for i, r in enumerate(results) if not r.ok]
                if not failed:
                    break
                for i in failed:
                    note("attempts", (ids[i], attempt - 1, 0, results[i].summary))
                    log.emit(
                        log.Level.WARN,
                        f"foreman: subtask {ids[i]} failed; retrying: {results[i].summary}",
                    )
                    ids[i] = spawn(plan[i], "\nThe previous attempt failed: " + results[i].summary)
                retried = tasks.await_subtasks([ids[i] for i in failed], WAIT_MS)
                for i, result in zip(failed, retried):
                    results[i] = result
            for i, result in enumerate(results):
                note("attempts", (ids[i], RETRIES, int(result.ok), result.summary))
            tasks.milestone("subtasks coded")
            done = [r.id for r in results if r.ok]
            report = (
                json.loads(tasks.merge_subtasks(done)) if done else {"merged": [], "conflicts": []}
            )
        except Err as failure:
            raise Err(
                types.Error(
                    kind=failure.value.kind,
                    message="Running the plan failed: " + failure.value.message,
                )
            )
        tasks.milestone("branches merged" if not report["conflicts"] else "merged with conflicts")
        failed = [r for r in results if not r.ok]
        summary = f"{len(done)} of {len(results)} subtask(s) coded, {len(report['merged'])} merged cleanly"
        if report["conflicts"]:
            summary += (
                f"; {len(report['conflicts'])} merged with conflicts to resolve in "
                + ", ".join(f["path"] for c in report["conflicts"] for f in c["files"])
            )
        if failed:
            summary += "; failed: " + "; ".join(r.summary for r in failed)
        return agent.Outcome(
            summary=summary + ".",
            data=json.dumps(
                {
                    "subtasks": [{"id": r.id, "ok": r.ok, "summary": r.summary} for r in results],
                    "merge": report,
                }
            ),
        )

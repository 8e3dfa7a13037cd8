"""``briotui tasks ...`` and ``briotui grants ...``: interrupted work and stored grants.

A task that was running when briotui went away is kept (with its session) and listed
as interrupted; ``tasks resume`` runs its request again as a new task, replaying its
run journals so the steps it had done cost no model request again (``--no-journal``
asks everything again; ``--interrupted`` resumes every interrupted task), ``tasks
discard`` rolls its session back. ``grants`` lists the permissions the user gave
agents and revokes one (and everything delegated from it).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from briotui.cli.kernel_work import when, with_kernel
from briotui.cli.output import one_line, print_json, say, table
from briotui.cli.prompt import add_answer_arguments, use_answers
from briotui.kernel.errors import BrioError
from briotui.kernel.kernel import Kernel
from briotui.kernel.settings import Settings


def register(sub: Any) -> None:
    """Add the ``tasks`` and ``grants`` subcommand trees."""
    tasks = sub.add_parser(
        "tasks",
        help="list, resume or discard stored (and interrupted) tasks",
        description=(
            "Tasks running when briotui quit are kept with their sessions. Resume one "
            "(run its request again) or discard it (roll its session back)."
        ),
    )
    leaves = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    p = leaves.add_parser("list", help="list the stored tasks")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_tasks_list)
    p = leaves.add_parser(
        "resume",
        help="resume a task: its request again as a new task, replaying what it had done",
        description=(
            "Run a task's request again as a new task in a fresh session. When the task "
            "has run journals, the steps it had done are replayed from them (no model "
            "request is made again for them) and the step it was in goes on from where "
            "it stopped."
        ),
    )
    p.add_argument("task", metavar="ID", nargs="?", help="a task id (see `briotui tasks list`)")
    p.add_argument(
        "--interrupted",
        action="store_true",
        help="resume every task interrupted when briotui went away",
    )
    p.add_argument(
        "--no-journal",
        action="store_true",
        help="ask the model everything again instead of replaying the task's journals",
    )
    p.add_argument(
        "--provider",
        metavar="SPEC",
        help="where model requests go (as for `briotui run`; default: the configured chain)",
    )
    add_answer_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_tasks_resume)
    p = leaves.add_parser("discard", help="roll a task's session back")
    p.add_argument("task", metavar="ID", help="a task id (see `briotui tasks list`)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_tasks_discard)

    grants = sub.add_parser(
        "grants",
        help="list or revoke the permissions given to agents",
        description="Permissions you gave agents (and what they delegated); revoke any.",
    )
    leaves = grants.add_subparsers(dest="grants_command", metavar="ACTION", required=True)
    p = leaves.add_parser("list", help="list the active grants")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_grants_list)
    p = leaves.add_parser("revoke", help="revoke a grant and every grant delegated from it")
    p.add_argument("grant", metavar="ID", help="a grant id (see `briotui grants list`)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_grants_revoke)


def run_tasks_list(args: argparse.Namespace) -> int:
    """``tasks list``."""

    async def work(kernel: Kernel) -> list[dict[str, Any]]:
        return await asyncio.to_thread(kernel.stored_tasks)

    rows = with_kernel(args, work, notices=False)
    if args.json:
        print_json({"status": "ok", "tasks": rows})
        return 0
    if not rows:
        say('No tasks yet. `briotui run "TASK"` starts one.')
        return 0
    say(
        table(
            ["task", "status", "agent", "session", "created", "goal"],
            [
                [
                    r["id"],
                    "interrupted" if r["interrupted"] else (r["outcome"] or r["status"]),
                    r["agent"],
                    r["session_id"] or "",
                    when(r["created"]),
                    str(r["goal"])[:60],
                ]
                for r in rows
            ],
        )
    )
    if any(r["interrupted"] for r in rows):
        say(
            "Resume one with `briotui tasks resume ID`, or drop it with `briotui tasks discard ID`."
        )
    return 0


def run_tasks_resume(args: argparse.Namespace) -> int:
    """``tasks resume ID`` (or ``--interrupted``): resume and wait for it."""
    from briotui.cli.cmd_run import parse_provider
    from briotui.kernel.settings import load_settings

    if (args.task is None) == (not args.interrupted):
        raise BrioError(
            "Name one task (`briotui tasks resume ID`) or use --interrupted, not both.",
            title="Which task to resume?",
        )
    settings: Settings = load_settings(getattr(args, "project", "."))  # once: provider and kernel
    provider = parse_provider(args.provider, settings)

    async def work(kernel: Kernel) -> list[dict[str, Any]]:
        use_answers(kernel, args)  # as `briotui run`: approvals and answers
        if args.interrupted:
            stored = await asyncio.to_thread(kernel.stored_tasks)
            ids = [str(t["id"]) for t in stored if t["interrupted"]]
        else:
            ids = [args.task]
        reports: list[dict[str, Any]] = []
        try:
            if ids:
                await kernel.build_agents()
            for task_id in ids:
                new_id = await kernel.resume(
                    task_id, provider=provider, journal=not args.no_journal
                )
                result = await kernel.wait(new_id)
                reports.append(
                    {
                        "status": result.status,
                        "resumed": task_id,
                        "task": result.task_id,
                        "session": result.session_id,
                        "summary": result.summary,
                        "error": result.error,
                        "replayed_calls": kernel.replayed_calls(new_id),
                    }
                )
        finally:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        return reports

    reports = with_kernel(args, work, settings, notices=False)
    if args.json:
        print_json(reports[0] if args.task is not None else {"status": "ok", "resumed": reports})
    elif not reports:
        say("No interrupted tasks.")
    for report in [] if args.json else reports:
        say(
            f"Task {report['task']} (resuming {one_line(report['resumed'])}) "
            f"{report['status']}: " + one_line(str(report["summary"]))
        )
        replayed = report["replayed_calls"]
        if replayed is not None:
            say(f"  {replayed} host calls answered from the journal (no model request again)")
        say(f"  review it: briotui sessions diff {report['session']}")
    return 0 if all(r["status"] == "done" for r in reports) else 1


def run_tasks_discard(args: argparse.Namespace) -> int:
    """``tasks discard ID``."""

    async def work(kernel: Kernel) -> None:
        await kernel.discard_task(args.task)

    with_kernel(args, work, notices=False)
    if args.json:
        print_json({"status": "ok", "discarded": args.task})
    else:
        say(f"Discarded task {one_line(args.task)}; its session was rolled back.")
    return 0


def run_grants_list(args: argparse.Namespace) -> int:
    """``grants list``."""

    async def work(kernel: Kernel) -> list[dict[str, Any]]:
        return await asyncio.to_thread(kernel.grants)

    rows = with_kernel(args, work, notices=False)
    if args.json:
        print_json({"status": "ok", "grants": rows})
        return 0
    if not rows:
        say("No grants stored. Agents have only their built-in permissions.")
        return 0
    say(
        table(
            ["grant", "agent", "capability", "pattern", "lifetime", "source", "from"],
            [
                [
                    r["id"],
                    r["agent"],
                    r["capability"],
                    r["pattern"],
                    r["lifetime"] + (f" {r['scope_id']}" if r["scope_id"] else ""),
                    r["source"],
                    r["parent_id"] or "",
                ]
                for r in rows
            ],
        )
    )
    return 0


def run_grants_revoke(args: argparse.Namespace) -> int:
    """``grants revoke ID``."""

    async def work(kernel: Kernel) -> int:
        return await kernel.revoke_grant(args.grant)

    count = with_kernel(args, work, notices=False)
    if args.json:
        print_json({"status": "ok", "revoked": args.grant, "count": count})
    else:
        say(f"Revoked {one_line(args.grant)} ({count} grant(s) with what it delegated).")
    return 0

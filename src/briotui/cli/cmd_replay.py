"""``briotui replay TASK``: run a recorded task's agents again against their journals.

Every agent run of the task is replayed in a fresh instance whose host calls are
answered from the run's journal: no model request is made, nothing of the user's is
touched (file writes go to a throwaway session). It checks that each run makes the same
calls and ends the same way, and that the files come out the same; the first
difference is printed with its run and call. With ``--agent-code current`` (the
default) the agents run their code as it is now, so a change to an agent can be tried
on recorded tasks ("this change makes the Coder ask for other files here");
``recorded`` runs the code the task ran with.

Exit codes: 0 identical, 1 a divergence, 2 an error (no such task, no journal).
"""

from __future__ import annotations

import argparse
from typing import Any

from briotui.cli.kernel_work import with_kernel
from briotui.cli.output import one_line, print_json, say
from briotui.kernel.journal.replayer import TaskReplay
from briotui.kernel.kernel import Kernel


def register(sub: Any) -> None:
    """Add the ``replay`` subcommand."""
    p = sub.add_parser(
        "replay",
        help="replay a recorded task against its run journals (no model requests)",
        description=(
            "Run a task's agents again with every host call answered from the journal "
            "recorded when it ran: no model request, no write to your files. Reports the "
            "first call where a run differs (exit 1), or that it replayed identically (0)."
        ),
    )
    p.add_argument(
        "task",
        metavar="TASK",
        help="a task id (see `briotui tasks list`), or one agent run of it (TASK.agent-id)",
    )
    p.add_argument(
        "--agent-code",
        choices=("current", "recorded"),
        default="current",
        help="run the agents' code as it is now (default) or as it was when recorded",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    """``replay TASK``."""

    async def work(kernel: Kernel) -> TaskReplay:
        return await kernel.replay(args.task, agent_code=args.agent_code)

    report = with_kernel(args, work, notices=False)
    if not args.json:
        for note in report.notes:
            say(f"note: {one_line(note)}", err=True)
    if args.json:
        print_json(report.to_dict())
        return 0 if report.identical else 1
    divergence = report.divergence
    if divergence is not None:
        say(
            f"Task {one_line(report.task_id)}: run {one_line(divergence.run_id)} "
            f"({one_line(divergence.agent)}) diverged at call {divergence.seq}."
        )
        say(f"  expected: {one_line(divergence.expected or '(no more calls)')}")
        say(f"  got:      {one_line(divergence.got or '(the run ended)')}")
        say(f"  {one_line(divergence.detail)}")
        return 1
    if report.session_differs:
        say(
            f"Task {one_line(report.task_id)}: every run replayed, but these files differ "
            f"from the task's session: {one_line(', '.join(report.session_differs))}"
        )
        return 1
    interrupted = sum(1 for r in report.runs if r.interrupted)
    note = (
        f" ({interrupted} interrupted run(s) replayed up to where they were stopped)"
        if interrupted
        else ""
    )
    say(
        f"Replayed {len(report.runs)} runs, {report.calls} host calls, identical{note}"
        f" ({report.seconds:.2f} s)."
    )
    return 0

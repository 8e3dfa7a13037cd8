"""``briotui audit``: show the capability checks agents' host calls went through."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from briotui.cli.output import print_json, say, table
from briotui.kernel.caps.audit import read_audit
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.text import sanitize


def register(sub: Any) -> None:
    """Add the ``audit`` subcommand."""
    audit = sub.add_parser(
        "audit",
        help="show the audit log of capability checks",
        description=(
            "Show every capability check (allowed or denied, by which grant, prompt or "
            "policy, and why), newest last. The log is append-only."
        ),
    )
    audit.add_argument("--agent", metavar="NAME", help="only this agent's checks")
    audit.add_argument("--denied", action="store_true", help="only denials")
    audit.add_argument("-n", "--limit", type=int, default=50, help="how many rows (default 50)")
    audit.add_argument("--json", action="store_true", help="print the rows as JSON")
    audit.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Handle ``audit``."""
    paths = ProjectPaths.at(args.project)
    if not paths.database.exists():
        if args.json:
            print_json({"rows": []})
        else:
            say("No audit log yet: no agent has run in this project.")
        return 0
    rows = asyncio.run(
        read_audit(
            paths.database,
            limit=max(1, args.limit),
            agent=args.agent,
            decision="denied" if args.denied else None,
        )
    )
    if args.json:
        print_json({"rows": [r.to_dict() for r in rows]})
        return 0
    if not rows:
        say("No matching audit rows.")
        return 0
    say(
        table(
            ["when", "agent", "task", "capability", "target", "decision", "by", "reason"],
            [
                [
                    time.strftime("%H:%M:%S", time.localtime(r.at)),
                    sanitize(r.agent),
                    r.task_id,
                    r.capability,
                    sanitize(r.target)[:60],
                    r.decision,
                    r.decided_by,
                    sanitize(r.reason)[:60],
                ]
                for r in rows
            ],
        )
    )
    return 0

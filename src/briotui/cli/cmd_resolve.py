"""``briotui sessions resolve``: settle the conflicting regions a merge left in a session.

It calls the kernel's session command (``Kernel.resolve_conflict``), the same one the
review screen's keys call, and once no conflict is left runs the project's test
command in the session (``Kernel.retest_session``) so the session can be verified again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from briotui.cli.kernel_work import with_kernel
from briotui.cli.output import one_line, print_json, reveal, say
from briotui.kernel.errors import ConfigError
from briotui.kernel.kernel import Kernel
from briotui.kernel.vfs.resolve import Choice

RESOLVE_HELP = """\
Take one side of a conflicting region a merge left in the session (`sessions show`
lists them, numbered per file), or give your own text. The session keeps its own
side ("ours") until you resolve it. Without --region every unresolved region of the
file is resolved; --file without --region replaces the whole file.

When the last conflict is resolved, the project's test command runs in the session
(unless --no-tests): the session is verified again only when it passes.

exit codes:
  0  resolved (the tests passed, or none are configured, or regions are left)
  1  the last conflict is resolved but the tests failed (or could not run)
  2  error: no such session, conflict or region; the session is committed; ...
"""


def register_resolve(leaves: Any) -> None:
    """Add ``sessions resolve`` to the ``sessions`` subcommands (``leaves``)."""
    p = leaves.add_parser(
        "resolve",
        help="resolve a merge conflict: take ours, theirs, both, or your own text",
        description=RESOLVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("session", metavar="ID", help="a session id (or unique prefix)")
    p.add_argument(
        "path", metavar="PATH", help="the conflicting file (as `sessions show` names it)"
    )
    p.add_argument(
        "--region",
        type=int,
        metavar="N",
        help="only region N of the file (from 1; default: every unresolved region)",
    )
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument(
        "--ours",
        dest="choice",
        action="store_const",
        const="ours",
        help="keep the session's side (what it holds now)",
    )
    side.add_argument(
        "--theirs",
        dest="choice",
        action="store_const",
        const="theirs",
        help="take the branch's side",
    )
    side.add_argument(
        "--both",
        dest="choice",
        action="store_const",
        const="both",
        help="keep both: the session's side, then the branch's",
    )
    side.add_argument(
        "--file",
        dest="text_file",
        metavar="FILE",
        help="your own text from FILE ('-' for stdin): the region's, or the whole file's",
    )
    p.add_argument(
        "--no-tests",
        action="store_true",
        help="do not run the test command when the last conflict is resolved",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_resolve)


def _read_text(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {name}: {exc.strerror or exc}. Give a file holding the text to use.",
            title="Cannot read the file",
        ) from None


def run_resolve(args: argparse.Namespace) -> int:
    """``sessions resolve ID PATH [--region N] (--ours|--theirs|--both|--file FILE)``."""
    choice: Choice = "text" if args.choice is None else args.choice
    text = _read_text(args.text_file) if args.text_file is not None else b""

    async def work(kernel: Kernel) -> dict[str, Any]:
        session = await asyncio.to_thread(kernel.sessions().get, args.session)
        done = await kernel.resolve_conflict(
            session.id, args.path, choice, region=args.region, text=text, by="user (cli)"
        )
        report: dict[str, Any] = {"status": "ok", **done.to_dict(), "tests": None}
        if done.remaining == 0 and not args.no_tests:
            if not args.json:
                say("No conflicts left: running the tests in the session…", err=True)
            retest = await kernel.retest_session(session.id)
            run = retest.run
            report["tests"] = {
                "verified": retest.verified,
                "message": retest.message,
                "run": None
                if run is None
                else {
                    **{k: v for k, v in run.items() if k != "output"},
                    "tail": "\n".join(str(run["output"]).splitlines()[-40:]),
                },
            }
        return report

    report = with_kernel(args, work)
    tests = report["tests"]
    code = 1 if tests is not None and tests["verified"] is False else 0
    if args.json:
        print_json({**report, "exit_code": code})
        return code
    which = ", ".join(str(n) for n in report["regions"])
    took = {"edited": "your text"}.get(report["resolution"], report["resolution"])
    say(
        f"Resolved region(s) {which} of {reveal(report['path'])} in session "
        f"{report['session']}: took {took}"
        + ("" if report["changed"] else " (the file is unchanged)")
        + "."
    )
    if report["remaining"]:
        say(
            f"  {report['remaining']} conflicting region(s) left: "
            f"briotui sessions show {report['session']}"
        )
    elif tests is None:
        say(
            "  No conflicts left. The session is not verified until the tests pass on it; "
            "`briotui sessions commit` runs them on what you accepted."
        )
    else:
        say(f"  tests: {one_line(tests['message'])}")
        if tests["run"] is not None and tests["run"]["exit_code"] != 0:
            for line in tests["run"]["tail"].splitlines()[-20:]:
                say(f"    {reveal(line)}")
    return code

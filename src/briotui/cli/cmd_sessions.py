"""``briotui sessions ...``: list, show, diff; accept, reject, resolve, commit, roll back,
revise, discard, prune.

Reading commands open the sessions directly; every command that changes a session
goes through the kernel's session commands, so the change is published as the TUI
sees it (and ``revise`` can run the Coder).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
from collections.abc import Iterator
from typing import Any

from briotui.cli.cmd_resolve import register_resolve
from briotui.cli.kernel_work import say_notices, when, with_kernel
from briotui.cli.output import Style, is_tty, one_line, paint, print_json, reveal, say, table
from briotui.kernel import contract
from briotui.kernel.errors import CommitUnverified
from briotui.kernel.kernel import Kernel
from briotui.kernel.settings import Settings
from briotui.kernel.text import reveal_segments
from briotui.kernel.vfs import Session, SessionDiff, SessionManager
from briotui.kernel.vfs.commit import CommitResult, RollbackResult


def register(sub: Any) -> None:
    """Add the ``sessions`` subcommand tree."""
    sessions = sub.add_parser(
        "sessions",
        help="review and apply agent sessions",
        description=(
            "Sessions hold an agent's changes apart from your files. Review their diff "
            "hunk by hunk, accept or reject, then commit the accepted hunks."
        ),
    )
    leaves = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)

    def leaf(name: str, help_text: str, handler: Any, *, with_id: bool = True) -> Any:
        p = leaves.add_parser(name, help=help_text, description=help_text)
        if with_id:
            p.add_argument("session", metavar="ID", help="a session id (or unique prefix)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.set_defaults(handler=handler)
        return p

    leaf("list", "list the project's sessions", run_list, with_id=False)
    leaf("show", "show a session and its files and hunks", run_show)
    d = leaf("diff", "print a session's diff with hunk ids", run_diff)
    d.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the diff (default: when printing to a terminal)",
    )
    for name, verb in (("accept", "accept"), ("reject", "reject")):
        p = leaf(name, f"{verb} hunks (all hunks when none are named)", run_decide)
        p.add_argument("hunks", nargs="*", metavar="HUNK", help="hunk ids (h-... or a prefix)")
        p.add_argument("--file", metavar="PATH", help="only the hunks of this file")
        if name == "reject":
            p.add_argument("--reason", default="", help="why; handed back to the agent")
        p.set_defaults(decision="accepted" if name == "accept" else "rejected")
    register_resolve(leaves)
    c = leaf("commit", "apply the accepted hunks to your files", run_commit)
    c.add_argument("--git", action="store_true", help="also make a git commit of those files")
    c.add_argument("-m", "--message", help="the commit message (default: the task)")
    c.add_argument(
        "--force",
        action="store_true",
        help="commit even if the tests failed or never ran on what is committed",
    )
    c.add_argument(
        "--include-staged",
        action="store_true",
        help="let changes already staged in the index into the git commit",
    )
    c.add_argument(
        "--provenance",
        metavar="TEXT",
        help="add a Brio-Provenance trailer naming the agents and models",
    )
    v = leaf(
        "revise",
        "run the Coder again on the session with its rejected hunks and their reasons",
        run_revise,
    )
    v.add_argument("-m", "--message", default="", help="an extra instruction for the Coder")
    v.add_argument(
        "--provider",
        metavar="SPEC",
        help="where model requests go (as for `briotui run`; default: the configured chain)",
    )
    leaf(
        "discard",
        "discard an open session (kept in history; nothing of it is applied)",
        run_discard,
    )
    leaf(
        "prune",
        "discard the open sessions that only pile up: empty ones, branch sessions, and "
        "those of failed or cancelled tasks (kept in history)",
        run_prune,
        with_id=False,
    )
    r = leaf("rollback", "discard a session, or undo its commit", run_rollback)
    r.add_argument(
        "--force", action="store_true", help="restore the pre-commit content even over later edits"
    )


def _open(args: argparse.Namespace) -> SessionManager:
    manager = SessionManager.open(getattr(args, "project", "."))
    say_notices(manager)
    return manager


def _summary(session: Session, diff: SessionDiff | None = None) -> dict[str, Any]:
    d = diff or session.diff()
    decisions = session.decisions()
    return {
        "id": session.id,
        "parent": session.parent_id,
        "state": session.state,
        "label": session.label,
        "task": session.task,
        "created": session.created,
        "files": [
            {
                "path": f.path,
                "old_path": f.old_path,
                "status": f.status,
                "binary": f.binary,
                "old_symlink": f.old_symlink,
                "new_symlink": f.new_symlink,
                "hunks": [
                    {
                        "id": h.id,
                        "kind": h.kind,
                        "header": h.header(),
                        "decision": decisions.get(h.id, ("pending", ""))[0],
                        "reason": decisions.get(h.id, ("pending", ""))[1],
                    }
                    for h in f.hunks
                ],
            }
            for f in d.files
        ],
        "left_out": [{"path": p, "reason": why} for p, why in session.left_out()],
    }


def run_list(args: argparse.Namespace) -> int:
    """``sessions list``."""
    manager = _open(args)
    try:
        infos = manager.list()
        if args.json:
            print_json(
                {
                    "status": "ok",
                    "git": manager.is_git,
                    "sessions": [
                        {
                            "id": i.id,
                            "parent": i.parent_id,
                            "state": i.state,
                            "label": i.label,
                            "task": i.task,
                            "created": i.created,
                            "changed_files": i.changed_files,
                        }
                        for i in infos
                    ],
                }
            )
            return 0
        if not manager.is_git:
            say("note: not a git repository: sessions can be applied, but not git-committed.")
        if not infos:
            say('No sessions yet. `briotui run "TASK"` leaves its changes in one.')
            return 0
        say(
            table(
                ["ID", "STATE", "FILES", "CREATED", "PARENT", "TASK"],
                [
                    [
                        i.id,
                        i.state,
                        i.changed_files,
                        when(i.created),
                        i.parent_id or "",
                        (i.task or i.label)[:50],
                    ]
                    for i in infos
                ],
            )
        )
        return 0
    finally:
        manager.close()


def _outcome_of(kernel: Kernel, session: Session) -> dict[str, Any]:
    """What ``sessions show`` adds: verification, review, the last test run, conflicts,
    and who wrote each hunk."""
    from briotui.kernel.supervisor import test_command

    recorder = kernel.recorder
    command = test_command(kernel)
    conflicts = recorder.conflicts_of(session.id)
    run = recorder.last_run(session.id, command) if command is not None else None
    if command is None:
        verified: bool | None = None
    elif not session.diff().files:
        verified = False  # an empty session is never verified
    else:  # passed on the session as it is now (not changed since), no conflicts left
        known = recorder.verification(session.id)
        verified = known is not None and known[0]
    return {
        "verified": verified,
        "test_command": command,
        "tests": run,
        "review": kernel.review_of(session.id),
        "conflicts": conflicts,
        "authors": {key: list(who) for key, who in recorder.authors(session).items()},
    }


def run_show(args: argparse.Namespace) -> int:
    """``sessions show ID``."""

    async def work(kernel: Kernel) -> tuple[dict[str, Any], bool]:
        manager = kernel.sessions()
        session = manager.get(args.session)
        data = _summary(session)
        extra = await asyncio.to_thread(_outcome_of, kernel, session)
        authors = extra.pop("authors")
        for f in data["files"]:
            for h in f["hunks"]:
                agent, model = authors.get(h["id"]) or authors.get(f["path"]) or ("", "")
                h["agent"], h["model"] = agent, model
        data.update(extra)
        return data, manager.is_git

    data, is_git = with_kernel(args, work)
    if args.json:
        print_json({"status": "ok", "session": data})
        return 0
    say(f"session {data['id']}  ({data['state']})")
    if data["parent"]:
        say(f"forked from {data['parent']}")
    if data["task"]:
        say(f"task: {one_line(data['task'])}")
    if not is_git:
        say("note: not a git repository: no git commit step.")
    for f in data["files"]:
        path = reveal(f["path"])
        if f["old_path"] != f["path"]:
            path = f"{reveal(f['old_path'])} -> {path}"
        link = "  (symbolic link)" if f["old_symlink"] or f["new_symlink"] else ""
        say(f"  {f['status']:<9} {path}{link}")
        for h in f["hunks"]:
            why = f"  ({one_line(h['reason'])})" if h["reason"] else ""
            by = f"  by {one_line(h['agent'])}" if h["agent"] else ""
            if by and h["model"]:
                by += f" ({one_line(h['model'])})"
            say(f"      h-{h['id']}  {h['decision']:<8} {h['kind']}{by}{why}")
    if not data["files"]:
        say("  (no changes)")
    _show_outcome(data)
    if data["left_out"]:
        say("left out of the session:")
        for item in data["left_out"]:
            say(f"  {reveal(item['path'])}: {one_line(item['reason'])}")
    return 0


def _show_outcome(data: dict[str, Any]) -> None:
    verified = data["verified"]
    if verified is None:
        say("verification: none (no test command is configured)")
    else:
        say("verification: " + ("verified" if verified else "not verified"))
    _say_tests(data["tests"])
    review = data["review"]
    if review is not None:
        say(f"review: {one_line(str(review.get('verdict', 'none')))}")
        for finding in review.get("findings", []):
            where = finding.get("hunk_id") or "general"
            say(
                f"  [{one_line(str(finding.get('severity', '')))}] {one_line(str(where))}: "
                f"{one_line(str(finding.get('message', '')))}"
            )
    for conflict in data["conflicts"]:
        left = contract.unresolved([conflict])
        count = len(conflict["regions"])
        say(
            f"conflict: {reveal(conflict['path'])}: "
            + (
                f"{left} of {count} region(s) to resolve"
                if left
                else f"resolved ({count} region(s))"
            )
            + f"; the other side is in branch session {conflict['session']}"
        )
        for region in conflict["regions"]:
            where = f" (line {region['line'] + 1})" if region["line"] >= 0 else ""
            if region["resolved"]:
                by = (
                    f" by {one_line(region.get('resolved_by', ''))}"
                    if region.get("resolved_by")
                    else ""
                )
                say(f"  region {region['index']}{where}: resolved, took {region['resolution']}{by}")
                continue
            say(f"  region {region['index']}{where}: unresolved")
            for side in ("ours", "theirs"):
                say(f"    {side}:")
                for line in region[side].splitlines():
                    say(f"      {reveal(line)}")
    if data["conflicts"] and contract.unresolved(data["conflicts"]):
        say(
            f"  resolve: briotui sessions resolve {data['id']} PATH [--region N] "
            "(--ours | --theirs | --both | --file FILE)"
        )


# -- the test run block of `sessions show` ------------------------------------------------

SHOW_TAIL_LINES = 60
"""How many of the test output's last lines ``sessions show`` prints (``--json`` has
the whole stored tail)."""


def _say_tests(run: dict[str, Any] | None) -> None:
    if run is None:
        return
    verdict = "passed" if run["exit_code"] == 0 else "FAILED"
    say(
        f"tests: {one_line(shlex.join(run['argv']))} {verdict} "
        f"(exit {run['exit_code']}, {run['duration_ms'] / 1000:.1f} s)"
    )
    for name in run["failed"]:
        say(f"  failed: {one_line(name)}")
    lines = run["output"].rstrip("\n").splitlines()
    if lines:
        cut = run["truncated"] or len(lines) > SHOW_TAIL_LINES
        say("  output" + (" (its end)" if cut else "") + ":")
        for line in lines[-SHOW_TAIL_LINES:]:
            say(f"    {reveal(line)}")


def _line_style(line: str) -> Style | None:
    if line.startswith(("diff --git ", "--- ", "+++ ")):
        return "bold"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "remove"
    if line.startswith("\\"):
        return "dim"
    return None


def diff_pieces(text: str) -> Iterator[tuple[str, Style | None]]:
    """Unified-diff ``text`` as styled pieces, every control and invisible character a mark.

    Lines are split on ``\\n`` only: a carriage return, NEL or U+2028 inside a line is
    shown as ``<U+XXXX>``, never as a line break.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        style = _line_style(line)
        for piece, is_mark in reveal_segments(line):
            yield piece, "mark" if is_mark else style
        yield "\n", None


def run_diff(args: argparse.Namespace) -> int:
    """``sessions diff ID``."""
    manager = _open(args)
    try:
        session = manager.get(args.session)
        diff = session.diff()
        if args.json:
            print_json(
                {
                    "status": "ok",
                    "session": session.id,
                    "diff": diff.text(),
                    "hunks": [
                        {
                            "id": h.id,
                            "path": h.path,
                            "kind": h.kind,
                            "header": h.header(),
                            "lines": list(h.lines),
                        }
                        for h in diff.hunks()
                    ],
                }
            )
            return 0
        colour = args.color == "always" or (args.color == "auto" and is_tty())
        paint(diff_pieces(diff.text()), colour=colour)
        return 0
    finally:
        manager.close()


def run_decide(args: argparse.Namespace) -> int:
    """``sessions accept|reject ID [HUNK...]``."""

    async def work(kernel: Kernel) -> tuple[str, list[str]]:
        session = kernel.sessions().get(args.session)
        ids = await kernel.decide(
            session.id,
            args.hunks or None,
            args.decision,
            reason=getattr(args, "reason", ""),
            path=args.file,
        )
        return session.id, ids

    session_id, ids = with_kernel(args, work)
    if args.json:
        print_json({"status": "ok", "session": session_id, "decision": args.decision, "hunks": ids})
    else:
        say(f"{args.decision} {len(ids)} hunk(s) of session {session_id}")
    return 0


async def _verify_before_commit(
    kernel: Kernel, session_id: str, args: argparse.Namespace
) -> tuple[str, ...] | None:
    """Unless ``--force``: check that what would be committed passed the project's tests
    (run on exactly the accepted hunks when only some are accepted) and say so.

    Returns:
        The accepted hunk ids the check was about (the commit must be exactly these),
        or None (``--force``, or no test command).

    Raises:
        CommitUnverified: It did not; nothing is written.
    """
    if args.force:
        return None
    check = await kernel.verify_commit(session_id)
    if check.run is not None and check.scratch:
        say(f"tests on the accepted hunks: {one_line(check.message)}", err=args.json)
    if not check.ok:
        raise CommitUnverified(
            check.message + " Nothing was written. Commit anyway with --force, or fix the "
            "change first."
        )
    return check.accepted


def run_commit(args: argparse.Namespace) -> int:
    """``sessions commit ID [--git] [-m MSG]``."""

    async def work(kernel: Kernel) -> tuple[str, CommitResult, bool]:
        manager = kernel.sessions()
        session = manager.get(args.session)
        tested = await _verify_before_commit(kernel, session.id, args)
        result = await kernel.commit(
            session.id,
            git=args.git,
            message=args.message,
            include_staged=args.include_staged,
            provenance=args.provenance,
            force=True,  # verified just above, or --force
            expected_ids=tested,  # exactly what was verified, or nothing
        )
        return session.id, result, manager.is_git

    session_id, result, is_git = with_kernel(args, work)
    if args.json:
        print_json(
            {
                "status": "ok",
                "session": session_id,
                "written": result.written,
                "deleted": result.deleted,
                "merged": result.merged,
                "git_commit": result.git_commit,
                "git_only": result.git_only,
                "unstaged": result.unstaged,
                "mixed": result.mixed,
            }
        )
        return 0
    if result.git_only:
        say(f"Session {session_id}'s files were already applied; made their git commit.")
    else:
        say(
            f"Applied session {session_id}: {len(result.written)} written, "
            f"{len(result.deleted)} deleted."
        )
    for path in result.merged:
        say(f"  merged with your edits: {reveal(path)}")
    if result.git_commit:
        say(f"git commit {result.git_commit[:12]}")
        for path in result.unstaged:
            say(
                f"  {reveal(path)}: the commit holds only the session's accepted hunks; "
                "your own edits stay in the working tree, unstaged"
            )
        for path in result.mixed:
            say(f"  {reveal(path)}: your edits overlap the session's, so the commit holds both")
    elif not is_git:
        say("note: not a git repository, so no git commit was made.")
    return 0


def run_discard(args: argparse.Namespace) -> int:
    """``sessions discard ID``."""

    async def work(kernel: Kernel) -> str:
        session = kernel.sessions().get(args.session)
        await kernel.discard_session(session.id)
        return session.id

    session_id = with_kernel(args, work)
    if args.json:
        print_json({"status": "ok", "session": session_id, "state": "discarded"})
    else:
        say(f"Session {session_id} is discarded (kept in history).")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    """``sessions prune``."""

    async def work(kernel: Kernel) -> list[str]:
        return await kernel.prune_sessions()

    pruned = with_kernel(args, work)
    if args.json:
        print_json({"status": "ok", "discarded": pruned})
    elif pruned:
        say(f"Discarded {len(pruned)} session(s) (kept in history): {', '.join(pruned)}")
    else:
        say("Nothing to prune: every open session has changes to review.")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    """``sessions rollback ID``."""

    async def work(kernel: Kernel) -> tuple[str, str, RollbackResult]:
        session = kernel.sessions().get(args.session)
        result = await kernel.rollback(session.id, force=args.force)
        return session.id, session.state, result

    session_id, state, result = with_kernel(args, work)
    if args.json:
        print_json(
            {
                "status": "ok",
                "session": session_id,
                "state": state,
                "restored": result.restored,
                "git_reverted": result.git_reverted,
                "notes": result.notes,
            }
        )
        return 0
    say(f"Session {session_id} is now {state}.")
    if result.restored:
        say(f"  restored {len(result.restored)} file(s)")
    if result.git_reverted:
        say("  the git commit was undone")
    for note in result.notes:
        say(f"  {note}")
    return 0


def run_revise(args: argparse.Namespace) -> int:
    """``sessions revise ID [-m TEXT]``: the Coder redoes the rejected hunks."""
    from briotui.cli.cmd_run import parse_provider
    from briotui.kernel.settings import load_settings

    settings: Settings = load_settings(getattr(args, "project", "."))  # once: provider and kernel
    provider = parse_provider(args.provider, settings)

    async def work(kernel: Kernel) -> dict[str, Any]:
        try:
            session = kernel.sessions().get(args.session)
            await kernel.build_agents(["coder"])
            result = await kernel.wait(
                await kernel.revise(session.id, args.message, provider=provider)
            )
            hunks = [h.id for h in (await asyncio.to_thread(session.diff)).hunks()]
        finally:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        return {
            "status": result.status,
            "task": result.task_id,
            "session": session.id,
            "summary": result.summary,
            "hunks": hunks,
            "error": result.error,
        }

    report = with_kernel(args, work, settings)
    if args.json:
        print_json(report)
    else:
        say(
            f"Revise of session {report['session']} {report['status']}: "
            + one_line(str(report["summary"]))
        )
        say(
            f"  {len(report['hunks'])} hunk(s) to review: briotui sessions diff {report['session']}"
        )
    return 0 if report["status"] == "done" else 1

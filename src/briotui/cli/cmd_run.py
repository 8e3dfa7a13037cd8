"""``briotui run "TASK"``: run the pipeline (or one agent, ``--agent NAME``) headless,
in a new session or, with ``--session ID``, continuing an open one; print the result and
exit with the outcome's code (:data:`EXIT_CODES`)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from briotui.cli.output import one_line, print_json, reveal, say
from briotui.cli.progress import BuildProgress
from briotui.cli.prompt import add_answer_arguments, question_answerer, terminal_prompt
from briotui.kernel.errors import ConfigError
from briotui.kernel.kernel import Kernel, refuse_empty
from briotui.kernel.llm.config import Target, load_models_config
from briotui.kernel.llm.router import build_router, open_router
from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.kernel.llm.types import Provider
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import Event, LogLine
from briotui.kernel.runtime.instance import RunFailed, RunOutcome, outcome_json
from briotui.kernel.settings import Settings, load_settings
from briotui.kernel.state import StatePatch
from briotui.kernel.supervisor import (
    WRITING_AGENTS,
    TaskResult,
    applied_nothing,
    follow_up_goal,
    tests_words,
)
from briotui.kernel.vfs import Session

EXIT_CODES = {
    "verified": 0,
    "done": 0,
    "tests-failed": 1,
    "error": 2,
    "failed": 2,
    "cancelled": 2,
    "partial": 3,
}
"""The exit code of ``briotui run`` for each outcome (``--json`` has it as ``outcome``)."""

EXIT_CODES_HELP = """\
exit codes (--json prints the same as "outcome"):
  0  done: verified (the test command passed in the session), or no test command
     is configured ("done")
  1  tests-failed: the change is complete but the test command failed in it
  2  error: the run stopped (an error, cancelled), or nothing was changed because
     every subtask failed, or the --agent coder run applied no edit ("failed");
     also for wrong arguments
  3  partial: some subtasks failed or merge conflicts wait for you; the output says
     which subtasks failed and why, and where the conflicts are
"""


def register(sub: Any) -> None:
    """Add the ``run`` subcommand."""
    run = sub.add_parser(
        "run",
        help="run an agent on a task, headless",
        description=(
            "Run a task headless in the current project: the whole pipeline, or one agent "
            "with --agent. Agents are built first if needed. The changes land in a new "
            "session (or, with --session ID, in that open session, continued); nothing is "
            "applied to your files."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("task", metavar="TASK", help="what to do, in words")
    run.add_argument(
        "--agent",
        metavar="NAME",
        help="run only this agent (see `briotui agents list`); without it the whole "
        "pipeline runs: Council, Foreman with Coders in parallel branches, Reviewer, tests",
    )
    run.add_argument(
        "--session",
        metavar="ID",
        help=(
            "a follow-up: continue this open session instead of starting a new one. The "
            "agents work on top of its changes and are told its earlier requests; the new "
            "hunks join the earlier ones in its review, and its tests run again on the "
            "whole session. A committed, discarded or unknown session is an error (exit 2)"
        ),
    )
    run.add_argument(
        "--provider",
        metavar="SPEC",
        help=(
            "where model requests go: scripted:FILE (a JSON array of replies), or a "
            "provider from the config, NAME or NAME/MODEL (default: the configured "
            "fallback chain)"
        ),
    )
    add_answer_arguments(run)
    run.add_argument("--json", action="store_true", help="print one JSON object as the result")
    run.add_argument("-v", "--verbose", action="store_true", help="show the agent's log lines")
    run.set_defaults(handler=handle)


def parse_provider(spec: str | None, project: str | Settings = ".") -> Provider:
    """The provider named by ``--provider``: scripted, one configured target, or the chain.

    Args:
        spec: The ``--provider`` value, or None for the configured chain.
        project: The project directory, or its loaded settings.

    Raises:
        ConfigError: the spec is not understood, or the config is wrong.
    """
    if spec is None:
        return open_router(project)
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        if not rest:
            raise ConfigError(
                "Use --provider scripted:FILE, where FILE is a JSON array of replies.",
                title="Scripted provider needs a file",
            )
        return ScriptedProvider.from_file(rest)
    if ":" in spec:
        raise ConfigError(
            f"Unknown provider {spec!r}. Use scripted:FILE, NAME or NAME/MODEL.",
            title="Unknown provider",
        )
    config = load_models_config(project)
    name, _, model = spec.partition("/")
    config.provider(name)  # raises a ConfigError naming the known providers
    return build_router(replace(config, fallback=(Target(name, model),), roles={}))


def untrusted_notice(settings: Settings) -> str:
    """What to tell the user about project settings ignored until trusted ("" if none)."""
    if not settings.ignored:
        return ""
    lines = "\n".join(f"  - {one_line(line)}" for line in settings.ignored)
    return (
        "note: this project's .brio/config.toml asks for settings that are ignored until you "
        f"trust the project:\n{lines}\nRun `briotui trust` to review and trust them."
    )


def handle(args: argparse.Namespace) -> int:
    """Handle ``run``."""
    refuse_empty(args.task)
    settings = load_settings(args.project)
    notice = untrusted_notice(settings)
    if notice and not args.json:
        say(notice, err=True)
    provider = parse_provider(args.provider, settings)
    if not args.agent:
        return asyncio.run(_pipeline(args, provider, settings))
    return asyncio.run(_run(args, provider, settings))


async def _pipeline(args: argparse.Namespace, provider: Provider, settings: Settings) -> int:
    """The whole pipeline: progress lines on stderr, then the session and its review."""
    kernel = Kernel(args.project, config=settings)
    kernel.set_approvals(args.approve, terminal_prompt if args.approve == "ask" else None)
    kernel.set_answerer(question_answerer(args.answer))
    if not args.json:
        _warn_unsandboxed(kernel)
        kernel.state.subscribe(_progress_printer(kernel))
    try:
        await kernel.build_agents(on_event=None if args.json else BuildProgress())
        await kernel.join_configured_cluster()  # [cluster] nats: agents run on workers
        result = await kernel.wait(
            await kernel.submit(args.task, provider=provider, session_id=args.session)
        )
        session = kernel.sessions().get(result.session_id)
        if args.json:
            print_json(
                {
                    **result.to_dict(),
                    "exit_code": EXIT_CODES[result.final_outcome],
                    "session": _session_json(session),
                    "tasks": kernel.state.get(["tasks"]),
                    "sandbox": kernel.state.get(["sandbox"]),
                    "untrusted_settings": settings.ignored,
                }
            )
        else:
            _print_pipeline(result, session)
    finally:
        await kernel.close()
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()
    return EXIT_CODES[result.final_outcome]


OUTCOME_WORDS = {
    "verified": "verified (the tests passed in the session)",
    "done": "done (no test command is configured)",
    "tests-failed": "tests failed",
    "partial": "partial (some subtasks failed or conflicts wait for you)",
    "failed": "failed (nothing was changed)",
    "error": "error",
    "cancelled": "cancelled",
}


def _progress_printer(kernel: Kernel) -> Callable[[StatePatch], None]:
    def show(patch: StatePatch) -> None:
        for op in patch.ops:
            parts = op["path"].split("/")
            if len(parts) < 3 or parts[1] != "tasks":
                continue
            if len(parts) == 3 and op["op"] == "add":
                task = op["value"]
                say(
                    f"  {one_line(task['agent']):<9} {parts[2]}: {one_line(task['title'])[:70]}",
                    err=True,
                )
            elif parts[3:] == ["status"] and op["value"] != "running":
                say(f"  {one_line(parts[2])} {one_line(op['value'])}", err=True)
            elif parts[3:4] == ["milestones"] and op["op"] == "add":
                say(f"  {one_line(parts[2])} reached: {one_line(op['value']['name'])}", err=True)

    return show


def _print_pipeline(result: TaskResult, session: Session) -> None:
    if result.error is None:
        say(result.summary)
    for item in result.plan:
        say(f"  - {one_line(item.get('title', ''))}")
    for failed in result.failed_subtasks:
        say(f"  failed: {one_line(failed['id'])} {one_line(failed['goal'])[:60]}")
        say(f"    why: {one_line(failed['reason'])}")
    for conflict in result.merge.get("conflicts", []):
        for file in conflict["files"]:
            say(
                f"  conflict: {reveal(file['path'])}: {len(file.get('regions', []))} region(s) "
                f"to resolve (the other side is in branch session {conflict['session']}): "
                f"briotui sessions resolve {result.session_id} {reveal(file['path'])} "
                "--ours|--theirs|--both|--file FILE"
            )
    review = result.review
    if review:
        say(f"Review: {one_line(review.get('verdict', 'none'))}")
        for finding in review.get("findings", []):
            where = finding.get("hunk_id") or "general"
            say(f"  [{one_line(finding['severity'])}] {one_line(where)}: {finding['message']}")
    if result.verified is not None:
        say("Tests: " + tests_words(result).removeprefix("tests "))
    say(f"Outcome: {OUTCOME_WORDS.get(result.final_outcome, result.final_outcome)}")
    if result.error:
        say(f"error: {result.error['title']}\n  {result.error['message']}", err=True)
    say(_session_line(session))


async def _run(args: argparse.Namespace, provider: Provider, settings: Settings) -> int:
    kernel = Kernel(args.project, config=settings)
    kernel.set_approvals(args.approve, terminal_prompt if args.approve == "ask" else None)
    kernel.set_answerer(question_answerer(args.answer))
    if not args.json:
        _warn_unsandboxed(kernel)
    if args.verbose and not args.json:

        def show(event: Event) -> None:
            if isinstance(event, LogLine):
                say(f"  [{one_line(event.agent)} {event.level}] {event.message}", err=True)

        kernel.events.subscribe(show)
    try:
        await kernel.join_configured_cluster()  # [cluster] nats: agents run on workers
        goal, context, start = args.task, [], None
        if args.session:  # a follow-up: the open session, continued
            session = await asyncio.to_thread(kernel.continuable_session, args.session)
            previous = await asyncio.to_thread(kernel.requests_of, session)
            start = await asyncio.to_thread(session.overlay)
            if previous:
                goal = follow_up_goal(args.task, previous)
                context = [("previous-requests", "\n".join(previous))]
        else:
            session = kernel.sessions().create(label=args.agent, task=args.task)
        try:
            outcome = await kernel.run_agent(
                args.agent,
                goal,
                bindings=RunBindings(
                    provider=provider, workspace=session, ask_user=kernel.ask_user
                ),
                context=context,
                on_build=None if args.json else BuildProgress(),
            )
        except RunFailed as failure:
            if start is None:
                await _discard_unused(kernel, session)
            _report_failure(args, failure, session, _extra(kernel, settings))
            return EXIT_CODES["error"]
        failed = await _applied_nothing(args, outcome, session, start)
        ended = "failed" if failed else "done"
        if start is None:
            await _discard_unused(kernel, session)
        _report(
            args,
            outcome,
            session,
            {
                "outcome": ended,
                "exit_code": EXIT_CODES[ended],
                "failed_subtasks": failed,
                **_extra(kernel, settings),
            },
        )
        return EXIT_CODES[ended]
    finally:
        await kernel.close()
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


async def _applied_nothing(
    args: argparse.Namespace,
    outcome: RunOutcome,
    session: Session,
    start: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """A writing agent (the Coder) that changed no file failed its task, whatever it
    says: the failure (``id``, ``goal``, ``reason``) as the pipeline reports a failed
    subtask, or [] when it did its job. ``start``: a continued session's content before
    the run (None: a new session)."""
    if args.agent not in WRITING_AGENTS:
        return []
    if start is not None:
        if await asyncio.to_thread(session.overlay) != start:
            return []
    elif await asyncio.to_thread(lambda: bool(session.diff().files)):
        return []
    goal = args.task.strip().split("\n", 1)[0]
    return [{"id": args.agent, "goal": goal, "reason": applied_nothing(outcome.summary)}]


async def _discard_unused(kernel: Kernel, session: Session) -> None:
    """An empty run's session is discarded (kept in history, never committed); a failed
    run's changes stay for review, as the pipeline's do."""
    if not await asyncio.to_thread(lambda: bool(session.diff().files)):
        await kernel.discard_session(session.id)


def _warn_unsandboxed(kernel: Kernel) -> None:
    """One line on stderr when agents' commands have no OS sandbox (from kernel state)."""
    sandbox = kernel.state.get(["sandbox"]) or {}
    if sandbox.get("sandboxed", True):
        return
    rule = {
        "ask": "each agent command needs your confirmation (--approve ask) or is refused",
        "allow": "agent commands run without asking (your [shell] unsandboxed setting)",
        "deny": "agent commands are refused (your [shell] unsandboxed setting)",
    }.get(str(sandbox.get("unsandboxed")), "")
    say(f"⚠ Shell: UNSANDBOXED (no bubblewrap): {rule}.", err=True)


def _extra(kernel: Kernel, settings: Settings) -> dict[str, Any]:
    """What every ``--json`` result adds: the sandbox state and ignored settings."""
    return {"sandbox": kernel.state.get(["sandbox"]), "untrusted_settings": settings.ignored}


def _report_failure(
    args: argparse.Namespace, failure: RunFailed, session: Session, extra: dict[str, Any]
) -> None:
    if args.json:
        print_json(
            {
                "status": "error",
                "outcome": "error",
                "exit_code": EXIT_CODES["error"],
                "agent": args.agent,
                "error": failure.error.to_dict(),
                "usage": failure.usage.to_dict(),
                "session": _session_json(session),
                **extra,
            }
        )
        return
    say(f"error: {failure.error.title}\n  {failure.error.message}", err=True)
    say(_session_line(session), err=True)


def _report(
    args: argparse.Namespace, outcome: RunOutcome, session: Session, extra: dict[str, Any]
) -> None:
    if args.json:
        print_json({**outcome_json(outcome), "session": _session_json(session), **extra})
        return
    say(outcome.summary)
    for failed in extra["failed_subtasks"]:
        say(f"  failed: {one_line(failed['id'])} {one_line(failed['goal'])[:60]}")
        say(f"    why: {one_line(failed['reason'])}")
    if extra["outcome"] != "done":
        say(f"Outcome: {OUTCOME_WORDS.get(extra['outcome'], extra['outcome'])}")
    say(_session_line(session), err=True)
    usage = outcome.usage
    models = ", ".join(f"{p}/{m}" for p, m in outcome.models) or "no model calls"
    say(
        f"\n[{outcome.agent}: {usage.wall_ms:.0f} ms, {usage.fuel:,} fuel, "
        f"{usage.peak_memory_bytes / 2**20:.1f} MiB, "
        f"{usage.tokens.input_tokens}+{usage.tokens.output_tokens} tokens, {models}]",
        err=True,
    )


def _session_json(session: Session) -> dict[str, Any]:
    diff = session.diff()
    return {
        "id": session.id,
        "state": session.state,
        "files": [
            {"path": f.path, "status": f.status, "hunks": [h.id for h in f.hunks]}
            for f in diff.files
        ],
    }


def _session_line(session: Session) -> str:
    diff = session.diff()
    if session.state == "discarded":
        why = "the run failed" if diff.files else "no changes"
        return (
            f"Session {session.id}: discarded ({why}; kept in history: "
            f"`briotui sessions show {session.id}`)."
        )
    if not diff.files:
        return f"Session {session.id}: no changes."
    hunks = sum(len(f.hunks) for f in diff.files)
    return (
        f"Session {session.id}: {len(diff.files)} file(s), {hunks} hunk(s) to review. "
        f"Nothing was applied. Review with `briotui sessions diff {session.id}`."
    )

"""The review screen: a session's files and hunks, Reviewer findings, accept/reject,
conflicts to resolve, commit.

Every change goes through the kernel's session commands; what is drawn comes from the
published state (the session's conflicts, verification, review) and the session's own
diff, read again after each change.

One piece: it is one screen whose keys (hunks, conflict regions, commit, revise) act on
the same session and redraw from the same state; the drawing of hunks and conflicts is
in ``widgets/diff_view.py``.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, OptionList, Static
from textual.widgets.option_list import Option

from briotui.kernel import contract
from briotui.kernel.errors import BrioError
from briotui.kernel.text import sanitize
from briotui.kernel.vfs import Decision, FileChange, Hunk, SessionDiff
from briotui.kernel.vfs.resolve import Choice
from briotui.ui.host import AppHost, host_of
from briotui.ui.messages import StateUpdated
from briotui.ui.port import SessionPort
from briotui.ui.screens.dialogs import Confirm, RejectReason, ReviseInstruction
from briotui.ui.screens.test_output import ConfirmUnverified, TestOutput
from briotui.ui.widgets.diff_view import ConflictView, HunkView
from briotui.ui.widgets.task_tree import themed

STATUS_LETTER = {"added": "A", "deleted": "D", "modified": "M", "renamed": "R"}


def counts(change: FileChange) -> tuple[int, int]:
    """Lines added and removed in a file change."""
    plus = sum(1 for h in change.hunks for line in h.lines if line.startswith("+"))
    minus = sum(1 for h in change.hunks for line in h.lines if line.startswith("-"))
    return plus, minus


class ReviewScreen(Screen[None]):
    """Review one session hunk by hunk, then commit the accepted hunks or roll back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "move(1)", "Next", show=False, id="review-next", tooltip="Next hunk"),
        Binding("k,up", "move(-1)", "Prev", show=False, id="review-prev", tooltip="Previous hunk"),
        Binding("a", "accept", "Accept", id="review-accept", tooltip="Accept this hunk"),
        Binding(
            "r", "reject", "Reject", id="review-reject", tooltip="Reject this hunk, with a reason"
        ),
        Binding(
            "A",
            "accept_file",
            "Accept file",
            show=False,
            id="review-accept-file",
            tooltip="Accept every hunk of this file",
        ),
        Binding(
            "R",
            "reject_file",
            "Reject file",
            show=False,
            id="review-reject-file",
            tooltip="Reject every hunk of this file",
        ),
        Binding(
            "ctrl+a",
            "accept_all",
            "Accept all",
            show=False,
            id="review-accept-all",
            tooltip="Accept every hunk of the session",
        ),
        Binding(
            "c",
            "commit",
            "Commit",
            id="review-commit",
            tooltip="Apply the accepted hunks to your working tree and git-commit them",
        ),
        Binding(
            "ctrl+z",
            "rollback",
            "Roll back",
            id="review-rollback",
            tooltip="Discard the session (or undo its commit)",
        ),
        Binding(
            "v",
            "revise",
            "Revise",
            id="review-revise",
            tooltip="Run the Coder again with the rejected hunks and their reasons",
        ),
        Binding(
            "t",
            "test_output",
            "Test output",
            show=False,
            id="review-test-output",
            tooltip="The output of the latest test run in this session",
        ),
        Binding(
            "1",
            "resolve('ours')",
            "Ours",
            id="review-take-ours",
            tooltip="Resolve the marked conflict region with this session's side",
        ),
        Binding(
            "2",
            "resolve('theirs')",
            "Theirs",
            id="review-take-theirs",
            tooltip="Resolve the marked conflict region with the branch's side",
        ),
        Binding(
            "3",
            "resolve('both')",
            "Both",
            id="review-keep-both",
            tooltip="Resolve the marked conflict region with both sides (ours, then theirs)",
        ),
        Binding(
            "n",
            "next_region",
            "Next conflict",
            show=False,
            id="review-next-conflict",
            tooltip="Mark the next conflict region to resolve",
        ),
        Binding("escape", "close", "Back", id="review-back", tooltip="Back to the main screen"),
    ]

    RESOLVE_ACTIONS: ClassVar[frozenset[str]] = frozenset({"resolve", "next_region"})
    """Actions shown only while conflicts are left to resolve."""

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.session: SessionPort | None = None
        self.diff = SessionDiff(())
        self.decisions: dict[str, tuple[Decision, str]] = {}
        self.hunks: list[Hunk] = []
        self.current = 0
        self.conflict_at: tuple[str, int] | None = None
        """The conflict region the resolve keys act on: (path, number in the file)."""

    @property
    def brio(self) -> AppHost:
        """The app, through the screens' interface."""
        return host_of(self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="review-title")
        with Horizontal(id="review-body"):
            with Vertical(id="review-side"):
                yield OptionList(id="review-files")
                yield Static(id="review-summary")
            yield VerticalScroll(id="review-diff")
        with Horizontal(id="review-actions"):
            yield Button("Approve & commit", id="commit", variant="success", compact=True)
            yield Button("Revise", id="revise", variant="primary", compact=True)
            yield Button("Roll back", id="rollback", variant="error", compact=True)
            yield Static(id="review-help")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#review-help", Static).update(
            "j/k move · a accept · r reject · A/R file · ^a all · v revise · f1 keys"
        )
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the resolve keys while the session has no conflict left to resolve."""
        if action in self.RESOLVE_ACTIONS:
            return self._open_regions() != []
        return True

    # -- loading -------------------------------------------------------------------------

    def _summary(self) -> contract.SessionView:
        view = contract.session(self.brio.mirror, self.session_id)
        return view if view is not None else contract.session_view(self.session_id)

    @work(exclusive=True, exit_on_error=False, group="review-load", description="load the diff")
    async def load(self) -> None:
        """Read the session's diff and decisions off the loop, then draw them."""

        def read() -> tuple[SessionPort, SessionDiff, dict[str, tuple[Decision, str]]]:
            session = self.brio.workbench.kernel.sessions().get(self.session_id)
            return session, session.diff(), session.decisions()

        try:
            self.session, self.diff, self.decisions = await asyncio.to_thread(read)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            self.dismiss(None)
            return
        self.hunks = self.diff.hunks()
        self.current = min(self.current, max(0, len(self.hunks) - 1))
        await self._populate()

    async def _populate(self) -> None:
        pane = self.query_one("#review-diff", VerticalScroll)
        await pane.remove_children()
        summary = self._summary()
        widgets: list[Static | HunkView] = [
            ConflictView(conflict) for conflict in summary["conflicts"]
        ]
        self._pick_region()
        for view in widgets:
            if isinstance(view, ConflictView):
                view.current = self._current_in(view.conflict)
        for change in self.diff.files:
            plus, minus = counts(change)
            head = Text()
            head.append(f"{STATUS_LETTER[change.status]} {sanitize(change.path)}", style="bold")
            if change.status == "renamed":
                head.append(f" (from {sanitize(change.old_path)})", style="dim")
            head.append(f"  +{plus} -{minus}", style="dim")
            widgets.append(Static(head, classes="file-header"))
            widgets.extend(HunkView(h) for h in change.hunks)
        if not self.diff.files:
            widgets.append(Static("This session has no changes.", classes="dim"))
        await pane.mount_all(widgets)
        self._redraw()
        self._move_to(self.current)

    def _redraw(self) -> None:
        summary = self._summary()
        review = summary["review"]
        findings: dict[str, list[contract.FindingView]] = {}
        for finding in review["findings"] if review else ():
            findings.setdefault(finding["hunk_id"], []).append(finding)
        authors = {
            h["id"]: " · ".join(x for x in (h["agent"], h["model"]) if x)
            for h in contract.hunks(summary)
        }
        for view in self.query(HunkView):
            view.show(
                findings=findings.get(view.hunk.id, []),
                decision=self.decisions.get(view.hunk.id),
                author=authors.get(view.hunk.id, ""),
            )
        self._draw_conflicts(summary)
        self._draw_files()
        self._draw_title(summary, review)

    # -- conflicts -------------------------------------------------------------------------

    def _open_regions(self) -> list[tuple[str, int]]:
        """The unresolved conflict regions, as published: (path, number in the file)."""
        return [
            (conflict["path"], region["index"])
            for conflict in self._summary()["conflicts"]
            for region in conflict["regions"]
            if not region["resolved"]
        ]

    def _pick_region(self) -> None:
        """Keep the marked region while it is open, else mark the first open one."""
        regions = self._open_regions()
        if self.conflict_at not in regions:
            self.conflict_at = regions[0] if regions else None

    def _current_in(self, conflict: contract.ConflictView) -> int | None:
        if self.conflict_at is None or self.conflict_at[0] != conflict["path"]:
            return None
        return self.conflict_at[1]

    def _draw_conflicts(self, summary: contract.SessionView) -> None:
        views = list(self.query(ConflictView))
        self._pick_region()
        if len(views) == len(summary["conflicts"]):
            for view, conflict in zip(views, summary["conflicts"], strict=True):
                view.show(conflict, self._current_in(conflict))
        self.refresh_bindings()

    def conflict_commands(self) -> list[SystemCommand]:
        """The palette's entries for resolving the marked conflict region (none when no
        conflict is left)."""
        if not self._open_regions():
            return []
        return [
            SystemCommand(
                f"Conflict: {title}",
                f"Resolve the marked conflict region: {help_text}",
                partial(self.action_resolve, choice),
            )
            for title, choice, help_text in (
                ("take ours", "ours", "keep this session's side"),
                ("take theirs", "theirs", "take the branch's side"),
                ("keep both", "both", "this session's side, then the branch's"),
            )
        ] + [
            SystemCommand(
                "Conflict: next region", "Mark the next region to resolve", self.action_next_region
            )
        ]

    def action_next_region(self) -> None:
        """Mark the next conflict region left to resolve."""
        regions = self._open_regions()
        if not regions:
            return
        at = regions.index(self.conflict_at) + 1 if self.conflict_at in regions else 0
        self.conflict_at = regions[at % len(regions)]
        self._draw_conflicts(self._summary())
        for view in self.query(ConflictView):
            if view.current is not None:
                self.query_one("#review-diff", VerticalScroll).scroll_to_widget(
                    view, animate=False, top=True
                )

    def action_resolve(self, choice: str) -> None:
        """Resolve the marked conflict region: ``ours``, ``theirs`` or ``both``."""
        self._pick_region()
        if self.conflict_at is None:
            self.notify("No conflict is left to resolve.", title="Nothing to resolve")
            return
        if choice in ("ours", "theirs", "both"):
            self.resolve(self.conflict_at[0], self.conflict_at[1], choice)

    @work(exit_on_error=False, group="review-resolve", description="resolve a conflict")
    async def resolve(self, path: str, region: int, choice: Choice) -> None:
        """Resolve a region through the kernel, read the diff again, and run the tests
        once no conflict is left (the verified badge follows the published state)."""
        kernel = self.brio.workbench.kernel
        try:
            done = await kernel.resolve_conflict(
                self.session_id, path, choice, region=region, by="user (tui)"
            )
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        self.notify(
            f"Region {region} of {sanitize(path)}: took {done.resolution}."
            + (f" {done.remaining} region(s) left." if done.remaining else ""),
            title="Conflict resolved",
        )
        await self._reload()
        if done.remaining:
            return
        self.notify("No conflicts left: running the tests in the session…", title="Testing")
        try:
            retest = await kernel.retest_session(self.session_id)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        self.notify(
            retest.message,
            title="Verified" if retest.verified else "Tests",
            severity="information" if retest.verified is not False else "warning",
        )
        await self._reload()

    async def _reload(self) -> None:
        """Read the session's diff and decisions again (they changed) and redraw."""

        def read() -> tuple[SessionDiff, dict[str, tuple[Decision, str]]]:
            session = self.brio.workbench.kernel.sessions().get(self.session_id)
            return session.diff(), session.decisions()

        self.diff, self.decisions = await asyncio.to_thread(read)
        self.hunks = self.diff.hunks()
        self.current = min(self.current, max(0, len(self.hunks) - 1))
        await self._populate()

    def _draw_files(self) -> None:
        files = self.query_one("#review-files", OptionList)
        highlighted = files.highlighted
        files.clear_options()
        for change in self.diff.files:
            decided = sum(
                1
                for h in change.hunks
                if h.id in self.decisions and self.decisions[h.id][0] != "pending"
            )
            plus, minus = counts(change)
            label = Text()
            label.append(f"{STATUS_LETTER[change.status]} ", style="bold")
            label.append(sanitize(change.path))
            label.append(f" +{plus} -{minus} {decided}/{len(change.hunks)}", style="dim")
            files.add_option(Option(label, id=change.path))
        if highlighted is not None and highlighted < len(self.diff.files):
            files.highlighted = highlighted
        accepted = sum(1 for d, _ in self.decisions.values() if d == "accepted")
        rejected = sum(1 for d, _ in self.decisions.values() if d == "rejected")
        self.query_one("#review-summary", Static).update(
            f"{len(self.hunks)} hunks\n{accepted} accepted\n{rejected} rejected\n"
            f"{len(self.hunks) - accepted - rejected} to decide"
        )

    def _draw_title(
        self, summary: contract.SessionView, review: contract.ReviewView | None
    ) -> None:
        v = self.app.theme_variables
        title = Text()
        title.append(f"Review session {self.session_id}", style="bold")
        task = contract.task(self.brio.mirror, summary["task"])
        goal = (task["title"] if task else "") or (self.session.task if self.session else "")
        if goal:
            title.append(f"  · {sanitize(str(goal))[:60]}")
        verified = summary["verified"]
        partial = any(d == "rejected" for d, _ in self.decisions.values())
        left = contract.unresolved(summary["conflicts"])
        tests = summary.get("tests")
        if left:  # whatever the tests said, the change is not whole
            title.append(
                f"  ▲ {left} conflict region(s) to resolve ",
                style=themed("bold reverse $warning", v),
            )
        elif verified is False and (tests is None or tests["passed"]):
            title.append("  not verified (the tests must run on it)", style="dim")
        elif verified is True and partial:  # the run covered hunks that will not be committed
            title.append(
                "  verified as a whole; what you accept is tested on commit",
                style=themed("$warning", v),
            )
        elif verified is True:
            title.append("  ✔ verified ", style=themed("bold reverse $success", v))
        elif verified is False:
            title.append("  ✘ tests failed ", style=themed("bold reverse $error", v))
        else:
            title.append("  not verified", style="dim")
        self._draw_tests(title, summary.get("tests"))
        verdict = review["verdict"] if review else ""
        if verdict:
            colour = "$success" if verdict in ("approve", "approved", "ok") else "$warning"
            title.append(f"  Reviewer: {sanitize(str(verdict))}", style=themed(colour, v))
        elif review is None:
            title.append("  no Reviewer check", style="dim")
        general = [f for f in (review["findings"] if review else ()) if not f["hunk_id"]]
        for finding in general[:3]:  # findings about the change as a whole, not one hunk
            title.append(
                f"\n  [{sanitize(finding['severity'])}] {sanitize(finding['message'])[:100]}"
            )
        self.query_one("#review-title", Static).update(title)

    def _draw_tests(self, title: Text, tests: contract.VerificationView | None) -> None:
        """The latest test run: failing tests by name, and the key for the output."""
        if tests is None or tests["passed"]:  # the verified badge says it
            return
        names = tests["failed"]
        shown = ", ".join(sanitize(n) for n in names[:3]) + (" …" if len(names) > 3 else "")
        what = shown or f"exit {tests['exit_code']}"
        title.append(f"\n  failing: {what}  (t: test output)")

    def action_test_output(self) -> None:
        """Show the stored output of the latest test run in this session."""
        self.show_test_output()

    @work(exclusive=True, exit_on_error=False, group="review-tests", description="test output")
    async def show_test_output(self) -> None:
        """Read the run from the store off the loop, then open it."""
        kernel = self.brio.workbench.kernel
        try:
            run = await asyncio.to_thread(kernel.test_run, self.session_id)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        if run is None:
            self.notify("The tests have not run in this session.", title="No test run")
            return
        self.app.push_screen(TestOutput(run))

    def on_state_updated(self, message: StateUpdated) -> None:
        # Decisions made elsewhere (another attached client, the CLI) are published in
        # the session's state: show them as they come.
        summary = contract.session(self.brio.mirror, self.session_id)
        if summary is not None and self.session is not None:
            for hunk in contract.hunks(summary):
                if hunk["id"] in self.decisions or hunk["decision"] != "pending":
                    self.decisions[hunk["id"]] = (hunk["decision"], hunk["reason"])
        self._redraw()

    # -- moving ------------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        if not self.hunks:
            return
        index = max(0, min(len(self.hunks) - 1, index))
        for view in self.query(HunkView):
            view.remove_class("-current")
        self.current = index
        hunk = self.hunks[index]
        try:
            view = self.query_one(f"#hunk-{hunk.id}", HunkView)
        except Exception:  # not mounted yet
            return
        view.add_class("-current")
        self.query_one("#review-diff", VerticalScroll).scroll_to_widget(
            view, animate=False, top=False
        )
        paths = [c.path for c in self.diff.files]
        if hunk.path in paths:
            self.query_one("#review-files", OptionList).highlighted = paths.index(hunk.path)

    def action_move(self, step: int) -> None:
        """Move to the next (1) or previous (-1) hunk."""
        self._move_to(self.current + step)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        path = event.option.id
        for i, hunk in enumerate(self.hunks):
            if hunk.path == path:
                self._move_to(i)
                break

    # -- deciding ----------------------------------------------------------------------

    def _hunk(self) -> Hunk | None:
        return self.hunks[self.current] if self.hunks else None

    def action_accept(self) -> None:
        """Accept the current hunk."""
        if (hunk := self._hunk()) is not None:
            self.decide([hunk.id], "accepted", advance=True)

    def action_accept_file(self) -> None:
        """Accept every hunk of the current file."""
        if (hunk := self._hunk()) is not None:
            self.decide(None, "accepted", path=hunk.path)

    def action_accept_all(self) -> None:
        """Accept every hunk."""
        if self.hunks:
            self.decide(None, "accepted")

    def action_reject(self) -> None:
        """Reject the current hunk, asking for a reason."""
        if (hunk := self._hunk()) is not None:
            self._ask_reason(f"hunk #h-{hunk.id}", [hunk.id], None)

    def action_reject_file(self) -> None:
        """Reject every hunk of the current file, asking for a reason."""
        if (hunk := self._hunk()) is not None:
            self._ask_reason(sanitize(hunk.path), None, hunk.path)

    def _ask_reason(self, what: str, ids: list[str] | None, path: str | None) -> None:
        def done(reason: str | None) -> None:
            if reason is not None:
                self.decide(ids, "rejected", reason=reason, path=path, advance=ids is not None)

        self.app.push_screen(RejectReason(what), done)

    @work(exit_on_error=False, group="review-decide", description="record a decision")
    async def decide(
        self,
        ids: list[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
        advance: bool = False,
    ) -> None:
        """Record a decision through the kernel (which republishes the session), then redraw."""
        if self.session is None:
            return
        kernel = self.brio.workbench.kernel
        try:
            await kernel.decide(self.session_id, ids, decision, reason=reason, path=path)
            self.decisions = await asyncio.to_thread(
                kernel.sessions().get(self.session_id).decisions
            )
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        self._redraw()
        if advance:
            self._move_to(self.current + 1)

    # -- commit and rollback -------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "commit":
            self.action_commit()
        elif event.button.id == "rollback":
            self.action_rollback()
        elif event.button.id == "revise":
            self.action_revise()

    def action_commit(self) -> None:
        """Apply the accepted hunks and make a git commit; asks first when hunks are
        still undecided."""
        accepted = sum(
            1 for h in self.hunks if self.decisions.get(h.id, ("pending", ""))[0] == "accepted"
        )
        if not accepted:
            self.notify(
                "Accept at least one hunk first (a, A or ctrl+a).", title="Nothing to commit"
            )
            return
        undecided = sum(
            1 for h in self.hunks if self.decisions.get(h.id, ("pending", ""))[0] == "pending"
        )
        if not undecided:
            self.commit()
            return

        def done(go: bool | None) -> None:
            if go:
                self.commit()

        self.app.push_screen(
            Confirm(
                "Commit with hunks undecided?",
                f"{undecided} hunk(s) are not decided yet. Commit the {accepted} accepted "
                "hunk(s) and leave the undecided ones out of your files, or cancel and "
                "decide them first.",
                "commit the accepted",
            ),
            done,
        )

    @work(exclusive=True, exit_on_error=False, group="review-commit", description="commit")
    async def commit(self, force: bool = False, expected: tuple[str, ...] | None = None) -> None:
        """Commit off the loop; report what was written.

        What did not pass the tests (the session, or the accepted hunks run on their own)
        is committed only after the user confirms (``force``); what is committed is
        exactly the accepted hunks the check was about (``expected``), or nothing.
        """
        session = self.session
        if session is None:
            return
        if not force:
            self.notify("Checking that the tests pass on what you accepted…", title="Verifying")
            try:
                check = await self.brio.workbench.kernel.verify_commit(session.id)
            except BrioError as exc:
                self.notify(exc.message, title=exc.title, severity="error", timeout=10)
                return
            if check.scratch:
                self.notify(check.message, title="Tests on the accepted hunks")
            expected = check.accepted
            if not check.ok:

                def answered(yes: bool | None) -> None:
                    if yes:
                        self.commit(force=True, expected=expected)

                ask = (
                    Confirm(
                        "Commit with conflicts unresolved?",
                        sanitize(check.message)
                        + " Commit anyway with this session's side in those regions?",
                        "commit anyway",
                    )
                    if check.status == "conflicts"
                    else ConfirmUnverified(check.message)
                )
                self.app.push_screen(ask, answered)
                return
        is_git = (self.brio.project / ".git").exists()
        try:  # the kernel makes the message, the same as `briotui sessions commit`
            result = await self.brio.workbench.kernel.commit(
                session.id, git=is_git, force=True, expected_ids=expected
            )
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        files = len(result.written) + len(result.deleted)
        sha = f" as {result.git_commit[:10]}" if result.git_commit else ""
        self.notify(f"{files} file(s) written{sha}.", title="Committed")
        self.dismiss(None)

    def action_rollback(self) -> None:
        """Discard the session (or undo its commit), once the user confirms."""
        session = self.session
        if session is None:
            return
        if session.state == "committed":
            title, text, yes = (
                "Undo this commit?",
                f"Session {session.id} is committed. Rolling back puts its files back as "
                "they were before the commit (and undoes its git commit when it is still "
                "the last one).",
                "undo the commit",
            )
        else:
            title, text, yes = (
                "Discard this session?",
                f"Session {session.id} and its {len(self.hunks)} hunk(s) are discarded; "
                "none of it reaches your files.",
                "discard it",
            )

        def done(go: bool | None) -> None:
            if go:
                self.rollback()

        self.app.push_screen(Confirm(title, text, yes), done)

    @work(exclusive=True, exit_on_error=False, group="review-commit", description="roll back")
    async def rollback(self) -> None:
        """Roll back off the loop."""
        session = self.session
        if session is None:
            return
        try:
            result = await self.brio.workbench.kernel.rollback(session.id)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        detail = (
            f"{len(result.restored)} file(s) restored."
            if result.restored
            else "Nothing was applied."
        )
        self.notify(detail + "".join(f" {n}" for n in result.notes), title="Rolled back")
        self.dismiss(None)

    def action_revise(self) -> None:
        """Ask for an optional instruction, then have the Coder redo the rejected hunks."""
        rejected = sum(1 for d, _ in self.decisions.values() if d == "rejected")

        def done(instruction: str | None) -> None:
            if instruction is not None:
                self.revise(instruction)

        self.app.push_screen(ReviseInstruction(rejected), done)

    @work(exclusive=True, exit_on_error=False, group="review-commit", description="revise")
    async def revise(self, instruction: str) -> None:
        """Start the Coder on this session with the rejected hunks as feedback."""
        try:
            task_id = await self.brio.workbench.kernel.revise(
                self.session_id, instruction, provider=self.brio.workbench.provider
            )
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        self.notify(
            f"The Coder is revising session {self.session_id} (task {task_id}); its new "
            "hunks join this review when it is done.",
            title="Revising",
        )
        self.dismiss(None)

    def action_close(self) -> None:
        """Back to the main screen."""
        self.dismiss(None)

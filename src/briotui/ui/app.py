"""The briotui Textual app: bridges the kernel to the screens, once.

The app owns the kernel (through :class:`~briotui.ui.workbench.Workbench`), folds the
state tree's patches into a mirror and streamed model text into per-task buffers, and
hands both to the screens as coalesced messages at most once a frame. Capability
prompts and agents' clarifying questions arrive here and are shown one at a time;
interrupted tasks are restored on start and resumed or discarded from here. Widgets
only render what they are given and post what the user did.

It is longer than most modules (~770 lines) because every app-wide action (review,
sessions, tasks, prompts, providers, themes) is one short method here over the kernel.

One piece: the app is Textual's one :class:`~textual.app.App` (bindings, the state
mirror, workers and the prompts it owns); the screens reach it only through
:class:`~briotui.ui.host.AppHost`.

Start: the first frame comes before the kernel. This module imports nothing of the
kernel's runtime, sessions or models (only its light contract, settings and errors);
on mount the app shows the main screen over an empty state, and once that first frame
is displayed (Textual's ``Ready``) a worker imports and starts the kernel
(:meth:`BrioApp._start_kernel`), off the event loop for the imports. A request typed
meanwhile waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

import jsonpatch
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from briotui.kernel import contract
from briotui.kernel.caps.model import Answer, Capability, CapabilityRequest
from briotui.kernel.errors import BrioError, ConfigError
from briotui.kernel.paths import themes_dir, user_config_dir
from briotui.kernel.settings import Settings, load_settings
from briotui.kernel.text import sanitize
from briotui.ui.config import UiConfig, save_theme, ui_config
from briotui.ui.host import AppHost
from briotui.ui.messages import (
    BuildUpdated,
    CapabilityDecided,
    ModelText,
    StateUpdated,
    WorkingTreeChanged,
)
from briotui.ui.screens.capability import CapabilityPrompt
from briotui.ui.screens.dialogs import AskUser, ConfirmQuit, InterruptedOffer
from briotui.ui.screens.help import HelpScreen, key_rows
from briotui.ui.screens.main import MainScreen
from briotui.ui.screens.trust import TrustDecision, TrustDialog
from briotui.ui.themes import DEFAULT_THEME, load_themes

if TYPE_CHECKING:  # imported after the first frame (see the module docstring)
    from briotui.kernel.kernel import Kernel
    from briotui.kernel.llm.types import Provider
    from briotui.kernel.runtime.build import BuildEvent
    from briotui.kernel.runtime.events import Event
    from briotui.kernel.serve.remote import RemoteKernel
    from briotui.kernel.state import StatePatch, Subscription
    from briotui.ui.workbench import Workbench

KERNEL_MODULES: Final = ("briotui.kernel.kernel", "briotui.ui.workbench")
"""What the app imports after its first frame, off the event loop."""


def _import_kernel() -> None:
    for name in KERNEL_MODULES:
        importlib.import_module(name)


READY_FALLBACK_S: Final = 1.0
"""When the kernel starts if Textual's first-frame ``Ready`` has not come by then."""

FRAME_S: Final = 1 / 30
"""How often state changes and streamed text reach the screens, at most."""

BUILD_LABEL: Final = {
    "cached": "built",
    "building": "building…",
    "compiling": "compiling…",
    "done": "built",
    "failed": "FAILED",
}


OUTCOME_HEADS: Final = {
    "verified": "✔ Verified.",
    "tests-failed": "✘ Tests failed.",
    "partial": "◐ Partly done.",
    "failed": "✘ Nothing was changed.",
}
"""The closing line's head for a request that ran to its end, by its outcome (anything
else: "✔ Done.")."""


def outcome_text(
    status: str,
    summary: str,
    error: str = "",
    kind: str = "",
    *,
    session: str | None = None,
) -> str:
    """The Markdown closing a task's conversation: how it ended and what to do next.

    ``kind`` is the request's outcome (verified, partial, failed...): a pipeline that
    ran to its end without changing anything is not shown as done.
    """
    summary = summary.strip()
    if status == "done":
        line = f"\n\n---\n\n**{OUTCOME_HEADS.get(kind, '✔ Done.')}** {summary}"
        if session:
            line += (
                f"\n\nReview its changes (session `{session}`) with **ctrl+r**. A request "
                "starting with **+** continues the session last reviewed or run."
            )
        return line
    if status == "failed":
        head = f"**✘ Failed: {error}.**" if error else "**✘ Failed.**"
        return f"\n\n---\n\n{head} {summary}"
    return "\n\n---\n\n**⊘ Cancelled.**"


class BrioApp(App[int]):
    """The briotui workstation.

    Args:
        project: The project directory.
        provider: Where model requests go; None reads the configured providers.
        demo: Use the labelled scripted demo provider.
        config_dir: The user config dir (default ``$BRIOTUI_CONFIG_DIR`` or XDG).
        build: Build missing agents in the background at start.
    """

    TITLE = "briotui"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="quit",
            tooltip="Quit (asks if tasks are running)",
            priority=True,
        ),
        Binding("f1", "help", "Keys", id="help", tooltip="Show every key and its binding id"),
        Binding(
            "f5",
            "resume_task",
            "Resume",
            show=False,
            id="resume-task",
            tooltip="Resume the selected (interrupted) task from its journal",
        ),
        Binding(
            "f8",
            "discard_task",
            "Discard",
            show=False,
            id="discard-task",
            tooltip="Drop the selected task's session (roll it back)",
        ),
    ]

    def __init__(
        self,
        project: Path | str,
        *,
        provider: Provider | None = None,
        demo: bool = False,
        config_dir: Path | None = None,
        build: bool = True,
        settings: Settings | None = None,
        attach: str | None = None,
        observe: Callable[[], Awaitable[RemoteKernel]] | None = None,
    ) -> None:
        super().__init__()
        self.attach_url = attach
        """The URL of a kernel served by ``briotui serve`` to drive instead of a local one."""
        self._observe = observe
        self.observing = observe is not None
        """Following a project's state over NATS, read-only (``attach --nats``): no
        prompts are asked here and every command is refused by the kernel object."""
        self._shown_prompts: set[str] = set()
        self._prompt_screens: dict[str, CapabilityPrompt | AskUser] = {}
        self._connection_watch: asyncio.Task[None] | None = None
        self.HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
        self.project = Path(project).resolve()
        self.config_dir = config_dir or (settings.user_dir if settings else user_config_dir())
        self.demo = demo
        self._provider = _demo_provider() if demo else provider
        self._provider_given = provider is not None or demo
        self._build_on_start = build
        self.provider_problem = ""
        """Why no provider can answer ("" when one can)."""
        self.kernel: Kernel | None = None
        self._workbench: Workbench | None = None
        self.mirror: dict[str, Any] = {"tasks": {}, "agents": {}, "sessions": {}, "usage": {}}
        """The mirror of the kernel's state tree, kept by applying its patches."""
        self._subscription: Subscription | None = None
        self._seq = 0
        self._state_dirty = False
        self._text: dict[str, list[str]] = {}
        self._pending_text: dict[str, list[str]] = {}
        self._reply_start: dict[str, int] = {}
        """Per task with a reply streaming: how long its text was when the reply began."""
        self._flush_scheduled = False
        self._finished_seen: set[str] = set()
        self._reported: set[str] = set()
        self._prompt_lock = asyncio.Lock()
        self._asking: dict[tuple[str, str, str, str], asyncio.Future[Answer]] = {}
        self.build_phases: dict[str, str] = {}
        self.building = False
        self.ui_config = UiConfig()
        self._given_settings = settings
        self.settings = settings or Settings(
            user_file=self.config_dir / "config.toml", user_dir=self.config_dir
        )
        """The user's and the project's settings (the project's sensitive ones once trusted),
        built once: given by the caller (the CLI), or read on mount."""
        self._config_errors: list[ConfigError] = []
        self._unsubscribe_events: Any = None
        self._tree_changed = 0
        self.follow_up = False
        """Requests continue the open session (the toggle; a "+" prefix does it once)."""
        self._open_session: str | None = None
        """The session last opened in review, or made by this run's latest request."""
        self.kernel_started = asyncio.Event()
        """Set once the kernel runs (after the first frame); requests wait for it."""
        self._began = False

    # -- start and stop ------------------------------------------------------------------

    @property
    def workbench(self) -> Workbench:
        """The kernel as the UI uses it (set on mount)."""
        assert self._workbench is not None, "the app is not mounted yet"
        return self._workbench

    def _load_settings(self) -> None:
        themes, errors = load_themes([themes_dir(), self.config_dir / "themes"])
        self._config_errors.extend(errors)
        for theme in themes:
            self.register_theme(theme)
        try:
            if self._given_settings is None:  # nobody built them: read them once, here
                self.settings = load_settings(self.project, user_dir=self.config_dir)
            self.ui_config = ui_config(self.settings)
        except ConfigError as exc:
            self._config_errors.append(exc)
        wanted = self.ui_config.theme or DEFAULT_THEME
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        if self.ui_config.keymap:
            self.set_keymap(self.ui_config.keymap)
        self.theme_changed_signal.subscribe(self, self._persist_theme)

    def _persist_theme(self, theme: Any) -> None:
        try:
            save_theme(self.config_dir, str(theme.name))
        except OSError as exc:
            self.notify(f"Could not save the theme choice: {exc}", severity="warning")

    async def on_mount(self) -> None:
        self._load_settings()
        self.sub_title = self.project.name
        await self.push_screen(MainScreen())  # over an empty state: the first frame
        # Ready comes with the first frame; should it never come, start anyway
        self.set_timer(READY_FALLBACK_S, self._begin)

    def on_ready(self) -> None:
        """The first frame is on the screen: now the kernel (or the served one)."""
        self._begin()

    def _begin(self) -> None:
        """Start the kernel (or join the served one), once."""
        if self._began:
            return
        self._began = True
        if self.attach_url is not None:
            self._start_attached(self.attach_url)
        else:
            self._start_kernel()

    @work(exclusive=True, group="kernel", description="attach to a served kernel")
    async def _start_attached(self, url: str) -> None:
        """Join a served kernel after the first frame (see :meth:`_mount_attached`)."""
        await self._mount_attached(url)

    @work(exclusive=True, group="kernel", description="start the kernel")
    async def _start_kernel(self) -> None:
        """Import and start the kernel after the first frame, then show its state."""
        await asyncio.to_thread(_import_kernel)  # the imports, off the event loop
        from briotui.kernel.kernel import Kernel
        from briotui.ui.workbench import Workbench, provider_info

        self.kernel = Kernel(self.project, config=self.settings)
        if self._provider is None:
            self._open_router()
        self._workbench = Workbench(self.kernel, self._provider)
        if self.demo:
            self.workbench.use_provider(self._provider, demo=True)
        info = provider_info(self._provider)
        if not info["ok"] and not self.provider_problem:
            self.provider_problem = str(info["detail"])
        self.kernel.set_approvals("ask", self.ask_capability)
        self.kernel.set_answerer(self.ask_user)
        interrupted = self._restore()
        loop = asyncio.get_running_loop()
        self._subscription = self.workbench.state.subscribe(self._on_patch, loop=loop)
        self.mirror = self._subscription.snapshot.tree
        self._seq = self._subscription.snapshot.seq
        self._unsubscribe_events = self.kernel.events.subscribe(self._on_event)
        self.restore_sessions()
        self.kernel_started.set()
        self._broadcast(StateUpdated(self._seq))  # the main screen shows the kernel's state
        self._broadcast(BuildUpdated(dict(self.build_phases), not self.building))
        if interrupted:
            self._offer_interrupted(interrupted)
        for error in self._config_errors:
            self.notify(error.message, title=error.title, severity="warning", timeout=10)
        self.watch_project()
        self.join_cluster()
        if self._build_on_start:
            self._known_failures()
            if self._missing_agents():
                self.build_agents()
        if not self._provider_given and not self.provider_problem:
            self.check_provider()
        if self.settings.ignored:
            self.action_trust_project()

    @work(exclusive=True, group="cluster", description="join the workers' NATS server")
    async def join_cluster(self) -> None:
        """Send agent runs to workers when the user's ``[cluster] nats`` names a server
        (nothing happens without one); a problem is a notice, agents then run here."""
        from briotui.kernel.errors import BrioError

        if self.kernel is None:
            return
        try:
            cluster = await self.kernel.join_configured_cluster()
        except BrioError as error:
            self.notify(
                f"{error.message} Agents run on this machine.",
                title=error.title,
                severity="warning",
                timeout=10,
            )
            return
        if cluster is not None:
            self.notify(f"Agents run on workers at {cluster.config.nats}.", title="Workers")

    def _starting(self) -> bool:
        """Whether the kernel is not running yet (says so to the user)."""
        if self.kernel_started.is_set():
            return False
        self.notify("briotui is still starting; try again in a moment.", timeout=3)
        return True

    async def _mount_attached(self, url: str) -> None:
        """Drive a served kernel: its state mirrored here, its prompts answered from here.

        Building agents, watching the working tree, checking providers and trust belong
        to the machine serving the kernel; none of it runs here.
        """
        from briotui.kernel.serve.remote import RemoteKernel
        from briotui.ui.workbench import Workbench

        try:
            remote = await (self._observe() if self._observe else RemoteKernel.attach(url))
        except BrioError as exc:
            self.exit(return_code=2, message=f"{exc.title}: {exc.message}")
            return
        answer = None if self.observing else remote.answer
        self._workbench = Workbench(remote, None, attached=True, answer=answer)
        project = remote.client.hello.get("project", "?")
        self.sub_title = (
            f"following {project} over NATS (read-only)"
            if self.observing
            else f"attached to {project}"
        )
        loop = asyncio.get_running_loop()
        self._subscription = self.workbench.state.subscribe(self._on_patch, loop=loop)
        self.mirror = self._subscription.snapshot.tree
        self._seq = self._subscription.snapshot.seq
        self._unsubscribe_events = remote.events.subscribe(self._on_event)
        self.kernel_started.set()
        self._broadcast(StateUpdated(self._seq))  # the main screen shows the kernel's state
        if self.observing:
            self.notify(
                "You follow this project read-only: requests, decisions and prompts are "
                "answered where the kernel is served.",
                title="Observer",
                timeout=8,
            )
        else:
            self._answer_prompts()
        # a plain task, not a worker: it lasts as long as the app (workers are waited for)
        self._connection_watch = asyncio.create_task(
            self._watch_connection(remote.client.closed, remote.client.joined)
        )

    async def _watch_connection(self, closed: asyncio.Event, joined: asyncio.Event) -> None:
        """Say when the connection to a served kernel drops and when it is back."""
        while True:
            await closed.wait()
            self.notify(
                "The connection to the kernel dropped; rejoining (the state catches up "
                "when it is back).",
                title="Kernel connection lost",
                severity="warning",
            )
            await joined.wait()
            self.notify("Rejoined the kernel.", title="Kernel connection back")

    def _answer_prompts(self) -> None:
        """Ask here the prompts a served kernel published; withdraw those answered elsewhere."""
        waiting = contract.prompts(self.mirror)
        for prompt_id, view in waiting.items():
            if prompt_id not in self._shown_prompts:
                self._shown_prompts.add(prompt_id)
                self.answer_prompt(prompt_id, view)
        for prompt_id, screen in list(self._prompt_screens.items()):
            if prompt_id not in waiting and screen.is_attached:
                screen.dismiss(None)  # another client answered it first

    @work(exit_on_error=False, group="prompts", description="answer a prompt")
    async def answer_prompt(self, prompt_id: str, view: contract.PromptView) -> None:
        """Show one published prompt and send the answer (the first answer wins)."""
        workbench = self.workbench
        answer: str | None
        if view["kind"] == "question":
            answer = await self.ask_user(view["agent"], view["target"], prompt_id=prompt_id)
        else:
            request = CapabilityRequest(
                agent=view["agent"],
                capability=cast(Capability, view["capability"]),
                target=view["target"],
                task_id=view["task"],
                session_id=view["session"],
                reason=view["reason"],
                unsandboxed=view["unsandboxed"],
            )
            answer = await self.ask_capability(request, prompt_id=prompt_id)
        if prompt_id not in contract.prompts(self.mirror):
            return  # answered elsewhere meanwhile
        try:
            await workbench.answer(prompt_id, answer or "")
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="warning")

    async def on_unmount(self) -> None:
        if self._connection_watch is not None:
            self._connection_watch.cancel()
        if self._subscription is not None:
            self._subscription.close()
        if self._unsubscribe_events is not None:
            self._unsubscribe_events()
        # Running tasks are left to the kernel: a served one keeps them running, a local
        # one stops them as it closes and marks them interrupted, so the next start
        # offers to resume them (cancelling them here would record them as cancelled by
        # the user, never offered again).
        if self._workbench is not None and self._workbench.attached:
            await self._workbench.kernel.close()  # leave the served kernel
        if self.kernel is not None:
            await self.kernel.close()
        close = getattr(self._provider, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    # -- the bridge: state patches and events in, coalesced messages out -------------------

    def _on_patch(self, patch: StatePatch) -> None:
        if patch.seq <= self._seq:
            return
        jsonpatch.apply_patch(self.mirror, patch.ops, in_place=True)
        self._seq = patch.seq
        self._state_dirty = True
        self._schedule_flush()

    def _on_event(self, event: Event) -> None:
        from briotui.kernel.runtime.events import ModelDelta, ModelFallback, ModelReply, ModelReset

        if isinstance(event, ModelDelta) and event.text:
            if event.task not in self._reply_start:
                self._reply_start[event.task] = len(self._task_text(event.task))
            self._add_text(event.task, sanitize(event.text))
        elif isinstance(event, ModelReset):  # the reply so far came from a failed provider
            self._drop_reply(event.task)
        elif isinstance(event, ModelFallback):
            self._add_text(
                event.task,
                f"\n\n<sub>{sanitize(event.from_provider)} failed ({sanitize(event.cause)});"
                f" answered by {sanitize(event.to_provider)}</sub>\n\n",
            )
        elif isinstance(event, ModelReply):  # one reply ended: keep the next apart
            self._reply_start.pop(event.task, None)
            if event.tool_calls:  # one compact line per tool call ("read calc.py:1-20")
                calls = (sanitize(c).replace("`", "'") for c in event.tool_calls)
                self._add_text(event.task, "\n\n" + "  \n".join(f"`→ {c}`" for c in calls))
            model = "/".join(sanitize(v) for v in (event.provider, event.model) if v)
            self._add_text(event.task, f"\n\n<sub>— {sanitize(event.agent)} · {model}</sub>\n\n")

    def _task_text(self, task_id: str) -> str:
        """Everything received for ``task_id`` itself (shown and pending)."""
        return "".join(self._text.get(task_id, ())) + "".join(self._pending_text.get(task_id, ()))

    def _drop_reply(self, task_id: str) -> None:
        """Forget the text of ``task_id``'s reply in progress and redraw its conversation."""
        start = self._reply_start.pop(task_id, None)
        if start is None:
            return
        kept = self._task_text(task_id)[:start]
        self._pending_text.pop(task_id, None)
        self._text[task_id] = [kept] if kept else []
        kept_all = tuple((tid, "".join(parts)) for tid, parts in self._text.items())
        self._broadcast(ModelText(task_id, "", reset=True, kept=kept_all))

    def _add_text(self, task_id: str, text: str) -> None:
        self._pending_text.setdefault(task_id, []).append(text)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Patches and events arrive in plain loop callbacks (outside the app's context),
        # so the frame timer is the loop's, and delivery hops into the app's queue.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FRAME_S, self.call_later, self._deliver)

    def _deliver(self) -> None:
        self._flush_scheduled = False
        if self._state_dirty:
            self._state_dirty = False
            self._note_finished_tasks()
            if self.attach_url is not None and not self.observing:
                self._answer_prompts()
            self._broadcast(StateUpdated(self._seq))
        pending, self._pending_text = self._pending_text, {}
        for task_id, parts in pending.items():
            text = "".join(parts)
            self._text.setdefault(task_id, []).append(text)
            self._broadcast(ModelText(task_id, text))

    def _broadcast(
        self, message: StateUpdated | ModelText | BuildUpdated | WorkingTreeChanged
    ) -> None:
        for screen in self.screen_stack:
            screen.post_message(message)

    def _note_finished_tasks(self) -> None:
        """Put the outcome of tasks this app did not submit at the end of their conversation."""
        for task_id, node in contract.tasks(self.mirror).items():
            status = node["status"]
            if status not in ("done", "failed", "cancelled") or node["parent"]:
                continue
            if task_id in self._reported or task_id in self._finished_seen:
                continue
            self._finished_seen.add(task_id)
            kind = str((node.get("outcome") or {}).get("kind", ""))
            self._add_text(
                task_id, outcome_text(status, "", "", kind, session=self._reviewable(task_id))
            )

    def transcript(self, task_id: str) -> str:
        """Everything shown so far for ``task_id`` (streamed text, or the kernel's transcript)."""
        prefix = task_id + "."
        text = "".join(
            part
            for tid, parts in self._text.items()
            if tid == task_id or tid.startswith(prefix)
            for part in parts
        )
        return text or self.workbench.transcript(task_id)

    # -- commands ------------------------------------------------------------------------

    @work(exit_on_error=False, group="submit", description="submit a request")
    async def submit_request(
        self, goal: str, agent: str | None = None, *, follow_up: bool = False
    ) -> None:
        """Hand ``goal`` to the kernel and select the new task.

        With ``follow_up`` (a "+" request) or the follow-up toggle on, the request
        continues the open session (:meth:`continue_target`) instead of a new one.
        """
        await self.kernel_started.wait()  # a request typed while briotui starts
        session_id = None
        if follow_up or self.follow_up:
            session_id = self.continue_target()
            if session_id is None:
                self.notify_no_open_session()
                return
        if self.building:
            self.notify("Agents are still building; the request waits for them.", timeout=4)
        try:
            task_id = await self.workbench.submit(goal, agent=agent, session_id=session_id)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        self._open_session = self._session_of(task_id) or self._open_session
        self._reported.add(task_id)
        self._deliver()
        screen = self._main_screen()
        if screen is not None:
            await screen.select_task(task_id)
        ended = await self.workbench.outcome(task_id)
        self._add_text(task_id, outcome_text(*ended, session=self._reviewable(task_id)))

    def continue_target(self) -> str | None:
        """The session a follow-up request continues: the one last opened in review,
        else the one this run's latest request worked in; None unless it is open."""
        sid = self._open_session
        if sid is None:
            return None
        view = contract.session(self.mirror, sid) or contract.session(
            self.workbench.state.get(""), sid
        )  # the patch may not be delivered yet
        return sid if view is not None and view["state"] == "open" else None

    def notify_no_open_session(self) -> None:
        """Say why a follow-up request cannot run: no session is open to continue."""
        self.notify(
            "There is no open session to continue. Review one first (ctrl+r, or ctrl+o for "
            "Sessions), or send the request without “+” to start a new session.",
            title="No open session",
            severity="warning",
            timeout=8,
        )

    def action_toggle_follow_up(self) -> None:
        """Toggle "continue the open session" for the next requests."""
        if not self.follow_up and self.continue_target() is None:
            self.notify_no_open_session()
            return
        self.follow_up = not self.follow_up
        if self.follow_up:
            self.notify(
                f"Requests now continue session {self.continue_target()} (ctrl+f: new "
                "sessions again).",
                title="Follow-up on",
            )
        else:
            self.notify("Each request starts a new session again.", title="Follow-up off")
        screen = self._main_screen()
        if screen is not None:
            screen.redraw()

    def _session_of(self, task_id: str) -> str | None:
        node = contract.task(self.mirror, task_id) or contract.task(
            self.workbench.state.get(""), task_id
        )
        return node["session"] if node else None

    def _reviewable(self, task_id: str) -> str | None:
        """The task's session if it is open with changes to review (an empty one is
        discarded: pointing at it would send the user to nothing)."""
        session_id = self._session_of(task_id)
        if session_id is None:
            return None
        view = contract.session(self.workbench.state.get(""), session_id) or contract.session(
            self.mirror, session_id
        )
        if view is None or view["state"] != "open" or not view["files"]:
            return None
        return session_id

    def _main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def _selected_session(self) -> str | None:
        screen = self._main_screen()
        if screen is None or screen.selected is None:
            return None
        node = contract.task(self.mirror, screen.selected)
        return node["session"] if node else None

    def action_review(self, session_id: str | None = None) -> None:
        """Open the review screen for the selected task's session (with no task
        selected: the open session last reviewed or made in this run)."""
        from briotui.ui.screens.review import ReviewScreen

        sid = session_id or self._selected_session() or self.continue_target()
        if sid is None:
            self.notify(
                "Select a task with a session first (or open Sessions: ctrl+o).",
                title="Nothing to review",
            )
            return
        self._open_session = sid
        self.push_screen(ReviewScreen(sid))

    def action_sessions(self) -> None:
        """Open sessions and history."""
        if self._starting():
            return
        from briotui.ui.screens.review import ReviewScreen
        from briotui.ui.screens.sessions import SessionsScreen

        def opened(session_id: str | None) -> None:
            if session_id:
                self._open_session = session_id
                self.push_screen(ReviewScreen(session_id))

        self.push_screen(SessionsScreen(), opened)

    def action_cancel_task(self) -> None:
        """Cancel the selected task."""
        screen = self._main_screen()
        if screen is None or screen.selected is None:
            self.notify("Select a running task first.", title="Nothing to cancel")
            return
        try:
            cancelling = self.workbench.cancel(screen.selected)
        except BrioError as exc:  # an observer (attach --nats) cannot cancel
            self.notify(exc.message, title=exc.title, severity="warning")
            return
        if cancelling:
            self.notify(f"Cancelling task {screen.selected}.")
        else:
            self.notify("That task is not running.", title="Nothing to cancel")

    def _restore(self) -> list[str]:
        """Show the stored tasks and sessions again; the interrupted tasks' ids."""
        assert self.kernel is not None
        try:
            return self.kernel.restore()
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="warning", timeout=10)
            return []

    @work(exit_on_error=False, group="restore", description="show the open sessions again")
    async def restore_sessions(self) -> None:
        """Publish the open sessions whole again (hunks, provenance, verification)."""
        assert self.kernel is not None
        await self.kernel.restore_sessions()

    def _offer_interrupted(self, interrupted: list[str]) -> None:
        """Offer to resume or discard the top-level tasks a quit or crash interrupted."""
        assert self.kernel is not None
        roots = [t for t in interrupted if "." not in t]
        if not roots:
            return
        goals = {str(t["id"]): str(t["goal"]) for t in self.kernel.stored_tasks()}
        tasks = [(t, goals.get(t, "")) for t in roots]

        def chosen(choice: str | None) -> None:
            for task_id in roots:
                if choice == "resume":
                    self.resume_task(task_id)
                elif choice == "discard":
                    self.discard_task(task_id)
            if choice not in ("resume", "discard"):
                self.notify(
                    f"{len(roots)} task(s) were interrupted when briotui last quit: "
                    f"{', '.join(roots[:3])}. Select one and press f5 to resume it or f8 "
                    "to discard it (or use the palette).",
                    title="Interrupted tasks",
                    timeout=15,
                )

        self.push_screen(InterruptedOffer(tasks), chosen)

    def _selected_root(self) -> str | None:
        screen = self._main_screen()
        if screen is None or screen.selected is None:
            return None
        return screen.selected.split(".", 1)[0]

    def action_resume_task(self, task_id: str | None = None) -> None:
        """Run the selected (interrupted) task's request again, as a new task."""
        tid = task_id or self._selected_root()
        if tid is None:
            self.notify("Select a task first.", title="Nothing to resume")
            return
        self.resume_task(tid)

    @work(exit_on_error=False, group="tasks", description="resume a task")
    async def resume_task(self, task_id: str) -> None:
        """Resume ``task_id`` through the kernel."""
        try:
            new_id = await self.workbench.kernel.resume(task_id, provider=self.workbench.provider)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        local = self.kernel  # None when attached to a served kernel
        journaled = local is not None and await asyncio.to_thread(local.has_journal, task_id)
        how = " (replaying what it had done from its journal)" if journaled else ""
        self.notify(f"Resumed task {task_id} as {new_id}{how}.", title="Resumed")

    def action_discard_task(self, task_id: str | None = None) -> None:
        """Drop the selected task's session (nothing of it reaches your files)."""
        tid = task_id or self._selected_root()
        if tid is None:
            self.notify("Select a task first.", title="Nothing to discard")
            return
        self.discard_task(tid)

    @work(exit_on_error=False, group="tasks", description="discard a task")
    async def discard_task(self, task_id: str) -> None:
        """Discard ``task_id`` through the kernel."""
        try:
            await self.workbench.kernel.discard_task(task_id)
        except BrioError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        self.notify(f"Task {task_id}'s session was rolled back.", title="Discarded")

    def action_help(self) -> None:
        """Show the keys."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(key_rows(self.screen)))

    def action_use_demo(self) -> None:
        """Switch to the scripted demo provider (clearly labelled)."""
        if self._starting():
            return
        self.demo = True
        self._provider = _demo_provider()
        self.provider_problem = ""
        self.workbench.use_provider(self._provider, demo=True)
        self._broadcast(BuildUpdated(dict(self.build_phases), not self.building))
        self.notify("Requests now get canned replies from the scripted demo.", title="Demo mode")

    def action_build(self) -> None:
        """Build missing agents in the background."""
        if self._starting():
            return
        self.build_agents()

    def _open_router(self) -> None:
        """Route model requests by the current settings (only the user's until trusted)."""
        from briotui.kernel.llm.router import open_router

        try:
            self._provider = open_router(self.settings)
            self.provider_problem = ""
        except ConfigError as exc:
            self._provider = None
            self.provider_problem = f"{exc.title}: {exc.message}"

    def action_trust_project(self) -> None:
        """Show what the project's config asks for; trusting it applies those settings."""
        from briotui.kernel.llm.config import project_key_refusals

        settings = self.settings  # built once; trusting records exactly what it shows
        if settings.request.empty:
            self.notify("This project's config asks for nothing that needs trust.")
            return
        from briotui.kernel.trust import TrustStore

        store = TrustStore(self.config_dir)
        try:
            changed = not settings.trusted and store.digest(self.project) is not None
        except ConfigError as exc:  # trust.json is broken: say so, never a traceback
            self.notify(exc.message, title=exc.title, severity="error", timeout=10)
            return
        dialog = TrustDialog(
            self.project.name, settings.request, project_key_refusals(settings), changed=changed
        )

        def decided(decision: TrustDecision | None) -> None:
            if decision != "trust":
                if not settings.trusted:
                    self.notify(
                        "The project's providers, shell rules, grants, test command and "
                        "agents stay ignored. Palette (ctrl+p) → “Trust this project” asks "
                        "again.",
                        title="Not trusted",
                        timeout=6,
                    )
                return
            try:
                store.trust(self.project, settings.request)  # exactly what the dialog showed
            except ConfigError as exc:
                self.notify(exc.message, title=exc.title, severity="error", timeout=10)
                return
            except OSError as exc:
                self.notify(
                    f"{store.path} could not be written ({exc.strerror or exc}); the project "
                    "stays untrusted. Check that the directory is writable, then trust again "
                    "(palette → “Trust this project”).",
                    title="Trust not saved",
                    severity="error",
                    timeout=10,
                )
                return
            self.apply_settings(replace(settings, trusted=True))
            self.notify("The project's settings now apply.", title="Project trusted")

        self.push_screen(dialog, decided)

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings (e.g. after trusting): kernel, provider chain, provider check."""
        self.settings = settings
        if self.kernel is not None:
            self.kernel.reload_config(settings)
        if not self._provider_given and self._workbench is not None:
            old = self._provider
            self._open_router()
            self.workbench.use_provider(self._provider)
            close = getattr(old, "aclose", None)
            if close is not None:
                self.run_worker(close(), exit_on_error=False)
            if not self.provider_problem:
                self.check_provider()
        if self._build_on_start and self._missing_agents():
            self.build_agents()
        self._broadcast(BuildUpdated(dict(self.build_phases), not self.building))

    async def action_quit(self) -> None:
        """Quit, asking first while tasks are running."""
        attached = self._workbench is None or self.workbench.attached
        running = self.workbench.running() if not attached else []  # attached: they go on
        if not running:
            self.exit(0)
            return

        def answered(quit_now: bool | None) -> None:
            if quit_now:
                # The kernel stops them as it closes (on unmount) and marks them
                # interrupted, so the next start offers to resume them. Cancelling them
                # here would record them as cancelled by the user: never offered again.
                self.exit(0)

        self.push_screen(ConfirmQuit(len(running)), answered)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Review session", "Review the selected task's session", self.action_review
        )
        yield SystemCommand("Sessions and history", "Past tasks and sessions", self.action_sessions)
        revise = getattr(screen, "action_revise", None)  # the review screen's
        if revise is not None:
            yield SystemCommand(
                "Revise session",
                "Run the Coder again with the rejected hunks and their reasons",
                revise,
            )
        conflicts = getattr(screen, "conflict_commands", None)  # the review screen's too
        if conflicts is not None:
            yield from conflicts()
        yield SystemCommand("Cancel task", "Stop the selected task", self.action_cancel_task)
        yield SystemCommand(
            "Resume task",
            "Resume the selected (interrupted) task: what it had done is replayed from its journal",
            self.action_resume_task,
        )
        yield SystemCommand(
            "Discard task", "Roll back the selected task's session", self.action_discard_task
        )
        yield SystemCommand("New request", "Focus the request input", self._focus_request)
        yield SystemCommand(
            "Continue the open session (toggle)",
            "Requests continue the session last reviewed instead of starting a new one "
            "(“+ request” does it once; ctrl+f)",
            self.action_toggle_follow_up,
        )
        yield SystemCommand("Build agents", "Build missing agent components", self.action_build)
        yield SystemCommand(
            "Use the scripted demo",
            "Canned replies instead of a model (labelled DEMO)",
            self.action_use_demo,
        )
        yield SystemCommand(
            "Trust this project",
            "Review what the project's config asks for (providers, shell, grants) and trust it",
            self.action_trust_project,
        )
        yield SystemCommand("Help: keys", "Every key and its binding id", self.action_help)
        for name in sorted(self.available_themes):
            if name.startswith("brio-") or name == self.theme:
                yield SystemCommand(
                    f"Theme: {name}", f"Switch to the {name} theme", self._theme_setter(name)
                )

    def _theme_setter(self, name: str) -> Any:
        def set_theme() -> None:
            self.theme = name

        return set_theme

    def _focus_request(self) -> None:
        screen = self._main_screen()
        if screen is not None and self.screen is screen:
            screen.action_focus_request()

    # -- capability prompts ----------------------------------------------------------------

    async def ask_user(self, agent: str, question: str, *, prompt_id: str = "") -> str | None:
        """The kernel's question to the user (one modal at a time); None for no answer.

        ``prompt_id`` names a served kernel's prompt (withdrawn when answered elsewhere).
        """
        async with self._prompt_lock:
            if not self.is_running:
                return None
            shown: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

            def answered(result: str | None) -> None:
                if not shown.done():
                    shown.set_result(result)

            dialog = AskUser(agent, question)
            if prompt_id:
                self._prompt_screens[prompt_id] = dialog
            self.call_later(self.push_screen, dialog, answered)
            try:
                return await shown
            finally:
                self._prompt_screens.pop(prompt_id, None)

    async def ask_capability(self, request: CapabilityRequest, *, prompt_id: str = "") -> Answer:
        """The kernel's prompt: one modal at a time; identical requests share one answer.

        ``prompt_id`` names a served kernel's prompt (withdrawn when answered elsewhere).
        """
        kind = request.capability + (" unsandboxed" if request.unsandboxed else "")
        key = (request.agent, kind, request.target, request.session_id)
        if key in self._asking:
            return await asyncio.shield(self._asking[key])
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            async with self._prompt_lock:
                if not self.is_running:
                    answer: Answer = "deny"
                else:
                    shown: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

                    def answered(result: Answer | None) -> None:
                        if not shown.done():
                            shown.set_result(result or "deny")

                    queued = max(0, len(self._asking) - 1)
                    prompt = CapabilityPrompt(request, queued=queued)
                    if prompt_id:
                        self._prompt_screens[prompt_id] = prompt
                    self.call_later(self.push_screen, prompt, answered)
                    answer = await shown
            future.set_result(answer)
            if not prompt_id or prompt_id in contract.prompts(self.mirror):  # not withdrawn
                self._record_decision(request, answer)
            return answer
        finally:
            self._asking.pop(key, None)
            self._prompt_screens.pop(prompt_id, None)

    def _record_decision(self, request: CapabilityRequest, answer: Answer) -> None:
        verdict = {
            "once": "allowed once",
            "session": "allowed for this session",
            "project": "always allowed in this project",
            "deny": "denied",
        }[answer]
        line = (
            f"\n\n> 🔐 **{sanitize(request.agent)}** asked to {request.capability} "
            f"`{sanitize(request.target)}`: {verdict}.\n\n"
        )
        if request.task_id:
            self._add_text(request.task_id, line)
        for screen in self.screen_stack:
            screen.post_message(CapabilityDecided(request, answer))

    # -- background work ---------------------------------------------------------------------

    def _missing_agents(self) -> list[str]:
        """Agents to build: not built, and not remembered as failing unchanged (building
        one of those again would only fail again; :meth:`_known_failures` says why)."""
        assert self.kernel is not None
        found = self.kernel.discovery()
        builder = self.kernel.builder
        return [
            s.name
            for s in found.agents.values()
            if not builder.is_built(s) and builder.failure(s) is None
        ]

    def _known_failures(self) -> None:
        """Say once which agents cannot be built, and why (without building them again)."""
        assert self.kernel is not None
        builder = self.kernel.builder
        for spec in self.kernel.discovery().agents.values():
            failure = None if builder.is_built(spec) else builder.failure(spec)
            if failure is not None:
                self.notify(
                    failure.message[:400],
                    title=f"{spec.name}: {failure.title}",
                    severity="warning",
                    timeout=10,
                )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a notification, as plain text whatever the caller asks: messages quote
        config tables (``[tests] command``) and paths that markup would eat or misread.
        """
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def banner_lines(self) -> list[str]:
        """What the main screen's banner says (empty: no banner)."""
        lines: list[str] = []
        if self.building or any(p == "FAILED" for p in self.build_phases.values()):
            done = sum(1 for p in self.build_phases.values() if p == "built")
            parts = " · ".join(f"{n} {p}" for n, p in sorted(self.build_phases.items()))
            head = "Building agents in the background" if self.building else "Agent build finished"
            lines.append(f"⚙ {head} ({done}/{len(self.build_phases)}): {parts}")
        if self.provider_problem and not self.demo:
            lines.append("⚠ No model provider can answer: " + sanitize(self.provider_problem)[:200])
            lines.append(
                "  Set ANTHROPIC_API_KEY or OPENAI_API_KEY, or start Ollama (OLLAMA_HOST), "
                "then restart — or open the palette (ctrl+p) → “Use the scripted demo”."
            )
        if self.demo:
            lines.append(
                "DEMO: model replies are canned by the scripted demo provider, not a real model."
            )
        return lines

    @work(exclusive=True, exit_on_error=False, group="build", description="build agents")
    async def build_agents(self) -> None:
        """Build agents off the UI thread; progress goes to the banner."""
        assert self.kernel is not None
        missing = self._missing_agents()
        if not missing:  # all built (or remembered as failing): nothing to show
            self.build_phases = {}
            self._broadcast(BuildUpdated({}, True))
            return
        self.building = True
        self.build_phases = {name: "waiting" for name in missing}
        self._broadcast(BuildUpdated(dict(self.build_phases), False))

        def on_event(event: BuildEvent) -> None:
            if event.agent not in self.build_phases:
                return
            self.build_phases[event.agent] = BUILD_LABEL.get(event.phase, event.phase)
            self.call_from_thread(self._broadcast, BuildUpdated(dict(self.build_phases), False))

        try:
            results = await self.kernel.build_agents(missing, on_event=on_event)
        finally:
            self.building = False
        failed = [r for r in results if r.status == "failed"]
        for result in failed:
            if result.error is not None:
                self.notify(
                    result.error.message,
                    title=f"{result.agent}: {result.error.title}",
                    severity="error",
                )
        if not failed:
            self.build_phases = {}
        self._broadcast(BuildUpdated(dict(self.build_phases), True))

    @work(exclusive=True, exit_on_error=False, group="watch", description="watch the project")
    async def watch_project(self) -> None:
        """Keep the project's live base current, so new sessions start in milliseconds."""
        assert self.kernel is not None
        await self.kernel.watch_project(on_change=self._working_tree_changed)

    @work(exclusive=True, exit_on_error=False, group="provider", description="check the provider")
    async def check_provider(self) -> None:
        """Probe the configured providers; say what to set when none answers."""
        from briotui.kernel.llm.config import models_config
        from briotui.kernel.llm.health import check_providers

        try:
            config = models_config(self.settings)  # the project's providers only once trusted
            statuses = await check_providers(config, timeout_s=3.0)
        except BrioError as exc:
            self.provider_problem = f"{exc.title}: {exc.message}"
        else:
            chain = [s for s in statuses if s.in_chain]
            if chain and not any(s.ok for s in chain):
                self.provider_problem = "; ".join(f"{s.name}: {s.fix or s.detail}" for s in chain)
        self._broadcast(BuildUpdated(dict(self.build_phases), not self.building))

    def _working_tree_changed(self, changed: int) -> None:
        """The kernel's watcher says how many paths changed on disk (on the app's loop)."""
        if changed != self._tree_changed:
            self._tree_changed = changed
            self._broadcast(WorkingTreeChanged(changed))


def make_app(
    project: Path | str = ".",
    *,
    provider: Provider | None = None,
    demo: bool = False,
    config_dir: Path | None = None,
    build: bool = True,
    settings: Settings | None = None,
    attach: str | None = None,
    observe: Callable[[], Awaitable[RemoteKernel]] | None = None,
) -> BrioApp:
    """The app for ``project``: used by the CLI and the tests alike.

    Args:
        project: The project directory.
        provider: Where model requests go (tests pass a ScriptedProvider); None reads
            the configured providers.
        demo: Use the clearly labelled scripted demo instead of a model.
        config_dir: The user config dir (themes, keymap, the saved theme).
        build: Build missing agents in the background at start.
        settings: The settings, built once by the caller (the CLI's
            :func:`~briotui.kernel.settings.load_settings`; tests inject their own) and
            handed to the kernel too; None reads them on mount.
        attach: Drive the kernel ``briotui serve`` serves at this URL instead of a
            local one (``briotui attach``).
        observe: With ``attach``: how to join instead (``briotui attach --nats``: a
            read-only kernel following the project's state over NATS).
    """
    return BrioApp(
        project,
        provider=provider,
        demo=demo,
        config_dir=config_dir,
        build=build,
        settings=settings,
        attach=attach,
        observe=observe,
    )


def _demo_provider() -> Provider:
    from briotui.ui.demo import demo_provider

    return demo_provider()


if TYPE_CHECKING:

    def _implements_app_host(app: BrioApp) -> AppHost:
        return app  # mypy checks here that the app implements the screens' interface

"""What the screens need from the app: a narrow interface, so screens never import the app.

The app (:class:`~briotui.ui.app.BrioApp`) imports every screen to push it; a screen that
imported the app back would make an import cycle. Screens reach the app through
:class:`AppHost` instead, which the app implements (``ui/app.py`` has the static check).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from textual.app import App
    from textual.worker import Worker

    from briotui.ui.workbench import Workbench


class AppHost(Protocol):
    """The app as the screens use it."""

    project: Path
    """The project directory."""
    demo: bool
    """The app runs on the demo provider."""
    mirror: dict[str, Any]
    """The UI's copy of the kernel's state tree (read through the contract)."""

    @property
    def workbench(self) -> Workbench:
        """The kernel as the UI uses it."""
        ...

    def banner_lines(self) -> list[str]:
        """The lines of the welcome banner."""
        ...

    def transcript(self, task_id: str) -> str:
        """Everything shown so far for a task."""
        ...

    follow_up: bool
    """Requests continue the open session (the toggle)."""

    def submit_request(
        self, goal: str, agent: str | None = None, *, follow_up: bool = False
    ) -> Worker[None]:
        """Hand a goal to the kernel (a worker); ``follow_up``: continue the open session."""
        ...

    def continue_target(self) -> str | None:
        """The open session a follow-up request continues, or None."""
        ...

    def notify_no_open_session(self) -> None:
        """Say that no session is open to continue."""
        ...

    def resume_task(self, task_id: str) -> Worker[None]:
        """Resume an interrupted task through the kernel (a worker)."""
        ...


def host_of(app: App[Any]) -> AppHost:
    """``app`` as an :class:`AppHost` (screens run only inside the briotui app)."""
    return cast("AppHost", app)


__all__ = ["AppHost", "host_of"]

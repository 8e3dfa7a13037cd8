"""Messages the app posts to its screens: kernel state changes and streamed model text.

The app bridges the kernel once: state patches and runtime events arrive on the loop,
are folded into a mirror of the state tree and a per-task text buffer, and leave as
these messages at a bounded rate. High-rate ones can replace a pending copy of
themselves, so a burst of patches costs one repaint.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from briotui.kernel.caps.model import Answer, CapabilityRequest


@dataclass
class StateUpdated(Message):
    """The mirrored state tree changed; read ``app.tree`` to redraw."""

    seq: int
    """The sequence number of the last patch folded in."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StateUpdated)


@dataclass
class ModelText(Message):
    """More streamed (sanitized) model text for a task, batched over a frame.

    With ``reset``, the reply in progress was dropped (its provider failed mid-stream
    and another one answers): redraw the conversation from ``kept``, the text of every
    task as it stands after the drop (task id, text), in arrival order.
    """

    task: str
    text: str
    reset: bool = False
    kept: tuple[tuple[str, str], ...] = ()


@dataclass
class CapabilityDecided(Message):
    """The user answered a capability prompt (shown inline in the conversation)."""

    request: CapabilityRequest
    answer: Answer


@dataclass
class BuildUpdated(Message):
    """Agent build progress: agent name -> phase, and whether the build finished."""

    phases: dict[str, str]
    done: bool

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BuildUpdated) and not message.done


@dataclass
class WorkingTreeChanged(Message):
    """Whether files changed in the working tree since the live base was taken."""

    changed: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WorkingTreeChanged)

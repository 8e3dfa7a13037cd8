"""The typed shapes of the kernel's state tree: what the kernel publishes and the UI reads.

The :class:`~briotui.kernel.state.StateTree` is a generic JSON-patch engine; this module
is the one place that says what lives in it. Every top-level key has a ``TypedDict``
shape (:class:`StateView`), the kernel builds every value it publishes with the
constructor functions here (:func:`session_view`, :func:`agent_view`, ...), and front
ends read through the typed accessors (:func:`sessions`, :func:`tasks`, ...), so no
module guesses a dict key.

:func:`validate` checks one value against the shape at its path (for example
``/sessions/s-1/verified``) and :func:`validate_tree` a whole tree; both raise
:class:`~briotui.kernel.errors.StateShapeError` naming the path and the field. The
shapes carry a version, :data:`STATE_VERSION`, published at ``/version``: bump it when a
shape changes in a way an older front end would misread.

One piece: it is the one contract of the state tree (every shape, its constructors and
its validator), which is the point of having it.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import (
    Any,
    Final,
    Literal,
    NotRequired,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from briotui.kernel.errors import StateShapeError

STATE_VERSION: Final = 1
"""The version of the shapes below, published at ``/version``."""

TaskStatusName = Literal["pending", "running", "waiting", "done", "failed", "cancelled"]
Decision = Literal["accepted", "rejected", "pending"]


# -- /tasks --------------------------------------------------------------------------


class ProgressView(TypedDict):
    """How far a task is: 0 to 100 and a note."""

    percent: int
    note: str


class MilestoneView(TypedDict):
    """A milestone a task reached, and when (epoch seconds)."""

    name: str
    at: float


class TaskUsageView(TypedDict):
    """What a task spent."""

    input_tokens: int
    output_tokens: int
    cost_usd: float
    fuel: int
    wall_ms: float


class ErrorView(TypedDict):
    """A kernel error as published: its kind, title and message (and, for some, more)."""

    kind: str
    title: str
    message: str
    agent: NotRequired[str]
    file: NotRequired[str]
    conflicts: NotRequired[list[dict[str, Any]]]


class OutcomeView(TypedDict):
    """How a task ended."""

    summary: NotRequired[str]
    error: NotRequired[ErrorView]
    kind: NotRequired[str]
    """How a request ended, for a top-level task: verified, done, tests-failed, partial,
    failed (nothing was changed), error or cancelled."""


class TaskView(TypedDict):
    """One task under ``/tasks/<id>``."""

    id: str
    title: str
    agent: str
    parent: str | None
    status: TaskStatusName
    session: str | None
    progress: ProgressView
    milestones: list[MilestoneView]
    usage: TaskUsageView
    children: list[str]
    created_at: float
    outcome: NotRequired[OutcomeView]
    worker: NotRequired[str]
    """The worker (``briotui worker --name``) the task's agent runs or ran on; absent
    for a run on the kernel's own machine."""


# -- /agents -------------------------------------------------------------------------


class AgentView(TypedDict):
    """A live agent instance under ``/agents/<instance>`` (gone once it stops)."""

    agent: str
    task: str
    state: str
    detail: str
    fuel_used: int
    fuel_limit: int
    memory_bytes: int
    memory_limit: int
    peak_memory_bytes: int


# -- /sessions -----------------------------------------------------------------------


class HunkView(TypedDict):
    """One hunk of a session's diff, its decision and who wrote it."""

    id: str
    kind: str
    header: str
    decision: Decision
    reason: str
    agent: str
    model: str


class FileView(TypedDict):
    """One changed file of a session."""

    path: str
    old_path: str
    status: str
    hunks: list[HunkView]


class RegionView(TypedDict):
    """One conflicting region: the base text and both sides, and whether it is resolved."""

    base: str
    ours: str
    theirs: str
    index: int
    """Its number among the regions of its file, from 1 (``sessions resolve --region``)."""
    resolved: bool
    resolution: str
    """How it was resolved: ours, theirs, both or edited ("" while unresolved)."""
    whole: bool
    """The conflict is the whole file (a link, binary, or deleted on one side)."""
    line: int
    """Where this session's side starts in the file (0-based) as the merge left it, kept
    up to date as other regions are resolved; -1 when unknown."""
    above: NotRequired[str]
    """The line just above the region as the merge left it (how an empty side is found)."""
    resolved_by: NotRequired[str]
    """Who resolved it (e.g. ``user (cli)``)."""
    resolved_at: NotRequired[float]
    """When (epoch seconds)."""


class ConflictView(TypedDict):
    """A file a branch could not merge into the session, and where."""

    path: str
    session: str
    regions: list[RegionView]


class FindingView(TypedDict):
    """One Reviewer finding, on a hunk (``hunk_id``, a :class:`HunkView` id) or on the whole
    change ("")."""

    hunk_id: str
    severity: str
    message: str
    suggestion: NotRequired[str]


class ReviewView(TypedDict):
    """The Reviewer's verdict and findings."""

    verdict: str
    findings: list[FindingView]


class VerificationView(TypedDict):
    """The latest run of the project's test command in a session (the full output tail
    is in the store: ``briotui sessions show``)."""

    command: list[str]
    exit_code: int
    passed: bool
    duration_ms: int
    failed: list[str]
    """The names of the failing tests found in the output (pytest, unittest)."""
    tail: str
    """The last lines of the output."""
    truncated: bool
    """Whether the stored output lost its beginning."""


class SessionView(TypedDict):
    """An open session under ``/sessions/<id>``."""

    id: str
    task: str
    label: str
    state: str
    verified: bool | None
    """None until the project's tests ran in the session."""
    files: list[FileView]
    conflicts: list[ConflictView]
    review: ReviewView | None
    tests: NotRequired[VerificationView | None]
    """The latest test run in the session; absent or None before any."""


# -- /usage, /provider, /sandbox -----------------------------------------------------


class TokenUsageView(TypedDict):
    """Tokens and cost."""

    input_tokens: int
    output_tokens: int
    cost_usd: float


class UsageView(TypedDict):
    """What the project's model replies cost so far, in total and per provider."""

    input_tokens: int
    output_tokens: int
    cost_usd: float
    by_provider: dict[str, TokenUsageView]


class ProviderView(TypedDict):
    """The model provider in use: whether it can answer, and the one it fell back from."""

    name: str
    model: str
    ok: bool
    detail: str
    fallback_from: str


class SandboxView(TypedDict):
    """How agents' commands run here (and a broken setting's problem, if any)."""

    sandboxed: bool
    kind: str
    detail: str
    unsandboxed: str
    confinement: list[str]
    problem: NotRequired[str]


# -- /prompts (questions waiting for a user; published by a served kernel) -----------


PromptKind = Literal["capability", "question"]


class PromptView(TypedDict):
    """A question waiting for a user under ``/prompts/<id>``: a capability prompt (an
    agent's call outside its grants) or an agent's clarifying question. Any attached
    client may answer it; the first answer wins and the prompt is removed."""

    id: str
    kind: PromptKind
    agent: str
    task: str
    session: str
    capability: str
    """What the agent asks to do (``write``, ``shell``...); "" for a question."""
    target: str
    """The path, the command line...; for a question, the question."""
    reason: str
    unsandboxed: bool
    at: float
    """When it was asked (epoch seconds)."""


class StateView(TypedDict):
    """The whole state tree."""

    version: int
    tasks: dict[str, TaskView]
    agents: dict[str, AgentView]
    sessions: dict[str, SessionView]
    usage: UsageView
    provider: ProviderView
    sandbox: SandboxView
    prompts: NotRequired[dict[str, PromptView]]
    """Absent until a served kernel asks its first question."""


# -- constructors (the kernel publishes only these) ----------------------------------


def agent_view(
    agent: str,
    *,
    task: str = "",
    state: str,
    detail: str = "",
    fuel_used: int = 0,
    fuel_limit: int = 0,
    memory_bytes: int = 0,
    memory_limit: int = 0,
    peak_memory_bytes: int = 0,
) -> AgentView:
    """``/agents/<instance>``."""
    return AgentView(
        agent=agent,
        task=task,
        state=state,
        detail=detail,
        fuel_used=int(fuel_used),
        fuel_limit=int(fuel_limit),
        memory_bytes=int(memory_bytes),
        memory_limit=int(memory_limit),
        peak_memory_bytes=int(peak_memory_bytes),
    )


def hunk_view(
    hunk_id: str,
    *,
    kind: str,
    header: str,
    decision: Decision = "pending",
    reason: str = "",
    agent: str = "",
    model: str = "",
) -> HunkView:
    """One hunk of ``/sessions/<id>/files/<n>/hunks``."""
    return HunkView(
        id=hunk_id,
        kind=kind,
        header=header,
        decision=decision,
        reason=reason,
        agent=agent,
        model=model,
    )


def file_view(path: str, *, status: str, hunks: Iterable[HunkView], old_path: str = "") -> FileView:
    """One file of ``/sessions/<id>/files``."""
    return FileView(path=path, old_path=old_path or path, status=status, hunks=list(hunks))


def conflict_views(session: str, files: Iterable[Mapping[str, Any]]) -> list[ConflictView]:
    """The conflicts of a branch (``session``) from a merge's per-file ``path``/``regions``
    (regions numbered from 1 within each file; see :func:`number_regions`)."""
    return number_regions(
        [
            ConflictView(
                path=str(f.get("path", "")),
                session=session,
                regions=[_region_view(r) for r in f.get("regions") or ()],
            )
            for f in files
        ]
    )


def _region_view(r: Mapping[str, Any]) -> RegionView:
    line = r.get("line")
    view = RegionView(
        base=str(r.get("base") or ""),
        ours=str(r.get("ours") or ""),
        theirs=str(r.get("theirs") or ""),
        index=0,
        resolved=bool(r.get("resolved")),
        resolution=str(r.get("resolution") or "") if r.get("resolved") else "",
        whole=bool(r.get("whole")),
        line=line if isinstance(line, int) and not isinstance(line, bool) else -1,
    )
    if isinstance(r.get("above"), str):
        view["above"] = r["above"]
    if view["resolved"]:
        view["resolved_by"] = str(r.get("resolved_by") or "")
        view["resolved_at"] = float(r.get("resolved_at") or 0.0)
    return view


def number_regions(views: list[ConflictView]) -> list[ConflictView]:
    """Number the regions of each file from 1, in order, across the views of the same
    path (two branches may conflict in one file); returns ``views``."""
    seen: dict[str, int] = {}
    for view in views:
        for region in view["regions"]:
            seen[view["path"]] = region["index"] = seen.get(view["path"], 0) + 1
    return views


def unresolved(views: Iterable[ConflictView]) -> int:
    """How many conflicting regions are left to resolve."""
    return sum(1 for view in views for region in view["regions"] if not region["resolved"])


def review_view(review: Mapping[str, Any]) -> ReviewView:
    """``/sessions/<id>/review`` from the Reviewer's data (unknown keys are dropped)."""
    findings: list[FindingView] = []
    for raw in review.get("findings") or ():
        if not isinstance(raw, Mapping):
            continue
        hunk = str(raw.get("hunk_id", raw.get("hunk", "")) or "")
        finding = FindingView(
            # the Reviewer names hunks as the diff tags them (``#h-<id>``); the id is <id>
            hunk_id=hunk.removeprefix("#").removeprefix("h-"),
            severity=str(raw.get("severity", "info")),
            message=str(raw.get("message", "")),
        )
        if raw.get("suggestion"):
            finding["suggestion"] = str(raw["suggestion"])
        findings.append(finding)
    return ReviewView(verdict=str(review.get("verdict", "none")), findings=findings)


def session_view(
    session_id: str,
    *,
    task: str = "",
    label: str = "",
    state: str = "open",
    verified: bool | None = None,
    files: Iterable[FileView] = (),
    conflicts: Iterable[ConflictView] = (),
    review: ReviewView | None = None,
    tests: VerificationView | None = None,
) -> SessionView:
    """``/sessions/<id>``."""
    view = SessionView(
        id=session_id,
        task=task[:200],
        label=label,
        state=state,
        verified=verified,
        files=list(files),
        conflicts=list(conflicts),
        review=review,
    )
    if tests is not None:
        view["tests"] = tests
    return view


TEST_TAIL_LINES = 40
"""How many of a test run's last output lines the state carries."""

_FAILED_TEST = re.compile(
    r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$"  # pytest's short summary
    r"|^(?:FAIL|ERROR): (\S+ \([^)]*\))"  # unittest
    r"|^(\S+::\S+) (?:FAILED|ERROR)\b",  # pytest -v
    re.MULTILINE,
)


def failed_tests(output: str) -> list[str]:
    """The names of the failing tests a pytest or unittest output lists, in order."""
    found: list[str] = []
    for match in _FAILED_TEST.finditer(output):
        name = next(g for g in match.groups() if g)
        if name not in found:
            found.append(name)
    return found[:100]


def verification_view(
    command: Sequence[str],
    *,
    exit_code: int,
    duration_ms: int = 0,
    output: str = "",
    truncated: bool = False,
) -> VerificationView:
    """``/sessions/<id>/tests`` from a stored run of the test command."""
    lines = output.rstrip("\n").splitlines()
    return VerificationView(
        command=list(command),
        exit_code=exit_code,
        passed=exit_code == 0,
        duration_ms=duration_ms,
        failed=failed_tests(output),
        tail="\n".join(lines[-TEST_TAIL_LINES:])[-8000:],
        truncated=truncated or len(lines) > TEST_TAIL_LINES,
    )


def usage_view() -> UsageView:
    """``/usage`` before any reply."""
    return UsageView(input_tokens=0, output_tokens=0, cost_usd=0.0, by_provider={})


def provider_view(
    name: str, *, model: str = "", ok: bool = True, detail: str = "", fallback_from: str = ""
) -> ProviderView:
    """``/provider``."""
    return ProviderView(name=name, model=model, ok=ok, detail=detail, fallback_from=fallback_from)


def no_provider() -> ProviderView:
    """``/provider`` while no model provider is configured."""
    return provider_view("none", ok=False, detail="No model provider is configured.")


def sandbox_view(status: Mapping[str, Any], *, problem: str = "") -> SandboxView:
    """``/sandbox`` from a sandbox status's JSON form (and a settings problem)."""
    view = SandboxView(
        sandboxed=bool(status["sandboxed"]),
        kind=str(status["kind"]),
        detail=str(status["detail"]),
        unsandboxed=str(status["unsandboxed"]),
        confinement=[str(c) for c in status.get("confinement") or ()],
    )
    if problem:
        view["problem"] = problem
    return view


def error_view(error: Mapping[str, Any]) -> ErrorView:
    """``/tasks/<id>/outcome/error`` from an error's ``to_dict()``."""
    view = ErrorView(
        kind=str(error.get("kind", "")),
        title=str(error.get("title", "")),
        message=str(error.get("message", "")),
    )
    for key in ("agent", "file"):
        if key in error:
            view[key] = str(error[key])
    if "conflicts" in error:
        view["conflicts"] = list(error["conflicts"])
    return view


def prompt_view(
    prompt_id: str,
    *,
    kind: PromptKind,
    agent: str,
    target: str,
    task: str = "",
    session: str = "",
    capability: str = "",
    reason: str = "",
    unsandboxed: bool = False,
    at: float = 0.0,
) -> PromptView:
    """``/prompts/<id>``."""
    return PromptView(
        id=prompt_id,
        kind=kind,
        agent=agent,
        task=task,
        session=session,
        capability=capability,
        target=target,
        reason=reason,
        unsandboxed=bool(unsandboxed),
        at=float(at),
    )


def initial_tree(sandbox: SandboxView) -> StateView:
    """The tree a kernel starts with."""
    return StateView(
        version=STATE_VERSION,
        tasks={},
        agents={},
        sessions={},
        usage=usage_view(),
        provider=provider_view("", ok=False),
        sandbox=sandbox,
    )


# -- typed accessors (front ends read only these) ------------------------------------


def tasks(tree: Mapping[str, Any]) -> dict[str, TaskView]:
    """``/tasks``."""
    found: dict[str, TaskView] = tree.get("tasks") or {}
    return found


def task(tree: Mapping[str, Any], task_id: str | None) -> TaskView | None:
    """``/tasks/<id>``, or None."""
    return tasks(tree).get(task_id or "")


def agents(tree: Mapping[str, Any]) -> dict[str, AgentView]:
    """``/agents``."""
    found: dict[str, AgentView] = tree.get("agents") or {}
    return found


def sessions(tree: Mapping[str, Any]) -> dict[str, SessionView]:
    """``/sessions``."""
    found: dict[str, SessionView] = tree.get("sessions") or {}
    return found


def session(tree: Mapping[str, Any], session_id: str | None) -> SessionView | None:
    """``/sessions/<id>``, or None."""
    return sessions(tree).get(session_id or "")


def hunks(view: SessionView) -> list[HunkView]:
    """Every hunk of a session, in file order."""
    return [h for f in view.get("files") or () for h in f.get("hunks") or ()]


def usage(tree: Mapping[str, Any]) -> UsageView:
    """``/usage``."""
    found: UsageView | None = tree.get("usage")
    return found or usage_view()


def provider(tree: Mapping[str, Any]) -> ProviderView:
    """``/provider``."""
    found: ProviderView | None = tree.get("provider")
    return found or no_provider()


def prompts(tree: Mapping[str, Any]) -> dict[str, PromptView]:
    """``/prompts``: the questions waiting for an answer (oldest first)."""
    found: dict[str, PromptView] = tree.get("prompts") or {}
    return dict(sorted(found.items(), key=lambda item: item[1].get("at", 0.0)))


def sandbox(tree: Mapping[str, Any]) -> SandboxView | None:
    """``/sandbox``, or None before the kernel published it."""
    found: SandboxView | None = tree.get("sandbox")
    return found or None


# -- validation ----------------------------------------------------------------------


def _tokens(path: str | Sequence[str | int]) -> list[str]:
    if isinstance(path, str):
        if path in ("", "/"):
            return []
        return [t.replace("~1", "/").replace("~0", "~") for t in path.lstrip("/").split("/")]
    return [str(t) for t in path]


def _pointer(tokens: Sequence[str]) -> str:
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)


_FIELDS: dict[Any, tuple[dict[str, Any], frozenset[str]]] = {}


def _fields(kind: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """A TypedDict's field types and its required fields.

    ``NotRequired`` is read from the annotations themselves: with postponed
    annotations, ``__required_keys__`` counts every field as required.
    """
    if kind not in _FIELDS:
        hints = get_type_hints(kind, include_extras=True)
        types_: dict[str, Any] = {}
        required: set[str] = set()
        for name, hint in hints.items():
            if get_origin(hint) is NotRequired:
                types_[name] = get_args(hint)[0]
            else:
                types_[name] = hint
                required.add(name)
        _FIELDS[kind] = (types_, frozenset(required))
    return _FIELDS[kind]


def _hints(kind: Any) -> dict[str, Any]:
    return _fields(kind)[0]


def shape_at(path: str | Sequence[str | int]) -> Any:
    """The type of the value at ``path`` (``/sessions/s-1/files/0``; ``-`` for a new item).

    Raises:
        StateShapeError: no shape describes that path.
    """
    kind: Any = StateView
    walked: list[str] = []
    for token in _tokens(path):
        walked.append(token)
        kind = _strip_none(kind)
        origin = get_origin(kind)
        if is_typeddict(kind):
            fields = _hints(kind)
            if token not in fields:
                raise StateShapeError(
                    f"The state contract has no field {token!r} at {_pointer(walked[:-1])}.",
                    path=_pointer(walked),
                )
            kind = fields[token]
        elif origin is dict:
            kind = get_args(kind)[1]
        elif origin is list:
            if token != "-" and not token.isdigit():
                raise StateShapeError(
                    f"{_pointer(walked[:-1])} is a list; {token!r} is not an index.",
                    path=_pointer(walked),
                )
            kind = get_args(kind)[0]
        else:
            raise StateShapeError(
                f"{_pointer(walked[:-1])} holds a plain value; it has no {token!r}.",
                path=_pointer(walked),
            )
    return kind


def _strip_none(kind: Any) -> Any:
    if get_origin(kind) in (Union, types.UnionType):
        rest = [a for a in get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _check(kind: Any, value: Any, where: str) -> None:
    origin = get_origin(kind)
    if kind is Any:
        return
    if origin in (Union, types.UnionType):
        errors: list[StateShapeError] = []
        for option in get_args(kind):
            try:
                _check(option, value, where)
                return
            except StateShapeError as exc:
                errors.append(exc)
        raise errors[-1]
    if kind is type(None):
        if value is not None:
            raise StateShapeError(f"{where or '/'} must be null; got {value!r}.", path=where)
        return
    if origin is Literal:
        if value not in get_args(kind):
            allowed = ", ".join(repr(a) for a in get_args(kind))
            raise StateShapeError(
                f"{where or '/'} must be one of {allowed}; got {value!r}.", path=where
            )
        return
    if is_typeddict(kind):
        if not isinstance(value, dict):
            raise StateShapeError(
                f"{where or '/'} must be an object ({kind.__name__}); got {type(value).__name__}.",
                path=where,
            )
        fields, required = _fields(kind)
        for name in sorted(required - value.keys()):
            raise StateShapeError(
                f"{where or '/'} ({kind.__name__}) lacks the field {name!r}.",
                path=f"{where}/{name}",
            )
        for name, item in value.items():
            if name not in fields:
                raise StateShapeError(
                    f"{where or '/'} ({kind.__name__}) has a field the contract does not describe: "
                    f"{name!r}.",
                    path=f"{where}/{name}",
                )
            _check(fields[name], item, f"{where}/{name}")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise StateShapeError(
                f"{where or '/'} must be an object; got {type(value).__name__}.", path=where
            )
        item_kind = get_args(kind)[1]
        for key, item in value.items():
            _check(item_kind, item, f"{where}/{key}")
        return
    if origin is list:
        if not isinstance(value, list):
            raise StateShapeError(
                f"{where or '/'} must be a list; got {type(value).__name__}.", path=where
            )
        item_kind = get_args(kind)[0]
        for i, item in enumerate(value):
            _check(item_kind, item, f"{where}/{i}")
        return
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise StateShapeError(
            f"{where or '/'} must be {kind.__name__}; got {type(value).__name__} {value!r}.",
            path=where,
        )


def validate(path: str | Sequence[str | int], value: Any) -> None:
    """Check ``value`` against the shape the contract gives ``path``.

    Raises:
        StateShapeError: the path is not in the contract, or the value does not fit.
    """
    tokens = _tokens(path)
    _check(shape_at(tokens), value, _pointer(tokens) if tokens else "")


def validate_tree(tree: Mapping[str, Any]) -> None:
    """Check a whole state tree against :class:`StateView`.

    Raises:
        StateShapeError: naming the first path that does not fit.
    """
    _check(StateView, dict(tree), "")


__all__ = [
    "STATE_VERSION",
    "AgentView",
    "ConflictView",
    "Decision",
    "ErrorView",
    "FileView",
    "FindingView",
    "HunkView",
    "MilestoneView",
    "OutcomeView",
    "ProgressView",
    "ProviderView",
    "RegionView",
    "ReviewView",
    "SandboxView",
    "SessionView",
    "StateView",
    "TaskUsageView",
    "TaskView",
    "TokenUsageView",
    "UsageView",
    "VerificationView",
    "agent_view",
    "agents",
    "conflict_views",
    "error_view",
    "failed_tests",
    "file_view",
    "hunk_view",
    "hunks",
    "initial_tree",
    "no_provider",
    "number_regions",
    "provider",
    "provider_view",
    "review_view",
    "sandbox",
    "sandbox_view",
    "session",
    "session_view",
    "sessions",
    "shape_at",
    "task",
    "tasks",
    "unresolved",
    "usage",
    "validate",
    "validate_tree",
    "verification_view",
]

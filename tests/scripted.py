"""Scripted pipelines for the tests: the model replies (a Council's plan, a Coder's edit, a
Reviewer's verdict, two Coders that conflict, a fix round), the small git repositories they run
in, and a generated module over 100 KB.

The pipeline, contract, UI and CLI tests drive the real kernel and the real built agents with
these replies; keeping them in one place keeps every test's script the same shape.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.trust_helpers import trust_project

from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.llm.types import Completion, CompletionRequest, DeltaCallback

FILES = {
    "calc.py": "def add(a, b):\n    return a + b\n",
    "text.py": "def shout(s):\n    return s.upper()\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
"""A small project with a passing test (the pipeline tests' default)."""

TESTS_CONFIG = '[tests]\ncommand = "python -m pytest -q"\n'
"""A project config whose test command runs pytest."""


def repo(
    root: Path,
    files: dict[str, str],
    *,
    config: str | None = TESTS_CONFIG,
    tracked: Iterable[str] | None = None,
) -> Path:
    """A trusted git repository at ``root`` with ``files`` written and committed.

    Args:
        root: Where (made if missing).
        files: Each file's relative path and text.
        config: What ``.brio/config.toml`` says (not committed); None leaves the project
            without a config (its ``.brio`` folder exists but is empty).
        tracked: The paths the first commit adds (default: every file).
    """
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".brio").mkdir()
    if config is not None:
        (root / ".brio" / "config.toml").write_text(config)
    run = ["git", "-c", "user.name=T", "-c", "user.email=t@e.x"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(
        [*run, "add", "--", *(files if tracked is None else tracked)], cwd=root, check=True
    )
    subprocess.run([*run, "commit", "-qm", "init"], cwd=root, check=True)
    trust_project(root)  # its [tests] command applies only in a trusted project
    return root


def git(project: Path, *args: str) -> str:
    """What ``git ARGS`` prints in ``project`` (it must succeed)."""
    return subprocess.run(
        ["git", *args], cwd=project, capture_output=True, text=True, check=True
    ).stdout


def edit(path: str, old: str, new: str) -> str:
    """A Coder reply that replaces ``old`` by ``new`` in ``path``."""
    return f"{path}\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"


def plan(*subtasks: dict[str, Any]) -> ScriptedReply:
    """The Council's plan of ``subtasks`` (it asks no question)."""
    return ScriptedReply(
        json.dumps({"question": None, "subtasks": list(subtasks)}), agent="council"
    )


def review(verdict: str = "approve", findings: Iterable[dict[str, Any]] = ()) -> ScriptedReply:
    """The Reviewer's verdict."""
    return ScriptedReply(
        json.dumps({"verdict": verdict, "findings": list(findings)}), agent="reviewer"
    )


REVIEW = review(
    findings=[
        {
            "hunk": "",
            "severity": "info",
            "message": "Consider a test for sub.",
            "suggestion": "test_sub",
        },
        {
            "hunk": "h-0000000000",
            "severity": "error",
            "message": "a hunk that does not exist",
        },
    ],
)
"""An approval with a finding on no hunk and one on a hunk that does not exist."""


def sub_and_whisper(
    *, acceptance: list[str] | None = None, delay_ms: int = 0
) -> list[ScriptedReply]:
    """A plan of two subtasks on two files of :data:`FILES` (add sub to calc.py, add
    whisper to text.py), a Coder for each, then :data:`REVIEW`.

    Args:
        acceptance: The sub subtask's acceptance criteria (none when None).
        delay_ms: How long each Coder's model takes to answer.
    """
    sub: dict[str, Any] = {"title": "add sub", "goal": "Add sub(a, b) to calc.py"}
    sub["files"] = ["calc.py"]
    if acceptance is not None:
        sub["acceptance"] = acceptance
    return [
        plan(
            sub, {"title": "add whisper", "goal": "Add whisper(s) to text.py", "files": ["text.py"]}
        ),
        ScriptedReply(
            edit(
                "calc.py",
                "    return a + b",
                "    return a + b\n\n\ndef sub(a, b):\n    return a - b",
            ),
            agent="coder",
            match="Add sub",
            delay_ms=delay_ms,
        ),
        ScriptedReply(
            edit(
                "text.py",
                "    return s.upper()",
                "    return s.upper()\n\n\ndef whisper(s):\n    return s.lower()",
            ),
            agent="coder",
            match="Add whisper",
            delay_ms=delay_ms,
        ),
        REVIEW,
    ]


def conflicting_coders(
    path: str,
    verdict: ScriptedReply = REVIEW,
    *,
    models: tuple[str | None, str | None] = (None, None),
) -> list[ScriptedReply]:
    """A plan whose two Coders change the same line of ``path`` differently (the merge
    conflicts), then ``verdict``; ``models`` names the model each Coder's reply came from."""
    return [
        plan(
            {"title": "double", "goal": "Make add double the sum", "files": [path]},
            {"title": "triple", "goal": "Make add triple the sum", "files": [path]},
        ),
        ScriptedReply(
            edit(path, "    return a + b", "    return 2 * (a + b)"),
            agent="coder",
            match="double the sum",
            model=models[0],
        ),
        ScriptedReply(
            edit(path, "    return a + b", "    return 3 * (a + b)"),
            agent="coder",
            match="triple the sum",
            model=models[1],
        ),
        verdict,
    ]


BROKEN = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b"
"""calc.py as the first Coder leaves it: sub added, add broken (``test_add`` fails)."""


def fix_round(fixer: str | None = None) -> ScriptedProvider:
    """A plan to add sub to calc.py, a Coder that breaks add, and a fix round (answered by
    the model ``fixer``) that only a request showing the failing test gets."""
    return ScriptedProvider(
        [
            plan({"title": "add sub", "goal": "Add sub(a, b) to calc.py", "files": ["calc.py"]}),
            # the second attempt: it answers only a request that shows the failure
            ScriptedReply(
                edit(
                    "calc.py",
                    "def add(a, b):\n    return a - b",
                    "def add(a, b):\n    return a + b",
                ),
                agent="coder",
                match="assert -1 == 5",
                model=fixer,
            ),
            ScriptedReply(
                edit("calc.py", "def add(a, b):\n    return a + b", BROKEN),
                agent="coder",
                match="Add sub",
            ),
            REVIEW,
        ]
    )


class Recording(ScriptedProvider):
    """The scripted provider, keeping every request it was asked."""

    def __init__(self, replies: list[ScriptedReply]) -> None:
        super().__init__(replies)
        self.requests: list[CompletionRequest] = []

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        self.requests.append(request)
        return await super().complete(request, on_delta)

    def asked_by(self, agent: str) -> list[CompletionRequest]:
        return [r for r in self.requests if r.agent == agent]


def big_module(functions: int = 3000) -> str:
    """A generated Python module over 100 KB with ``parse_header`` in its middle."""
    parts = ['"""A generated module."""\n\n']
    for n in range(functions):
        if n == functions // 2:
            parts.append("def parse_header(line):\n    return line.split(':', 1)\n\n\n")
        parts.append(f"def helper_{n:04d}(value):\n    return value + {n}\n\n\n")
    return "".join(parts)


BIG = big_module()
LINES = BIG.splitlines()
TARGET = LINES.index("def parse_header(line):") + 1  # 1-based
"""The line ``def parse_header`` stands on in :data:`BIG`."""

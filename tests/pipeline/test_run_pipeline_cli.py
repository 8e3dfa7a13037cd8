"""`briotui run "TASK"` without --agent: the pipeline from the shell, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.scripted import FILES, edit, repo

pytestmark = pytest.mark.slow


def test_run_prints_progress_review_and_session(tmp_path: Path, built_agents: list[str]) -> None:
    project = repo(tmp_path / "proj", FILES)
    replies = tmp_path / "replies.json"
    replies.write_text(
        json.dumps(
            [
                {
                    "agent": "council",
                    "text": json.dumps(
                        {
                            "subtasks": [
                                {
                                    "title": "add sub",
                                    "goal": "Add sub(a, b) to calc.py",
                                    "files": ["calc.py"],
                                }
                            ]
                        }
                    ),
                },
                {
                    "agent": "coder",
                    "text": edit(
                        "calc.py",
                        "    return a + b",
                        "    return a + b\n\n\ndef sub(a, b):\n    return a - b",
                    ),
                },
                {"agent": "reviewer", "text": json.dumps({"verdict": "approve", "findings": []})},
            ]
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "briotui",
            "-C",
            str(project),
            "run",
            "Add sub",
            "--provider",
            f"scripted:{replies}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "council" in proc.stderr
    assert "reached: plan ready" in proc.stderr
    assert "Review: approve" in proc.stdout
    assert "Tests: passed in the session (verified)" in proc.stdout
    assert "briotui sessions diff s-" in proc.stdout
    assert (project / "calc.py").read_text() == FILES["calc.py"]
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "briotui",
            "-C",
            str(project),
            "run",
            "Add sub",
            "--provider",
            f"scripted:{replies}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    data = json.loads(as_json.stdout)
    assert data["status"] == "done"
    assert data["verified"] is True
    assert [f["path"] for f in data["session"]["files"]] == ["calc.py"]
    assert {t["agent"] for t in data["tasks"].values()} >= {"council", "foreman", "coder"}


def test_run_passes_the_councils_question_on(tmp_path: Path, built_agents: list[str]) -> None:
    project = repo(tmp_path / "proj", FILES)
    plan = {"subtasks": [{"title": "add sub", "goal": "Add sub(a, b)", "files": ["calc.py"]}]}

    def replies(answer: str) -> Path:
        path = tmp_path / f"replies-{len(answer)}.json"
        path.write_text(
            json.dumps(
                [
                    {"agent": "council", "text": json.dumps({"question": "Floats too?"})},
                    {"agent": "council", "text": json.dumps(plan), "match": answer},
                    {
                        "agent": "coder",
                        "text": edit("calc.py", "    return a + b", "    return a + b  # ints"),
                    },
                    {"agent": "reviewer", "text": '{"verdict": "approve", "findings": []}'},
                ]
            )
        )
        return path

    def run(*extra: str, answer: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable, "-m", "briotui", "-C", str(project), "run", "Add sub",
                "--provider", f"scripted:{replies(answer)}", *extra,
            ],
            capture_output=True, text=True, timeout=300, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    answered = run("--answer", "ints only", answer="ints only")
    assert answered.returncode == 0, answered.stderr
    assert "The council asks: Floats too?" in answered.stderr
    # no terminal and no --answer: the run says how to answer, and the Council decides
    unanswered = run(answer="no answer from the user")
    assert unanswered.returncode == 0, unanswered.stderr
    assert "Floats too?" in unanswered.stderr
    assert '--answer "..."' in unanswered.stderr

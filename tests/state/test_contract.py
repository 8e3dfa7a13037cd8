"""The state contract: every patch the real kernel publishes fits the typed shapes.

A full pipeline (Council, two Coders in branches, merge, Reviewer, tests) runs through
the real kernel with scripted model replies, real components and a real git repo; each
patch is applied to a mirror and every path it touches is validated, then the final
tree. A second run makes two Coders' edits conflict so ``conflicts`` is published too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from tests.scripted import FILES, conflicting_coders, repo, sub_and_whisper

from briotui.kernel import contract
from briotui.kernel.errors import StateShapeError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.kernel.state import StatePatch


class Checker:
    """Applies each patch to a mirror and validates what it touched."""

    def __init__(self, kernel: Kernel) -> None:
        self.subscription = kernel.state.subscribe(self.on_patch)
        self.mirror: dict[str, Any] = self.subscription.snapshot.tree
        self.problems: list[str] = []
        self.patches = 0
        self.paths: set[str] = set()
        contract.validate_tree(self.mirror)

    def on_patch(self, patch: StatePatch) -> None:
        self.patches += 1
        try:
            jsonpatch.apply_patch(self.mirror, patch.ops, in_place=True)
            for op in patch.ops:
                tokens = [
                    t.replace("~1", "/").replace("~0", "~") for t in op["path"][1:].split("/")
                ]
                self.paths.add(
                    "/".join(tokens[:1] + (["*", *tokens[2:]] if len(tokens) > 1 else []))
                )
                if op["op"] in ("add", "replace"):
                    contract.validate(op["path"], op["value"])
                # the whole entity the op changed (a task, an agent, a session) still fits
                depth = 2 if tokens[0] in ("tasks", "agents", "sessions") else 1
                top = tokens[:depth]
                value: Any = self.mirror
                for token in top:
                    if not isinstance(value, dict) or token not in value:
                        value = None
                        break
                    value = value[token]
                if value is not None:
                    contract.validate(top, value)
        except StateShapeError as exc:
            self.problems.append(f"patch {patch.seq}: {exc.message}")

    def finish(self, kernel: Kernel) -> None:
        kernel.state.flush()
        self.subscription.close()
        assert not self.problems, "\n".join(self.problems)
        contract.validate_tree(self.mirror)
        contract.validate_tree(kernel.state.get(""))
        assert self.mirror == kernel.state.get("")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return repo(tmp_path / "proj", FILES)


@pytest.mark.slow
async def test_every_patch_of_a_full_pipeline_fits_the_contract(
    project: Path, built_agents: list[str]
) -> None:
    provider = ScriptedProvider(sub_and_whisper())
    kernel = Kernel(project)
    checker = Checker(kernel)
    try:
        result = await kernel.wait(await kernel.submit("Add sub and whisper", provider=provider))
        assert result.status == "done", result
        checker.finish(kernel)
        # the run published what the UI draws, in the contract's shapes
        assert checker.patches > 10
        assert {"tasks/*", "sessions/*", "provider"} <= checker.paths, checker.paths
        assert any(p.startswith("usage/") for p in checker.paths), checker.paths
        assert any(p.startswith("agents/*") for p in checker.paths)
        view = contract.session(kernel.state.get(""), result.session_id)
        assert view is not None
        assert sorted(f["path"] for f in view["files"]) == ["calc.py", "text.py"]
        assert all(h["decision"] == "pending" and h["header"] for h in contract.hunks(view))
        assert view["verified"] is True
        assert view["review"] is not None
        assert view["review"]["verdict"] == "approve"
        usage = contract.usage(kernel.state.get(""))
        assert usage["input_tokens"] > 0
        assert set(usage["by_provider"]) == {"scripted"}
        assert contract.provider(kernel.state.get(""))["name"] == "scripted"
        assert kernel.state.get("/version") == contract.STATE_VERSION
    finally:
        await kernel.close()


@pytest.mark.slow
async def test_a_merge_conflict_is_published_with_its_path_and_regions(
    project: Path, built_agents: list[str]
) -> None:
    provider = ScriptedProvider(conflicting_coders("calc.py"))
    kernel = Kernel(project)
    checker = Checker(kernel)
    try:
        result = await kernel.wait(await kernel.submit("Change add", provider=provider))
        checker.finish(kernel)
        view = contract.session(kernel.state.get(""), result.session_id)
        assert view is not None
        [conflict] = view["conflicts"]
        assert conflict["path"] == "calc.py"  # not "Conflict in ?"
        assert conflict["session"]
        assert conflict["session"] != result.session_id
        region = conflict["regions"][0]
        assert "2 * (a + b)" in region["ours"] + region["theirs"]
        assert "3 * (a + b)" in region["ours"] + region["theirs"]
    finally:
        await kernel.close()


# -- the validator itself ----------------------------------------------------------------


def test_a_value_that_does_not_fit_names_the_path_and_field() -> None:
    good = contract.session_view("s-1", task="t", label="pipeline")
    contract.validate("/sessions/s-1", good)
    with pytest.raises(StateShapeError) as missing:
        contract.validate("/sessions/s-1", {"id": "s-1", "task": "t", "label": "x"})
    assert missing.value.path == "/sessions/s-1/conflicts"
    with pytest.raises(StateShapeError) as extra:
        contract.validate("/sessions/s-1", {**good, "hunks": []})
    assert extra.value.path == "/sessions/s-1/hunks"
    with pytest.raises(StateShapeError) as wrong:
        contract.validate(
            "/agents/i-1", {**contract.agent_view("coder", state="running"), "fuel_used": "lots"}
        )
    assert wrong.value.path == "/agents/i-1/fuel_used"
    with pytest.raises(StateShapeError) as unknown:
        contract.validate("/nowhere", 1)
    assert unknown.value.path == "/nowhere"
    # the old conflict shape the UI could not read
    with pytest.raises(StateShapeError) as old:
        contract.validate("/sessions/s-1/conflicts", [{"id": "t.1", "session": "s-2", "files": []}])
    assert old.value.path == "/sessions/s-1/conflicts/0/path"


def test_sub_paths_and_list_items_have_shapes() -> None:
    contract.validate("/sessions/s-1/verified", None)
    contract.validate("/sessions/s-1/verified", True)
    contract.validate("/tasks/t-1/milestones/-", {"name": "planned", "at": 1.0})
    contract.validate("/tasks/t-1/children/0", "t-1.council")
    contract.validate("/usage/cost_usd", 0)
    contract.validate("/version", contract.STATE_VERSION)
    with pytest.raises(StateShapeError):
        contract.validate("/tasks/t-1/status", "exploded")
    with pytest.raises(StateShapeError):
        contract.validate("/usage/input_tokens", True)


def test_a_finding_names_the_hunk_by_the_id_the_session_publishes() -> None:
    """The Reviewer reads hunks tagged ``#h-<id>`` in the diff; the UI looks findings up by
    the hunk's id, so the ``h-`` tag is not part of the published ``hunk_id``."""
    review = contract.review_view(
        {
            "verdict": "approve",
            "findings": [
                {"hunk_id": "h-03bec36cc5", "severity": "warning", "message": "m"},
                {"hunk": "", "severity": "info", "message": "whole change"},
            ],
        }
    )
    assert [f["hunk_id"] for f in review["findings"]] == ["03bec36cc5", ""]

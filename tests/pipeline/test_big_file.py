"""Code the model can see: an edit inside a file over 100 KB, through the whole pipeline
with the real built agents and scripted replies that answer what the agents ask.

Before, a file over 60 KB never reached the Coder and nothing said so; the Coder could
not read a part of it, and a SEARCH that did not match got only a generic hint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.scripted import BIG, LINES, TARGET, Recording, edit, repo

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedReply

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = {"big.py": BIG, "small.py": "def other():\n    return 1\n", "notes.txt": "notes\n"}
    return repo(tmp_path / "proj", files, config=None)


async def test_coder_reads_searches_and_edits_inside_a_file_over_100_kb(
    project: Path, built_agents: list[str]
) -> None:
    assert len(BIG.encode()) > 100_000
    goal = "Make parse_header in big.py strip the line before splitting it"
    plan = {
        "question": None,
        "subtasks": [
            {
                "title": "strip in parse_header",
                "goal": "In big.py, make parse_header(line) call line.strip() before split",
                "files": ["big.py"],
            }
        ],
    }
    wrong = "def parse_header(line):\n    return line.split(':')"
    right = "def parse_header(line):\n    return line.split(':', 1)"
    new = "def parse_header(line):\n    return line.strip().split(':', 1)"
    provider = Recording(
        [
            ScriptedReply(json.dumps(plan), agent="council"),
            # the file was left out, so the model first looks for the function ...
            ScriptedReply(
                "```search def parse_header```", agent="coder", match="left out of this prompt"
            ),
            # ... then reads the lines the search pointed at ...
            ScriptedReply(
                f"```read big.py:{TARGET}-{TARGET + 1}```",
                agent="coder",
                match=f"big.py:{TARGET}:def parse_header(line):",
            ),
            # ... then sends a SEARCH that is slightly off ...
            ScriptedReply(
                edit("big.py", wrong, new),
                agent="coder",
                match=f"big.py lines {TARGET}-{TARGET + 1} of {len(LINES)}",
            ),
            # ... and corrects it from the nearest lines it gets back
            ScriptedReply(edit("big.py", right, new), agent="coder", match="most similar lines"),
            ScriptedReply(json.dumps({"verdict": "approve", "findings": []}), agent="reviewer"),
        ]
    )
    kernel = Kernel(project)
    try:
        result = await kernel.wait(await kernel.submit(goal, provider=provider))
        assert result.status == "done", result
        assert provider.remaining == 0
        session = kernel.sessions().get(result.session_id)
        edited = session.read("big.py").decode()
        assert "    return line.strip().split(':', 1)\n" in edited
        assert edited.replace("line.strip().split", "line.split") == BIG  # only that line
        assert (project / "big.py").read_text() == BIG  # the user's file is untouched

        # the Council saw the repository map, with the function named in the request first
        [council] = provider.asked_by("council")
        council_prompt = council.messages[-1].content
        assert "Repository map" in council_prompt
        assert "big.py: not shown" in council_prompt
        coder = provider.asked_by("coder")
        assert len(coder) == 4
        first = coder[0].messages[-1].content
        # never silently dropped: the prompt says what was left out and how to ask for it
        assert f"- big.py: not shown, {len(BIG.encode())} bytes" in first
        assert "```read PATH:START-END```" in first
        assert "```search PATTERN```" in first
        repo_map = first.split("Repository map", 1)[1]
        map_lines = repo_map.splitlines()[1:3]
        assert map_lines == ["big.py:", f"  {TARGET}: def parse_header(line)"]
        # the search and the read were answered from the session
        assert f"big.py:{TARGET}:def parse_header(line):" in coder[1].messages[-1].content
        read_answer = coder[2].messages[-1].content
        assert f"big.py lines {TARGET}-{TARGET + 1} of {len(LINES)}" in read_answer
        assert right in read_answer
        # the mismatch's feedback names the nearest lines, with their numbers
        feedback = coder[3].messages[-1].content
        assert "the SEARCH text was not found" in feedback
        assert f"{TARGET}: def parse_header(line):" in feedback
        assert f"{TARGET + 1}:     return line.split(':', 1)" in feedback
    finally:
        await kernel.close()


async def test_coder_alone_names_the_left_out_file_and_reads_a_range(
    project: Path, built_agents: list[str]
) -> None:
    """``run --agent coder`` on a request naming a 100+ KB file (no plan, no scope): the
    prompt says the file was left out and how to read it, the map puts the named
    function first, and a ``read PATH START-END`` request is answered."""
    line = LINES.index("def helper_0042(value):") + 1
    provider = Recording(
        [
            ScriptedReply(f"```read big.py {line}-{line + 1}```", agent="coder", match="not shown"),
            ScriptedReply(
                edit(
                    "big.py",
                    "def helper_0042(value):\n    return value + 42",
                    "def helper_0042(value):\n    return value + 4242",
                ),
                agent="coder",
                match=f"big.py lines {line}-{line + 1} of",
            ),
        ]
    )
    kernel = Kernel(project)
    try:
        result = await kernel.wait(
            await kernel.submit(
                "In big.py make helper_0042 add 4242", agent="coder", provider=provider
            )
        )
        assert result.status == "done", result
        assert provider.remaining == 0
        session = kernel.sessions().get(result.session_id)
        assert "    return value + 4242\n" in session.read("big.py").decode()
        first = provider.asked_by("coder")[0].messages[-1].content
        assert "- big.py: not shown" in first
        repo_map = first.split("Repository map", 1)[1].splitlines()
        assert repo_map[1:3] == ["big.py:", f"  {line}: def helper_0042(value)"]
        map_text = first.split("Repository map", 1)[1].split("\n\n", 1)[0]
        assert len(map_text) < 2048 * 4 + 100  # the default budget, about 4 chars a token
        assert map_text.endswith("more file(s) not shown)") or "small.py" in map_text
    finally:
        await kernel.close()

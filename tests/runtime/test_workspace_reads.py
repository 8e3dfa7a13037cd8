"""The workspace imports that let an agent see code of any size: ``read-lines`` and
``search``, called as a guest's worker thread calls them, over a real session and the
real capability checker (with its audit log)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.runtime.guest import in_thread
from tests.scripted import BIG

from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.checker import Capabilities
from briotui.kernel.caps.profiles import build_profiles
from briotui.kernel.limits import Limits
from briotui.kernel.runtime import host
from briotui.kernel.runtime.context import CallContext, RunBindings
from briotui.kernel.runtime.values import Err, Ok
from briotui.kernel.store import Store
from briotui.kernel.vfs import SessionManager


def make_ctx(agent: str, bindings: RunBindings, limits: Limits | None = None) -> CallContext:
    ctx = CallContext(
        agent=agent,
        instance_id=f"{agent}#1",
        limits=limits or Limits(),
        loop=asyncio.get_event_loop(),
        events=lambda _e: None,
    )
    ctx.begin(bindings)
    return ctx


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pub" / "open").mkdir(parents=True)
    (root / "pub" / "closed").mkdir(parents=True)
    (root / "big.py").write_text(BIG)
    (root / "pub" / "open" / "a.txt").write_text("alpha TOKEN one\nbeta\n")
    (root / "pub" / "closed" / "b.txt").write_text("TOKEN secret\n")
    (root / "blob.bin").write_bytes(b"\xff\0TOKEN\0")
    return root


@pytest.fixture
def caps(project: Path) -> Capabilities:
    db = project / ".brio-test.db"
    return Capabilities(Store.open(db), AuditLog(db), build_profiles([]))


async def test_read_lines_of_a_file_over_the_message_limit(
    project: Path, caps: Capabilities
) -> None:
    """A 100+ KB file cannot be read whole under a small message limit, but any range
    of it can, and a range too long for the limit is cut and says so."""
    assert (project / "big.py").stat().st_size > 100_000
    manager = SessionManager.open(project)
    session = manager.create()
    limits = Limits(max_message_bytes=64 * 1024)
    ctx = make_ctx("coder", RunBindings(workspace=session, capabilities=caps), limits)
    whole = in_thread(ctx, host.ws_read_text, "big.py")
    assert isinstance(whole, Err)
    assert whole.value["kind"] == "too-large"
    lines = (project / "big.py").read_text().splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines, 1) if line.startswith("def parse_header"))
    got = in_thread(ctx, host.ws_read_lines, "big.py", target, target + 1)
    assert isinstance(got, Ok)
    assert got.value["text"] == "def parse_header(line):\n    return line.split(':', 1)\n"
    assert (got.value["start"], got.value["end"]) == (target, target + 1)
    assert got.value["total_lines"] == len(lines)
    assert got.value["truncated"] is False
    rest = in_thread(ctx, host.ws_read_lines, "big.py", 1, 0)
    assert rest.value["truncated"] is True
    assert 0 < rest.value["end"] < len(lines)
    assert len(rest.value["text"].encode()) <= limits.max_message_bytes
    past = in_thread(ctx, host.ws_read_lines, "big.py", len(lines) + 5, 0)
    assert past.value["end"] == 0
    assert past.value["text"] == ""
    binary = in_thread(ctx, host.ws_read_lines, "blob.bin", 1, 1)
    assert isinstance(binary, Err)
    assert binary.value["kind"] == "invalid"
    ctx.release()
    manager.close()


async def test_search_returns_path_line_text_bounded(project: Path, caps: Capabilities) -> None:
    manager = SessionManager.open(project)
    session = manager.create()
    session.write("new.py", b"x = 1\ndef parse_header_v2():\n    pass\n", False)
    ctx = make_ctx("coder", RunBindings(workspace=session, capabilities=caps))
    hits = in_thread(ctx, host.ws_search, r"def parse_header\b", False, "", 10)
    assert isinstance(hits, Ok)
    found = [(h["path"], h["text"]) for h in hits.value]
    assert ("big.py", "def parse_header(line):") in found
    big_hit = next(h for h in hits.value if h["path"] == "big.py")
    lines = (project / "big.py").read_text().splitlines()
    assert lines[big_hit["line"] - 1] == "def parse_header(line):"
    session_hit = in_thread(ctx, host.ws_search, "parse_header_v2", True, "", 10)
    assert [(h["path"], h["line"]) for h in session_hit.value] == [("new.py", 2)]
    many = in_thread(ctx, host.ws_search, "def helper_", True, "", 5)
    assert len(many.value) == 5
    huge = in_thread(ctx, host.ws_search, "return", True, "", 100_000)
    assert len(huge.value) == host.SEARCH_MAX_HITS
    bad = in_thread(ctx, host.ws_search, "def (", False, "", 5)
    assert isinstance(bad, Err)
    assert bad.value["kind"] == "invalid"
    assert "literal" in bad.value["message"]
    binary = in_thread(ctx, host.ws_search, "TOKEN", True, "", 50)
    assert "blob.bin" not in {h["path"] for h in binary.value}
    escape = in_thread(ctx, host.ws_search, "x", True, "../", 5)
    assert isinstance(escape, Err)
    ctx.release()
    manager.close()


async def test_search_pattern_cannot_stall_the_host(project: Path, caps: Capabilities) -> None:
    """A backtracking pattern on a long line ends (RE2 is linear), and RE2's refusals
    (backreferences) are an ``invalid`` error telling the model to search literally."""
    manager = SessionManager.open(project)
    session = manager.create()
    session.write("evil.txt", b"a" * 3000 + b"b\n", False)
    ctx = make_ctx("coder", RunBindings(workspace=session, capabilities=caps))
    # With Python's re this one search takes longer than the universe has existed.
    stalled = in_thread(ctx, host.ws_search, r"^(a+)+$", False, "", 5)
    assert isinstance(stalled, Ok)
    assert stalled.value == []
    backref = in_thread(ctx, host.ws_search, r"(a)\1", False, "", 5)
    assert isinstance(backref, Err)
    assert backref.value["kind"] == "invalid"
    assert "literal" in backref.value["message"]
    ctx.release()
    manager.close()


async def test_search_shows_only_files_the_agent_may_read(
    project: Path, caps: Capabilities
) -> None:
    """An agent granted ``pub`` and ``pub/open/**`` only: a search of ``pub`` never shows
    the lines of ``pub/closed/b.txt``, and a search of the root is denied. Audited."""
    caps.grant("limited", "read", "pub")
    caps.grant("limited", "read", "pub/open/**")
    manager = SessionManager.open(project)
    session = manager.create()
    ctx = make_ctx("limited", RunBindings(workspace=session, capabilities=caps))
    hits = in_thread(ctx, host.ws_search, "TOKEN", True, "pub", 50)
    assert isinstance(hits, Ok)
    assert [h["path"] for h in hits.value] == ["pub/open/a.txt"]
    root = in_thread(ctx, host.ws_search, "TOKEN", True, "", 50)
    assert isinstance(root, Err)
    assert root.value["kind"] == "denied"
    closed = in_thread(ctx, host.ws_read_lines, "pub/closed/b.txt", 1, 1)
    assert isinstance(closed, Err)
    assert closed.value["kind"] == "denied"
    audited = caps.store.query(
        "SELECT target, decision FROM audit WHERE agent = 'limited' ORDER BY id"
    )
    seen = {(r["target"], r["decision"]) for r in audited}
    assert ("pub/closed/b.txt", "denied") in seen
    assert ("pub", "allowed") in seen
    ctx.release()
    manager.close()

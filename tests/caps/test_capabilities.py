"""Grants, prompts, delegation, revocation and the audit log, on a real SQLite store."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.checker import Capabilities
from briotui.kernel.caps.model import Answer, CapabilityRequest, path_matches
from briotui.kernel.caps.profiles import build_profiles, profiles_from_settings
from briotui.kernel.errors import CapabilityDenied, ConfigError
from briotui.kernel.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / ".brio" / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store.open(db)
    yield s
    s.close()


def make_caps(store: Store, db: Path, **kwargs: object) -> Capabilities:
    return Capabilities(store, AuditLog(db), build_profiles([]), **kwargs)  # type: ignore[arg-type]


def req(agent: str, capability: str, target: str, **kw: str) -> CapabilityRequest:
    return CapabilityRequest(agent=agent, capability=capability, target=target, **kw)  # type: ignore[arg-type]


def audit_count(db: Path, decision: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM audit WHERE decision = ?", (decision,)).fetchone()[0]
        )


class Prompter:
    """A user who answers from a script, counting the questions."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.asked: list[CapabilityRequest] = []

    async def __call__(self, request: CapabilityRequest) -> Answer:
        self.asked.append(request)
        await asyncio.sleep(0.05)
        return self.answers.pop(0)


def test_glob_semantics() -> None:
    assert path_matches("**", "a/b/c.py")
    assert path_matches("src/**", "src/x/y.py")
    assert not path_matches("src/**", "srcx/y.py")
    assert path_matches("*.py", "a.py")
    assert not path_matches("*.py", "pkg/a.py")
    assert path_matches("**/*.py", "pkg/a.py")
    assert path_matches("**/*.py", "a.py")


def test_profiles_allow_and_audit(store: Store, db: Path) -> None:
    caps = make_caps(store, db)
    assert caps.check(req("coder", "write", "src/app.py")).allowed
    assert caps.check(req("reviewer", "read", "src/app.py")).allowed
    assert not caps.check(req("reviewer", "write", "src/app.py")).allowed
    assert not caps.check(req("echo", "read", "README.md")).allowed
    assert audit_count(db, "allowed") == 2
    assert audit_count(db, "denied") == 2


def test_denials_equal_audit_rows(store: Store, db: Path) -> None:
    caps = make_caps(store, db)
    denied = sum(
        not caps.check(req("probe", cap, f"f{i}.txt")).allowed
        for i in range(40)
        for cap in ("read", "write", "shell", "mesh")
    )
    assert denied == 160
    assert audit_count(db, "denied") == denied


def test_config_replaces_a_profile(tmp_path: Path, store: Store, db: Path) -> None:
    from briotui.kernel.settings import load_settings

    config = tmp_path / "config.toml"  # the user's own config: no trust gate
    config.write_text('[agents.coder]\nread = ["**"]\nwrite = ["src/**"]\n')
    settings = load_settings(user_dir=tmp_path, user_file=config)
    caps = Capabilities(store, AuditLog(db), profiles_from_settings(settings))
    assert caps.check(req("coder", "write", "src/a.py")).allowed
    assert not caps.check(req("coder", "write", "README.md")).allowed
    config.write_text('[agents.coder]\nwrite = "everything"\n')
    with pytest.raises(ConfigError):
        profiles_from_settings(load_settings(user_dir=tmp_path, user_file=config))


async def test_answers_are_remembered_for_their_lifetime(store: Store, db: Path) -> None:
    loop = asyncio.get_running_loop()
    user = Prompter("once", "session", "project", "deny")
    caps = make_caps(store, db, mode="ask", prompt=user, loop=loop)

    def check(target: str, session: str = "s1", task: str = "t1") -> bool:
        return caps.check(req("echo", "read", target, session_id=session, task_id=task)).allowed

    assert await asyncio.to_thread(check, "a.txt")  # once
    assert await asyncio.to_thread(check, "b.txt")  # session
    assert await asyncio.to_thread(check, "b.txt")  # remembered: not asked
    assert await asyncio.to_thread(check, "c.txt", "s2")  # project
    assert await asyncio.to_thread(check, "c.txt", "s3")  # remembered: not asked
    assert not await asyncio.to_thread(check, "d.txt")  # deny
    assert not await asyncio.to_thread(check, "d.txt")  # remembered for the task
    assert [r.target for r in user.asked] == ["a.txt", "b.txt", "c.txt", "d.txt"]
    # a project answer survives a restart; a session answer stays in its session
    fresh = make_caps(store, db, mode="never")
    assert fresh.check(req("echo", "read", "c.txt", session_id="s9")).allowed
    assert not fresh.check(req("echo", "read", "b.txt", session_id="s9")).allowed


async def test_a_burst_of_the_same_request_asks_once(store: Store, db: Path) -> None:
    user = Prompter("session")
    caps = make_caps(store, db, mode="ask", prompt=user, loop=asyncio.get_running_loop())
    results: list[bool] = []

    def worker() -> None:
        results.append(caps.check(req("echo", "read", "same.txt", session_id="s")).allowed)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    assert results == [True] * 5
    assert len(user.asked) == 1


def test_approve_all_allows_once_and_audits(store: Store, db: Path) -> None:
    caps = make_caps(store, db, mode="all")
    verdict = caps.check(req("echo", "shell", "pytest -q"))
    assert verdict.allowed
    assert verdict.decided_by == "policy:all"
    assert not caps.active_grants("echo")


def test_delegation_gives_a_subset_and_revocation_cascades(store: Store, db: Path) -> None:
    caps = make_caps(store, db)
    parent = caps.grant("foreman", "write", "src/**")
    [child] = caps.delegate("foreman", "helper", [("write", "src/a.py")], task_id="t7")
    assert child.parent_id == parent.id
    assert caps.check(req("helper", "write", "src/a.py", task_id="t7")).allowed
    assert not caps.check(req("helper", "write", "src/a.py", task_id="other")).allowed
    with pytest.raises(CapabilityDenied):
        caps.delegate("foreman", "helper", [("write", "**")], task_id="t7")
    with pytest.raises(CapabilityDenied):
        caps.delegate("foreman", "helper", [("shell", "pytest *")], task_id="t7")
    assert caps.revoke(parent.id) == 2
    assert not caps.check(req("helper", "write", "src/a.py", task_id="t7")).allowed


def test_audit_log_is_append_only(store: Store, db: Path) -> None:
    make_caps(store, db).check(req("echo", "read", "x"))
    with sqlite3.connect(db) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET decision = 'allowed'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")


KILLER = """
import os, signal, sys
from pathlib import Path
from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.checker import Capabilities
from briotui.kernel.caps.model import CapabilityRequest
from briotui.kernel.caps.profiles import build_profiles
from briotui.kernel.store import Store
db = Path(sys.argv[1]); n = int(sys.argv[2])
caps = Capabilities(Store.open(db), AuditLog(db), build_profiles([]))
for i in range(n):
    caps.check(CapabilityRequest(agent="probe", capability="write", target=f"f{i}"))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("n", [1, 17, 250])
def test_audit_rows_survive_sigkill(db: Path, n: int) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLER, str(db), str(n)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert audit_count(db, "denied") == n
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert os.path.exists(db)

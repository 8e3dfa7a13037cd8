"""The kernel's records of a run are written by the store's writer thread, in order.

Observed: every record of a run (task started, model reply, task finished...) was a
durable transaction on the event loop, about 8 per run at ``synchronous=FULL``; a run
waited for each disk flush, and a database locked by another process froze the loop.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from briotui.kernel.errors import StoreError
from briotui.kernel.records import Recorder
from briotui.kernel.state import StateTree
from briotui.kernel.store import Store


def _tasks(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status FROM tasks ORDER BY created").fetchall()


def test_recording_a_task_does_not_wait_for_the_database(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store.open(db)
    recorder = Recorder(StateTree(), store)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        recorder.task_started("t1", agent="echo", goal="hi", parent=None, session_id=None)
        recorder.task_finished("t1", "done", "ok", None)
        returned_while_locked = True  # (before: blocked for the busy timeout, then failed)
    finally:
        other.execute("COMMIT")
        other.close()
    assert returned_while_locked
    assert recorder.stored_tasks()[0]["status"] == "done"  # reads see the queued writes
    store.close()
    assert _tasks(db) == [("t1", "done")]


def test_queued_writes_commit_in_order_and_a_bad_one_alone_is_dropped(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store.open(db)
    insert = (
        "INSERT INTO tasks (id, agent, goal, status, created, updated)"
        " VALUES (?, 'echo', 'g', ?, ?, ?)"
    )
    store.write(insert, ("a", "running", 1.0, 1.0))
    store.write_many([(insert, ("b", "running", 2.0, 2.0)), (insert, ("a", "dup", 3.0, 3.0))])
    store.write("UPDATE tasks SET status = 'done' WHERE id = ?", ("a",))
    assert [tuple(r) for r in store.query("SELECT id, status FROM tasks")] == [("a", "done")]
    store.close()
    with pytest.raises(StoreError):
        store.write(insert, ("c", "running", 4.0, 4.0))


def test_writes_from_many_threads_all_land(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store.open(db)

    def write(n: int) -> None:
        for i in range(50):
            store.write(
                "INSERT INTO tasks (id, agent, goal, status, created, updated)"
                " VALUES (?, 'echo', 'g', 'done', 0, 0)",
                (f"{n}-{i}",),
            )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.query("SELECT COUNT(*) FROM tasks")[0][0] == 200
    store.close()


KILLED_AFTER_FLUSH = """
import os, signal, sys
from briotui.kernel.store import Store
store = Store.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.write(
        "INSERT INTO tasks (id, agent, goal, status, created, updated)"
        " VALUES (?, 'echo', 'g', 'done', 0, 0)",
        (f"t{i}",),
    )
store.flush()  # committed (synchronous=NORMAL): a killed process keeps it
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_committed_records_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store.open(db).close()
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_FLUSH, str(db), "300"],
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -signal.SIGKILL
    assert len(_tasks(db)) == 300
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


EXITS = """
import sys
from briotui.kernel.store import Store
store = Store.open(sys.argv[1])
store.write(
    "INSERT INTO tasks (id, agent, goal, status, created, updated)"
    " VALUES ('last', 'echo', 'g', 'done', 0, 0)"
)
"""


def test_queued_records_are_written_when_the_process_exits(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store.open(db).close()
    subprocess.run(
        [sys.executable, "-c", EXITS, str(db)],
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert _tasks(db) == [("last", "done")]


def test_reading_inside_a_transaction_does_not_wait_for_queued_writes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO tasks (id, agent, goal, status, created, updated)"
            " VALUES ('x', 'echo', 'g', 'done', 0, 0)"
        )
        store.write("UPDATE tasks SET status = 'later' WHERE id = 'x'")  # queued meanwhile
        assert store.query("SELECT status FROM tasks")[0][0] == "done"  # no deadlock
    assert store.query("SELECT status FROM tasks")[0][0] == "later"
    store.close()


def test_records_queued_while_another_process_holds_the_lock_long_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Observed: when the write lock stayed taken through the writer's retries (busy
    # timeout x 3), the queued group was logged and dropped: the task's record was lost.
    from briotui.kernel.store import db as db_module

    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_S", 0.05)  # the retries run out at once
    db = tmp_path / "state.db"
    store = Store.open(db)
    recorder = Recorder(StateTree(), store)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # held past every retry of the writer
    try:
        recorder.task_started("t1", agent="echo", goal="hi", parent=None, session_id=None)
        deadline = threading.Event()
        deadline.wait(1.0)  # the writer tries (and fails) meanwhile
    finally:
        other.execute("COMMIT")
        other.close()
    assert [r["id"] for r in recorder.stored_tasks()] == ["t1"]
    store.close()
    assert _tasks(db) == [("t1", "running")]

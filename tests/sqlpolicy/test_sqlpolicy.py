"""AgentSql: what an agent can do with its own tables, and each refusal by name."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from briotui.kernel.errors import SqlDenied, SqlError, SqlInvalid, SqlTimeout, SqlTooLarge
from briotui.kernel.sqlpolicy import AgentSql, prefix_owns, validate_prefix

from .conftest import SECRET, fingerprint, open_agent


@pytest.mark.parametrize(
    ("name", "owned"),
    [
        ("a1_x", True),
        ("A1_X", True),
        ("a1_", False),
        ("a1", False),
        ("A1", False),
        ("a10_x", False),
        ("A10_x", False),
        ("a1x", False),
        ("a1__x", True),
        ("xa1_x", False),
        ("\u212a1_x", False),  # KELVIN SIGN folds to "k" in Python, not in SQLite
        ("", False),
        (None, False),
    ],
)
def test_prefix_owns(name: str | None, owned: bool) -> None:
    prefix = "k1" if name and name.startswith("\u212a") else "a1"
    assert prefix_owns(prefix, name) is owned


@pytest.mark.parametrize("prefix", ["", "A1", "a_1", "1a", "a" * 33, "a-1", "ä1"])
def test_bad_prefixes_are_refused(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefix"):
        validate_prefix(prefix)
    with pytest.raises(ValueError, match="prefix"):
        open_agent(tmp_path / "agents.db", prefix)


def test_own_tables_full_lifecycle(agents_db: Path) -> None:
    with open_agent(agents_db, "a1") as sql:
        sql.execute("CREATE TABLE a1_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)")
        sql.execute("CREATE UNIQUE INDEX a1_notes_body ON a1_notes(body)")
        out = sql.execute(
            "INSERT INTO a1_notes (body) VALUES (?), (?) RETURNING id, body", ["one", "two"]
        )
        assert out.columns == ("id", "body")
        assert out.rows == [(1, "one"), (2, "two")]
        assert out.changes == 2
        sql.execute(
            "INSERT INTO a1_notes (id, body) VALUES (1, 'x') "
            "ON CONFLICT(id) DO UPDATE SET body = 'uno'"
        )
        sql.execute("ALTER TABLE a1_notes ADD COLUMN tag TEXT DEFAULT 'n'")
        sql.execute("ALTER TABLE a1_notes RENAME COLUMN tag TO label")
        sql.execute("CREATE TABLE A1_Tags (note INTEGER REFERENCES a1_notes(id), name TEXT)")
        sql.execute("INSERT INTO a1_tags VALUES (1, 'red'), (2, 'blue')")
        up = sql.execute(
            "UPDATE a1_notes SET label = t.name FROM a1_tags AS t WHERE t.note = a1_notes.id"
        )
        assert up.changes == 2
        rows = sql.execute(
            "WITH n AS (SELECT id, body, label FROM main.a1_notes) "
            "SELECT body, label, row_number() OVER (ORDER BY id), "
            "json_object('b', body) ->> '$.b' FROM n ORDER BY id",
            [],
        ).rows
        assert rows == [("uno", "red", 1, "uno"), ("two", "blue", 2, "two")]
        count = sql.execute(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 50) "
            "SELECT count(*) FROM r"
        )
        assert count.rows == [(50,)]
        assert sql.execute("SELECT count(*) FROM (SELECT 1 FROM a1_notes) AS s").rows == [(2,)]
        sql.execute("ALTER TABLE a1_notes DROP COLUMN label")
        sql.execute("ALTER TABLE a1_notes RENAME TO a1_memo")
        assert sql.execute("DELETE FROM a1_memo WHERE id = ?", [2]).changes == 1
        sql.execute("DROP INDEX a1_notes_body")
        sql.execute("DROP TABLE IF EXISTS a1_never_made")
        sql.execute("DROP TABLE a1_memo")
        sql.execute("DROP TABLE a1_tags;")
        assert sql.execute("SELECT 1 -- trailing comment\n; /* and this */").rows == [(1,)]


def test_values_round_trip(attacker: AgentSql) -> None:
    attacker.execute("CREATE TABLE a1_v (a, b, c, d, e)")
    values: list[int | float | str | bytes | None] = [None, -(2**63), 1.5, "héllo", b"\x00\xff"]
    attacker.execute("INSERT INTO a1_v VALUES (?, ?, ?, ?, ?)", values)
    assert attacker.execute("SELECT * FROM a1_v").rows == [tuple(values)]
    # Text that is not UTF-8 comes back with replacement characters instead of failing.
    assert attacker.execute("SELECT CAST(x'61ff' AS TEXT)").rows == [("a\ufffd",)]


@pytest.mark.parametrize("bad", [True, {"a": 1}, [1], 2**63, object()])
def test_bad_params_are_invalid(attacker: AgentSql, bad: object) -> None:
    with pytest.raises(SqlInvalid, match="Parameter 1"):
        attacker.execute("SELECT ?", [bad])  # type: ignore[list-item]


def test_param_count_mismatch_is_invalid(attacker: AgentSql) -> None:
    with pytest.raises(SqlInvalid):
        attacker.execute("SELECT ?, ?", [1])


def test_foreign_read_is_an_error_not_null(attacker: AgentSql) -> None:
    with pytest.raises(SqlDenied, match="a1_") as info:
        attacker.execute("SELECT (SELECT secret FROM a10_x LIMIT 1)")
    assert info.value.wit_kind == "denied"
    assert "not yours" in info.value.message


PROBES = (
    "SELECT 1 FROM {t}",
    "SELECT count(*) FROM {t}",
    "SELECT * FROM main.{t}",
    "SELECT * FROM a1_t JOIN {t}",
    "WITH c AS (SELECT * FROM {t}) SELECT * FROM c",
    "INSERT INTO {t} VALUES (1, 2, 3)",
    "UPDATE {t} SET n = 1",
    "DELETE FROM {t}",
    "DROP TABLE IF EXISTS {t}",
    "DROP INDEX IF EXISTS {t}_secret",
    "SELECT * FROM a1_t INDEXED BY {t}_secret",
    "ALTER TABLE {t} ADD COLUMN z",
    "ALTER TABLE a1_t RENAME TO {t}",
    "CREATE INDEX a1_i ON {t}(secret)",
    "CREATE TABLE {t} (x)",
)


@pytest.mark.parametrize("template", PROBES)
def test_missing_and_existing_foreign_tables_look_the_same(
    attacker: AgentSql, template: str
) -> None:
    seen = set()
    for name in ("a10_x", "a10_nothing_here", "A10_X", "A10_NOTHING_HERE"):
        with pytest.raises(SqlError) as info:
            attacker.execute(template.format(t=name))
        seen.add((type(info.value), info.value.wit_kind, info.value.title, info.value.message))
    assert len(seen) == 1, seen  # one answer: nothing tells which of them exists
    [(kind, *_)] = seen
    assert kind is SqlDenied


@pytest.mark.parametrize(
    ("statement", "error", "words"),
    [
        ("ATTACH ':memory:' AS x", SqlDenied, "ATTACH"),
        ("PRAGMA writable_schema=ON", SqlDenied, "PRAGMA"),
        ("VACUUM INTO '/tmp/x.db'", SqlDenied, "VACUUM"),
        ("BEGIN", SqlDenied, "own transaction"),
        ("CREATE TRIGGER a1_t AFTER INSERT ON a1_t BEGIN SELECT 1; END", SqlDenied, "Triggers"),
        ("CREATE VIEW a1_v AS SELECT 1", SqlDenied, "Views"),
        ("CREATE TEMP TABLE a1_x (x)", SqlDenied, "Temporary"),
        ("CREATE VIRTUAL TABLE a1_f USING fts5(x)", SqlDenied, "Virtual"),
        ("CREATE TABLE a1_c AS SELECT * FROM a1_t", SqlDenied, "INSERT … SELECT"),
        ("SELECT load_extension('x')", SqlDenied, "load_extension"),
        ("SELECT * FROM sqlite_master", SqlDenied, "schema table"),
        ("SELECT 1; SELECT 2", SqlInvalid, "one statement"),
        ("", SqlInvalid, "empty"),
        ("-- only a comment", SqlInvalid, "empty"),
        ("SELEC 1", SqlInvalid, "not available"),
        ("SELECT * FROM a1_t WHERE", SqlInvalid, "rejected"),
        ("SELECT 'a\x00b'", SqlInvalid, "NUL"),
        ("CREATE TABLE a10_mine (x)", SqlDenied, "a1_"),
        ("ALTER TABLE a1_t RENAME TO a10_mine", SqlDenied, "not yours"),
        ("CREATE TABLE a1_fk (x REFERENCES a10_x(id))", SqlDenied, "reference"),
    ],
)
def test_refusals_say_what_to_do(
    attacker: AgentSql, agents_db: Path, statement: str, error: type[SqlError], words: str
) -> None:
    before = fingerprint(agents_db)
    with pytest.raises(error) as info:
        attacker.execute(statement)
    assert type(info.value) is error
    assert words.lower() in info.value.message.lower()
    assert fingerprint(agents_db) == before


def test_denied_ddl_is_rolled_back(attacker: AgentSql, agents_db: Path) -> None:
    with pytest.raises(SqlDenied):
        attacker.execute("ALTER TABLE a1_t RENAME TO other_name")
    assert attacker.execute("SELECT v FROM a1_t").rows == [("mine",)]
    conn = sqlite3.connect(agents_db)
    names = {n for (n,) in conn.execute("SELECT name FROM sqlite_schema")}
    conn.close()
    assert "other_name" not in names
    assert "a1_t" in names


def test_constraint_violation_is_invalid(attacker: AgentSql) -> None:
    attacker.execute("CREATE TABLE a1_u (x UNIQUE)")
    attacker.execute("INSERT INTO a1_u VALUES (1)")
    with pytest.raises(SqlInvalid, match="UNIQUE"):
        attacker.execute("INSERT INTO a1_u VALUES (1)")


def test_runaway_query_is_stopped_and_connection_survives(agents_db: Path) -> None:
    with open_agent(agents_db, "a1", max_steps=100_000) as sql:
        with pytest.raises(SqlTimeout, match="step budget") as info:
            sql.execute(
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                "SELECT count(*) FROM r"
            )
        assert info.value.wit_kind == "timeout"
        assert sql.execute("SELECT 42").rows == [(42,)]


def test_wall_clock_budget_is_checked(agents_db: Path) -> None:
    sql = AgentSql.open(
        agents_db,
        "a1",
        max_rows=10,
        max_result_bytes=10_000,
        max_steps=10**12,
        max_seconds=0.0,
    )
    with sql, pytest.raises(SqlTimeout):
        sql.execute(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10000000) "
            "SELECT count(*) FROM r"
        )


def test_row_limit(agents_db: Path) -> None:
    with open_agent(agents_db, "a1", max_rows=10) as sql:
        many = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100) "
        with pytest.raises(SqlTooLarge, match="LIMIT"):
            sql.execute(many + "SELECT n FROM r")
        assert len(sql.execute(many + "SELECT n FROM r LIMIT 10").rows) == 10


def test_result_byte_limit(agents_db: Path) -> None:
    with open_agent(agents_db, "a1", max_result_bytes=10_000) as sql:
        with pytest.raises(SqlTooLarge) as info:
            sql.execute(
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 50) "
                "SELECT randomblob(1000) FROM r"
            )
        assert info.value.wit_kind == "too-large"
        # A single value past the limit fails inside SQLite, before it is built.
        with pytest.raises(SqlTooLarge):
            sql.execute("SELECT length(zeroblob(1000000000))")
        with pytest.raises(SqlTooLarge):
            sql.execute("SELECT randomblob(1000000000)")
        with pytest.raises(SqlTooLarge):
            sql.execute("SELECT replace(hex(zeroblob(4000)), '0', 'xxxxxxxx')")


def test_returning_past_the_limit_changes_nothing(agents_db: Path) -> None:
    with open_agent(agents_db, "a1", max_rows=5) as sql:
        sql.execute("CREATE TABLE a1_r (n)")
        with pytest.raises(SqlTooLarge):
            sql.execute(
                "INSERT INTO a1_r WITH RECURSIVE r(n) AS "
                "(SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 20) SELECT n FROM r "
                "RETURNING n"
            )
        assert sql.execute("SELECT count(*) FROM a1_r").rows == [(0,)]


def test_database_size_limit(tmp_path: Path) -> None:
    sql = AgentSql.open(
        tmp_path / "agents.db",
        "a1",
        max_rows=10,
        max_result_bytes=100_000,
        max_steps=10_000_000,
        max_db_bytes=256 * 1024,
    )
    with sql:
        sql.execute("CREATE TABLE a1_big (b)")

        def fill() -> None:
            for _ in range(100):
                sql.execute("INSERT INTO a1_big VALUES (randomblob(50000))")

        with pytest.raises(SqlTooLarge, match="size limit"):
            fill()
        # Still usable: freeing space works.
        sql.execute("DELETE FROM a1_big")


def test_two_agents_share_the_file_but_not_tables(agents_db: Path) -> None:
    with open_agent(agents_db, "b1") as one, open_agent(agents_db, "b2") as two:
        one.execute("CREATE TABLE b1_t (x)")
        two.execute("CREATE TABLE b2_t (x)")
        one.execute("INSERT INTO b1_t VALUES ('one')")
        two.execute("INSERT INTO b2_t VALUES ('two')")
        with pytest.raises(SqlDenied):
            one.execute("SELECT * FROM b2_t")
        with pytest.raises(SqlDenied):
            two.execute("DELETE FROM b1_t")
        assert one.execute("SELECT x FROM b1_t").rows == [("one",)]


def test_usable_from_another_thread(attacker: AgentSql) -> None:
    results: list[object] = []

    def work() -> None:
        results.append(attacker.execute("SELECT v FROM a1_t").rows)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert results == [[("mine",)]]


def test_closed_connection_fails_clearly(agents_db: Path) -> None:
    sql = open_agent(agents_db, "a1")
    sql.close()
    sql.close()
    with pytest.raises(SqlError, match="closed"):
        sql.execute("SELECT 1")


def test_state_db_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"state\.db"):
        open_agent(tmp_path / "state.db", "a1")


def test_secret_fixture_is_really_there(agents_db: Path) -> None:
    # Guards the battery: if the fixture stopped planting the secret, "never seen"
    # would prove nothing.
    assert SECRET in repr(fingerprint(agents_db))


BOMB = "SELECT " + ", ".join(["printf('%.*c', 2000000000, 'x')"] * 2)
"""Two calls of one SQLite function that runs for about 6 s each (idle 2-core machine)
without returning to the virtual machine, where the step counter and
``sqlite3_interrupt`` are checked. The abandoned statement burns a core until it ends:
two calls outlast the bound asserted here, more would only slow the rest of the suite."""


def test_a_statement_stuck_in_one_function_is_abandoned_at_its_budget(agents_db: Path) -> None:
    sql = AgentSql.open(
        agents_db, "a1", max_rows=10, max_result_bytes=4 << 20, max_steps=10**9, max_seconds=0.5
    )
    sql.execute("CREATE TABLE a1_t (a, b)")
    started = time.perf_counter()
    with pytest.raises(SqlTimeout, match="abandoned"):
        sql.execute("INSERT INTO a1_t " + BOMB)
    assert time.perf_counter() - started < 5  # not the 11 s or more the statement runs
    with pytest.raises(SqlError, match="closed"):
        sql.execute("SELECT 1")
    sql.close()  # does not wait for the abandoned statement


def test_a_statement_stops_when_its_run_is_stopped(attacker: AgentSql) -> None:
    stop_at = time.monotonic() + 0.3
    started = time.perf_counter()
    with pytest.raises(SqlTimeout):
        attacker.execute(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 10000000000) "
            "SELECT count(*) FROM r WHERE n % 7 = 0",
            should_stop=lambda: time.monotonic() >= stop_at,
        )
    assert time.perf_counter() - started < 5
    assert attacker.execute("SELECT v FROM a1_t").rows == [("mine",)]

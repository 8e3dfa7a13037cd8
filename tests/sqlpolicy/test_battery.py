"""A generated battery of adversarial statements against another prefix's secret.

Templates × foreign references × quoting and case variants, plus one-off attacks
(ATTACH, PRAGMA, VACUUM INTO, table-valued functions, schema tables). Every one must
fail with an SQL error; none may return, smuggle or change anything outside the
attacker's prefix.
"""

from __future__ import annotations

from pathlib import Path

from briotui.kernel.errors import SqlError
from briotui.kernel.sqlpolicy import AgentSql

from .conftest import FOREIGN_TABLES, SECRET, fingerprint, own_contents


def _forms(table: str) -> list[str]:
    """Ways to name ``table`` in SQL: case, quoting, schema qualification."""
    return [
        table,
        table.upper(),
        table.lower(),
        f'"{table}"',
        f'"{table.upper()}"',
        f"[{table}]",
        f"`{table}`",
        f"'{table}'",
        f"main.{table}",
        f'"main"."{table}"',
        f"MAIN.[{table}]",
        f"temp.{table}",
    ]


SCHEMA_REFS = [
    "sqlite_master",
    "sqlite_schema",
    "SQLITE_MASTER",
    "main.sqlite_master",
    "sqlite_temp_master",
    "temp.sqlite_master",
    "temp.sqlite_schema",
    "sqlite_sequence",
    "main.sqlite_sequence",
    "a10_seq",
]

TEMPLATES = [
    # reads
    "SELECT * FROM {t}",
    "SELECT secret FROM {t} WHERE id = 1",
    "SELECT count(*) FROM {t}",
    "SELECT 1 FROM {t} LIMIT 1",
    "SELECT (SELECT secret FROM {t} LIMIT 1)",
    "SELECT typeof((SELECT secret FROM {t}))",
    "SELECT a.v, b.secret FROM a1_t AS a JOIN {t} AS b",
    "SELECT * FROM a1_t LEFT JOIN {t} USING (id)",
    "SELECT * FROM a1_t, {t}",
    "SELECT v FROM a1_t WHERE EXISTS (SELECT 1 FROM {t})",
    "SELECT v FROM a1_t WHERE v IN (SELECT secret FROM {t})",
    "SELECT * FROM a1_t WHERE secret = (SELECT secret FROM {t} LIMIT 1)",
    "SELECT secret FROM a1_t UNION SELECT secret FROM {t}",
    "SELECT secret FROM a1_t UNION ALL SELECT secret FROM {t}",
    "SELECT secret FROM a1_t EXCEPT SELECT secret FROM {t}",
    "SELECT * FROM a1_t WHERE id = 1 UNION SELECT id, secret, secret FROM {t}",
    "WITH c AS (SELECT * FROM {t}) SELECT * FROM c",
    "WITH c AS MATERIALIZED (SELECT secret FROM {t}) SELECT count(*) FROM c",
    "WITH RECURSIVE r(n, s) AS (SELECT 1, (SELECT secret FROM {t} LIMIT 1) "
    "UNION ALL SELECT n + 1, s FROM r WHERE n < 3) SELECT * FROM r",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r, {t} WHERE n < 3) "
    "SELECT count(*) FROM r",
    "SELECT * FROM (SELECT * FROM {t}) AS sub",
    "SELECT group_concat(secret) FROM {t}",
    "SELECT row_number() OVER (), secret FROM {t}",
    "SELECT length((SELECT secret FROM {t} LIMIT 1))",
    "SELECT hex(secret) FROM {t} ORDER BY 1",
    "VALUES ((SELECT secret FROM {t} LIMIT 1))",
    "/* hidden */ SELECT * FROM {t}",
    "-- comment\nSELECT * FROM {t}",
    "select * from {t};",
    # smuggling into own tables
    "INSERT INTO a1_t (secret) SELECT secret FROM {t}",
    "INSERT INTO a1_t (secret) VALUES ((SELECT secret FROM {t} LIMIT 1))",
    "WITH w AS (SELECT * FROM {t}) INSERT INTO a1_t (secret) SELECT secret FROM w",
    "UPDATE a1_t SET secret = (SELECT secret FROM {t} LIMIT 1)",
    "UPDATE a1_t SET secret = s.secret FROM {t} AS s",
    "DELETE FROM a1_t WHERE secret IN (SELECT secret FROM {t})",
    "INSERT INTO a1_t (v) VALUES ('x') RETURNING (SELECT secret FROM {t} LIMIT 1)",
    "UPDATE a1_t SET v = 'y' RETURNING (SELECT secret FROM {t} LIMIT 1)",
    # writes to the foreign table
    "INSERT INTO {t} (secret) VALUES ('pwned')",
    "INSERT INTO {t} SELECT * FROM a1_t",
    "INSERT OR REPLACE INTO {t} (id, secret) VALUES (1, 'pwned')",
    "REPLACE INTO {t} (id, secret) VALUES (1, 'pwned')",
    "INSERT INTO {t} (id, secret) VALUES (1, 'x') ON CONFLICT(id) DO UPDATE SET secret = 'pwned'",
    "UPDATE {t} SET secret = 'pwned'",
    "UPDATE {t} SET secret = 'pwned' RETURNING secret",
    "UPDATE {t} SET secret = a1_t.v FROM a1_t",
    "DELETE FROM {t}",
    "DELETE FROM {t} RETURNING *",
    # schema changes
    "DROP TABLE {t}",
    "DROP TABLE IF EXISTS {t}",
    "ALTER TABLE {t} RENAME TO a1_stolen",
    "ALTER TABLE {t} ADD COLUMN pwned TEXT",
    "ALTER TABLE {t} RENAME COLUMN secret TO pwned",
    "ALTER TABLE {t} DROP COLUMN n",
    "CREATE INDEX a1_idx ON {t}(secret)",
    "CREATE UNIQUE INDEX IF NOT EXISTS a1_idx ON {t}(id)",
    "CREATE TABLE a1_copy AS SELECT * FROM {t}",
    "CREATE TABLE a1_fk (x REFERENCES {t}(id) ON DELETE CASCADE)",
    "CREATE VIEW a1_v AS SELECT * FROM {t}",
    "CREATE TEMP VIEW a1_v AS SELECT * FROM {t}",
    "CREATE TRIGGER a1_tr AFTER INSERT ON a1_t BEGIN "
    "INSERT INTO a1_t (secret) SELECT secret FROM {t}; END",
    "CREATE TRIGGER a1_tr AFTER INSERT ON {t} BEGIN DELETE FROM {t}; END",
    "CREATE TEMP TRIGGER a1_tr AFTER DELETE ON a1_t BEGIN UPDATE {t} SET secret = 'p'; END",
    "CREATE TEMP TABLE a1_tmp AS SELECT * FROM {t}",
    "CREATE TABLE temp.a1_tmp AS SELECT * FROM {t}",
    # several statements, explain, maintenance
    "SELECT * FROM a1_t; SELECT * FROM {t}",
    "SELECT 1; DROP TABLE {t}",
    "SELECT 1 /* ; */; DELETE FROM {t} -- ",
    "EXPLAIN SELECT * FROM {t}",
    "EXPLAIN QUERY PLAN SELECT * FROM {t}",
    "ANALYZE {t}",
    "REINDEX {t}",
]

ONE_OFFS = [
    "ATTACH DATABASE ':memory:' AS x",
    "ATTACH 'file:other.db' AS other",
    "DETACH main",
    "PRAGMA writable_schema = ON",
    "PRAGMA table_info(a10_x)",
    "PRAGMA main.table_list",
    "PRAGMA foreign_keys = ON",
    "PRAGMA journal_mode = OFF",
    "PRAGMA trusted_schema = ON",
    "pragma query_only = 0",
    "VACUUM",
    "VACUUM INTO '/tmp/briotui-vacuum-copy.db'",
    "VACUUM main INTO 'copy.db'",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT readfile('/etc/passwd')",
    "SELECT writefile('/tmp/briotui-pwned', 'x')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT sqlite_compileoption_get(0)",
    "SELECT edit('x')",
    "SELECT * FROM pragma_table_info('a10_x')",
    "SELECT count(*) FROM pragma_table_info('a10_x')",
    "SELECT * FROM pragma_table_list",
    "SELECT name FROM pragma_table_list",
    "SELECT * FROM json_each((SELECT secret FROM a10_x))",
    "SELECT * FROM json_tree((SELECT json_group_array(secret) FROM a10_x))",
    "SELECT * FROM dbstat",
    "SELECT * FROM sqlite_dbpage",
    "SELECT * FROM sqlite_stmt",
    "SELECT * FROM generate_series(1, 3)",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT x",
    "RELEASE x",
    "END TRANSACTION",
    "CREATE VIRTUAL TABLE a1_f USING fts5(x)",
    "CREATE VIRTUAL TABLE a1_f USING fts4(x)",
    "CREATE VIRTUAL TABLE a1_r USING rtree(id, a, b)",
    "INSERT INTO sqlite_master VALUES ('table', 'a1_z', 'a1_z', 0, 'CREATE TABLE a1_z(x)')",
    "UPDATE sqlite_sequence SET seq = 0",
    "DELETE FROM sqlite_sequence",
    "DROP INDEX a10_x_secret",
    "DROP INDEX main.a10_x_secret",
    "CREATE INDEX a10_x_mine ON a1_t(v)",
    "CREATE INDEX a1_i2 ON a1_t(v) WHERE v = (SELECT secret FROM a10_x)",
    "CREATE TABLE a10_new (x)",
    "CREATE TABLE a1 (x)",
    "CREATE TABLE a1_ (x)",
    "CREATE TABLE IF NOT EXISTS a10_x (x)",
    "ALTER TABLE a1_t RENAME TO a10_new",
    'ALTER TABLE a1_t RENAME TO "A10_X2"',
    "ALTER TABLE a1_t RENAME TO other2",
    "ALTER TABLE main.a1_t RENAME TO a1",
    "CREATE TABLE a1_gen (x, y AS ((SELECT secret FROM a10_x)))",
    "CREATE TABLE a1_chk (x CHECK (x <> (SELECT secret FROM a10_x)))",
    "CREATE TABLE a1_def (x DEFAULT (SELECT secret FROM a10_x))",
    "WITH a1_t AS (SELECT secret FROM a10_x) SELECT * FROM a1_t",
    "SELECT * FROM a1_t NATURAL JOIN a10_x",
    "SELECT * FROM a1_t INDEXED BY a10_x_secret",
    "SELECT sqlite_offset(secret) FROM a10_x",
    "SELECT a1_t.v FROM a1_t WHERE rowid = (SELECT max(rowid) FROM a10_seq)",
]


def _statements() -> list[str]:
    refs = [form for table in FOREIGN_TABLES for form in _forms(table)] + SCHEMA_REFS
    out = [template.format(t=ref) for template in TEMPLATES for ref in refs]
    return out + ONE_OFFS


def test_battery_no_foreign_reads_or_writes(attacker: AgentSql, agents_db: Path) -> None:
    statements = _statements()
    assert len(statements) > 1000
    initial = fingerprint(agents_db)
    assert SECRET in repr(initial)
    own_before = own_contents(agents_db)
    succeeded: list[str] = []
    leaked: list[str] = []
    changed: list[str] = []
    for statement in statements:
        try:
            result = attacker.execute(statement, [])
        except SqlError as exc:
            seen = f"{exc.title} {exc.message}"
        else:
            succeeded.append(statement)
            seen = repr(result)
        if SECRET in seen or "S3CRET" in seen:
            leaked.append(statement)
        if SECRET in own_contents(agents_db):
            leaked.append(statement)
        if fingerprint(agents_db) != initial:
            changed.append(statement)
            break
    assert own_contents(agents_db) == own_before
    assert not leaked, leaked[:5]
    assert not changed, changed
    assert not succeeded, succeeded[:10]
    # The attacker's connection still works after all that.
    assert attacker.execute("SELECT v FROM a1_t", []).rows == [("mine",)]
    print(f"\n{len(statements)} statements tried, 0 foreign reads or writes")

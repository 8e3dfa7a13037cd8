"""SQL for agents: one SQLite connection per agent instance, fenced to its own tables.

Every agent instance gets a table prefix (``a1b2``) and may only touch tables and
indexes named ``<prefix>_<something>`` in the shared agents database (the kernel
passes ``.brio/agents.db``; never the kernel's own ``state.db``). The fence is SQLite's
authorizer, deny by default, plus a few checks around it:

* **Names.** A name is owned when, folded to ASCII lower case (as SQLite folds names),
  it starts with ``<prefix>_`` and has something after it: prefix ``a1`` owns ``a1_x``
  and ``A1_X``, not ``a10_x``, not ``a1`` alone, not ``a1_``. Prefixes are lower-case
  ASCII letters and digits without ``_``, so no prefix's tables are another's.
* **Reads** of any other table, of the schema tables (``sqlite_master``,
  ``sqlite_schema``, ``sqlite_temp_master``, ``sqlite_sequence``, ``sqlite_stat*``),
  of table-valued functions (``json_each``, ``pragma_*``) and of any database but
  ``main`` are refused with :class:`~briotui.kernel.errors.SqlDenied`. The authorizer
  answers ``SQLITE_DENY``, never ``SQLITE_IGNORE`` (which would read as NULL), so a
  refused read is an error, never an empty or NULL result. A table or index outside
  the prefix is refused with one error whose text names nothing (:func:`_not_yours`),
  whether it exists or not: "no such table", "already exists" and "there is already
  another table" errors about such a name are reported as that same refusal, and a
  rename to such a name is refused before SQLite sees it, so an agent cannot probe
  which tables others have (not even through the case SQLite reports a name in).
* **Writes**: INSERT, UPDATE, DELETE (with RETURNING, UPSERT, ``UPDATE … FROM``),
  CREATE TABLE, CREATE [UNIQUE] INDEX, DROP TABLE, DROP INDEX and ALTER TABLE (rename,
  add, rename or drop a column) on owned names only. DDL runs in its own transaction,
  and afterwards the schema rows of everything outside the prefix are compared with
  before and every new foreign key must point at an owned table; any difference
  rolls it back (this is what catches ``ALTER TABLE a1_x RENAME TO a10_x``, whose new
  name the authorizer never sees). ``CREATE TABLE … AS SELECT`` is refused: create
  the table, then ``INSERT … SELECT``.
* **Refused outright**: triggers and views (their bodies would run later, under
  someone else's statement; refusing them is simpler than proving them safe),
  virtual tables, temporary tables, ATTACH/DETACH, PRAGMA, VACUUM (``VACUUM INTO``
  writes a file anywhere), ANALYZE, REINDEX, EXPLAIN, transaction control (each call
  is its own transaction), more than one statement per call, and every function not
  on :data:`ALLOWED_FUNCTIONS` (so no ``load_extension``, ``readfile``, ``writefile``,
  ``fts3_tokenizer``, ``sqlite_*`` introspection).
* **Bounds**: a progress handler interrupts a statement after ``max_steps`` virtual
  machine instructions (:class:`~briotui.kernel.errors.SqlTimeout`); results are cut
  off with :class:`~briotui.kernel.errors.SqlTooLarge` past ``max_rows`` rows or
  ``max_result_bytes`` bytes; ``SQLITE_LIMIT_LENGTH`` caps any one value (so
  ``randomblob``/``zeroblob``/``printf`` bombs fail inside SQLite) and
  ``max_page_count`` caps the database file.

Hardening on the connection: ``PRAGMA trusted_schema=OFF`` and ``foreign_keys=OFF``
are set by the kernel before the authorizer is installed; extension loading is
disabled when the ``sqlite3`` module supports it at all; on Python 3.12+ the connection
is also put in ``SQLITE_DBCONFIG_DEFENSIVE`` mode with triggers, views and
double-quoted string literals switched off. Python 3.11 has no ``setconfig``; there
the authorizer's refusal of every PRAGMA (so no ``writable_schema``) stands in for
defensive mode.

One piece: the statement scanner, the SQLite authorizer and the resource limits of
:class:`AgentSql` together are one fence; a reviewer should see all of it at once.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from briotui.kernel.errors import SqlDenied, SqlError, SqlInvalid, SqlTimeout, SqlTooLarge

SqlValue = None | int | float | str | bytes
"""A value in or out of SQL: NULL, integer, real, text or blob."""

ALLOWED_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        # scalar
        "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex",
        "ifnull", "iif", "instr", "length", "like", "likelihood", "likely", "lower",
        "ltrim", "max", "min", "nullif", "octet_length", "printf", "quote", "random",
        "randomblob", "replace", "round", "rtrim", "sign", "substr", "substring",
        "trim", "typeof", "unhex", "unicode", "unlikely", "upper", "zeroblob",
        "changes", "last_insert_rowid", "total_changes",
        # aggregate
        "avg", "count", "group_concat", "string_agg", "sum", "total",
        # window
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile",
        "lag", "lead", "first_value", "last_value", "nth_value",
        # date and time
        "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
        # math (present when SQLite was built with them)
        "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling",
        "cos", "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod",
        "pi", "pow", "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
        # json (scalar and aggregate; the table-valued json_each/json_tree are refused)
        "json", "jsonb", "json_array", "json_array_length", "json_extract",
        "json_insert", "json_object", "json_patch", "json_remove", "json_replace",
        "json_set", "json_type", "json_valid", "json_quote", "json_group_array",
        "json_group_object", "json_error_position", "json_pretty",
        "->", "->>",
    }
)  # fmt: skip
"""Functions an agent's SQL may call (lower case). Everything else is refused."""

# SQLite's own ALTER TABLE / DROP machinery calls these from the nested statements it
# runs on the schema table. They are allowed only while a DDL statement runs.
_DDL_INTERNAL_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        "sqlite_rename_table",
        "sqlite_rename_test",
        "sqlite_rename_quotefix",
        "sqlite_rename_column",
        "sqlite_drop_column",
    }
)

_SCHEMA_TABLES: Final[frozenset[str]] = frozenset(
    {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
)

_PREFIX_RE: Final = re.compile(r"[a-z][a-z0-9]{0,31}")

_DML_WORDS: Final[frozenset[str]] = frozenset(
    {"SELECT", "VALUES", "WITH", "INSERT", "REPLACE", "UPDATE", "DELETE"}
)
_DDL_WORDS: Final[frozenset[str]] = frozenset({"CREATE", "DROP", "ALTER"})

_REFUSED_WORDS: Final[dict[str, str]] = {
    "PRAGMA": "PRAGMA statements are not available to agents.",
    "ATTACH": "ATTACH is not available: agents use only their own tables in one database.",
    "DETACH": "DETACH is not available: agents use only their own tables in one database.",
    "VACUUM": "VACUUM (and VACUUM INTO) is not available to agents.",
    "ANALYZE": "ANALYZE is not available: it writes a table shared by all agents.",
    "REINDEX": "REINDEX is not available to agents.",
    "EXPLAIN": "EXPLAIN is not available to agents.",
}
_TRANSACTION_WORDS: Final[frozenset[str]] = frozenset(
    {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"}
)

_NAMED_ERROR: Final = re.compile(
    r"(?:no such (?:table|index|view|trigger)|(?:table|index|view|trigger) )"
    r":?\s*(?:(?:main|temp)\.)?(?P<name>[^\s:]+)"
    r"(?: already exists)?"
)

_ALREADY_ERROR: Final = re.compile(
    r"there is already another table or index with this name:\s*(?P<name>\S+)"
)

_STEP_GRANULARITY: Final = 1000

_WATCH_SLICE_S: Final = 0.02
"""How often the caller of a running statement looks at its budget and stop flag."""

_INTERRUPT_GRACE_S: Final = 0.05
"""How long an interrupted statement gets to stop before it is abandoned."""


def validate_prefix(prefix: str) -> str:
    """Check an agent instance's table prefix.

    Args:
        prefix: 1 to 32 characters: a lower-case ASCII letter, then lower-case ASCII
            letters and digits. No ``_``: with one, prefix ``a1`` would own prefix
            ``a1_b``'s tables.

    Returns:
        The prefix.

    Raises:
        ValueError: The prefix does not have that shape.
    """
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"Table prefix {prefix!r} is not valid: use 1-32 lower-case ASCII letters and "
            "digits, starting with a letter, without '_'."
        )
    return prefix


def _ascii_lower(name: str) -> str:
    # SQLite folds only ASCII letters when comparing identifiers; str.lower() would
    # also fold e.g. KELVIN SIGN to "k", which SQLite does not.
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def prefix_owns(prefix: str, name: str | None) -> bool:
    """Whether the table or index ``name`` belongs to ``prefix``.

    ``a1`` owns ``a1_x`` and ``A1_X``; not ``a10_x``, ``a1`` or ``a1_``.

    Args:
        prefix: A prefix that passed :func:`validate_prefix`.
        name: A table or index name as SQLite reports it.
    """
    if not name:
        return False
    head = prefix + "_"
    return len(name) > len(head) and _ascii_lower(name).startswith(head)


@dataclass(frozen=True)
class SqlRows:
    """What one statement returned.

    Attributes:
        columns: Result column names, empty for statements without results.
        rows: The result rows, each a tuple of :data:`SqlValue`.
        changes: Rows inserted, updated or deleted by the statement.
    """

    columns: tuple[str, ...]
    rows: list[tuple[SqlValue, ...]]
    changes: int


@dataclass(frozen=True)
class _Scan:
    words: tuple[str, ...]
    """The first few tokens: bare words upper case, anything quoted as ""."""
    tokens: tuple[tuple[str, str], ...]
    """The first few tokens as (kind, text): kind "word", "name"
    (a quoted identifier, unquoted), "string", or "." for a dot."""
    trailing: bool
    """Whether anything but whitespace and comments follows the first ``;``."""


_MAX_TOKENS: Final = 12
_CLOSE: Final[dict[str, str]] = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _scan(statement: str) -> _Scan:
    """The leading tokens of ``statement`` and whether a second statement follows."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(statement)
    while i < n:
        ch = statement[i]
        if ch.isspace():
            i += 1
        elif statement.startswith("--", i):
            j = statement.find("\n", i)
            i = n if j < 0 else j + 1
        elif statement.startswith("/*", i):
            j = statement.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif ch in _CLOSE:
            close = _CLOSE[ch]
            j, text = i + 1, []
            while j < n:
                if statement[j] == close:
                    if close != "]" and statement.startswith(close * 2, j):
                        text.append(close)
                        j += 2
                        continue
                    break
                text.append(statement[j])
                j += 1
            i = j + 1
            if len(tokens) < _MAX_TOKENS:
                tokens.append(("string" if ch == "'" else "name", "".join(text)))
        elif ch == ";":
            rest = statement[i + 1 :]
            return _Scan(
                tuple(t.upper() if k == "word" else "" for k, t in tokens),
                tuple(tokens),
                _scan(rest).tokens != () or _has_code(rest),
            )
        elif ch.isalnum() or ch == "_" or ord(ch) > 127:
            j = i
            while j < n and (
                statement[j].isalnum() or statement[j] in "_$" or ord(statement[j]) > 127
            ):
                j += 1
            if len(tokens) < _MAX_TOKENS:
                tokens.append(("word", statement[i:j]))
            i = j
        else:
            if len(tokens) < _MAX_TOKENS:
                tokens.append((".", ch) if ch == "." else ("punct", ch))
            i += 1
    return _Scan(tuple(t.upper() if k == "word" else "" for k, t in tokens), tuple(tokens), False)


def _has_code(text: str) -> bool:
    """Whether ``text`` holds anything but whitespace, comments and semicolons."""
    stripped = re.sub(r"--[^\n]*|/\*.*?(\*/|$)", " ", text, flags=re.S)
    return bool(stripped.replace(";", " ").strip())


class AgentSql:
    """One agent instance's SQL connection to the shared agents database.

    Calls are serialized by a lock, so the instance's worker thread (or any one
    thread at a time) may use it.

    Attributes:
        path: The database file.
        prefix: The table prefix this connection owns.
        max_rows: Most rows one statement may return.
        max_result_bytes: Most bytes (text and blob lengths, 8 per number) one
            statement may return; also the largest single value SQLite will build.
        max_steps: Most SQLite virtual machine instructions one statement may run.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        prefix: str,
        *,
        max_rows: int,
        max_result_bytes: int,
        max_steps: int,
        max_seconds: float | None,
    ) -> None:
        """Use :meth:`open`; this wraps an already hardened connection."""
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.prefix = prefix
        self.max_rows = max_rows
        self.max_result_bytes = max_result_bytes
        self.max_steps = max_steps
        self._max_seconds = max_seconds
        self._lock = threading.Lock()
        self._trusted = True
        """True except while an agent's statement runs: the kernel's own statements
        (BEGIN, COMMIT, the schema check) pass the authorizer."""
        self._ddl = False
        self._create = False
        self._denial = ""
        self._ticks = 0
        self._tick_budget = max(1, max_steps // _STEP_GRANULARITY)
        self._deadline: float | None = None
        self._interrupted = False
        """Set when the watchdog interrupted the running statement."""
        self._abandoned = False
        """Set when a statement was abandoned: the connection is closed for good."""
        self._schema_names: frozenset[str] = frozenset()
        """Tables and views in the schema (ASCII lower case) as of this statement."""
        self._modules: frozenset[str] = frozenset()
        """Virtual-table module names (eponymous ones read like tables)."""

    # -- construction ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        prefix: str,
        *,
        max_rows: int,
        max_result_bytes: int,
        max_steps: int,
        max_db_bytes: int = 256 * 1024 * 1024,
        max_statement_bytes: int = 100_000,
        max_seconds: float | None = 10.0,
        busy_timeout_s: float = 5.0,
    ) -> AgentSql:
        """Open (creating if needed) the agents database for one agent instance.

        Args:
            path: The shared agents database (``.brio/agents.db``), never ``state.db``.
            prefix: This instance's table prefix (see :func:`validate_prefix`).
            max_rows: Most rows one statement may return.
            max_result_bytes: Most bytes one statement may return; also the largest
                text or blob SQLite will build or store.
            max_steps: Most virtual machine instructions per statement.
            max_db_bytes: Largest size of the database file this connection will
                grow it to.
            max_statement_bytes: Longest statement accepted.
            max_seconds: Wall-clock limit per statement, checked with the step
                counter; None for none.
            busy_timeout_s: How long to wait for another connection's write lock.

        Returns:
            The connection, with the authorizer installed.

        Raises:
            ValueError: A bad prefix or a limit below 1.
            SqlError: The database cannot be opened.
        """
        validate_prefix(prefix)
        if Path(path).name == "state.db":
            raise ValueError(
                "Agents get their own database (.brio/agents.db), never the kernel's state.db."
            )
        for name, value in (
            ("max_rows", max_rows),
            ("max_result_bytes", max_result_bytes),
            ("max_steps", max_steps),
            ("max_db_bytes", max_db_bytes),
            ("max_statement_bytes", max_statement_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}.")
        try:
            conn = sqlite3.connect(
                str(path),
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=0,
            )
        except sqlite3.Error as exc:
            raise SqlError(
                f"Could not open the agents database {path}: {exc}. Check that .brio/ is writable.",
                title="Agents database unavailable",
            ) from exc
        try:
            _harden(conn, max_result_bytes, max_statement_bytes, max_db_bytes)
        except sqlite3.Error as exc:
            conn.close()
            raise SqlError(
                f"Could not prepare the agents database {path}: {exc}. If it is "
                "corrupt, move it aside; briotui creates a new one.",
                title="Agents database unavailable",
            ) from exc
        self = cls(
            conn,
            Path(path),
            prefix,
            max_rows=max_rows,
            max_result_bytes=max_result_bytes,
            max_steps=max_steps,
            max_seconds=max_seconds,
        )
        self._modules = frozenset(
            _ascii_lower(str(m)) for (m,) in conn.execute("SELECT name FROM pragma_module_list")
        )
        conn.text_factory = _decode_text
        conn.set_progress_handler(self._progress, _STEP_GRANULARITY)
        conn.set_authorizer(self._authorize)
        return self

    # -- the fence ---------------------------------------------------------------------

    def _deny(self, reason: str) -> int:
        if not self._denial:
            self._denial = reason
        return sqlite3.SQLITE_DENY

    def _owned_or_deny(self, name: str | None) -> int:
        if prefix_owns(self.prefix, name):
            return sqlite3.SQLITE_OK
        return self._deny(_not_yours(self.prefix))

    def _rule(self) -> str:
        return (
            f"Agents may only use tables named {self.prefix}_… (for example {self.prefix}_notes)."
        )

    def _authorize(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        db: str | None,
        source: str | None,
    ) -> int:
        """SQLite authorizer: deny by default; see the module docstring for the rules."""
        if self._trusted:
            return sqlite3.SQLITE_OK
        ddl = self._ddl
        schema_access = ddl and (
            (arg1 in _SCHEMA_TABLES and db in ("main", "temp"))
            or (arg1 == "sqlite_sequence" and db == "main")
        )
        if action == sqlite3.SQLITE_SELECT:
            if self._create:
                return self._deny(
                    "CREATE TABLE … AS SELECT is not available. Create the table, then "
                    "fill it with INSERT … SELECT."
                )
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            fname = (arg2 or "").lower()
            if fname in ALLOWED_FUNCTIONS or (ddl and fname in _DDL_INTERNAL_FUNCTIONS):
                return sqlite3.SQLITE_OK
            return self._deny(f"The function {arg2}() is not available to agents.")
        if action in (
            sqlite3.SQLITE_READ,
            sqlite3.SQLITE_INSERT,
            sqlite3.SQLITE_UPDATE,
            sqlite3.SQLITE_DELETE,
        ):
            if schema_access:
                return sqlite3.SQLITE_OK
            if action == sqlite3.SQLITE_READ and db is None:
                return self._authorize_unqualified_read(arg1)
            if db != "main":
                return self._deny(
                    f"Only the main database is available, not {db!r}. {self._rule()}"
                )
            if (arg1 or "").lower().startswith("sqlite_"):
                if _ascii_lower(arg1 or "") not in _SCHEMA_TABLES:
                    return self._deny(_not_yours(self.prefix))  # exists or not: the same
                return self._deny(
                    f"The schema table {arg1} (and table-valued functions such as "
                    f"json_each and pragma_*) are not available. {self._rule()}"
                )
            return self._owned_or_deny(arg1)
        if action == sqlite3.SQLITE_CREATE_TABLE:
            if db != "main":
                return self._deny("Only the main database is available.")
            if schema_access and arg1 == "sqlite_sequence":
                return sqlite3.SQLITE_OK
            return self._owned_or_deny(arg1)
        if action in (sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX):
            if db != "main":
                return self._deny("Only the main database is available.")
            if self._owned_or_deny(arg2) != sqlite3.SQLITE_OK:
                return sqlite3.SQLITE_DENY
            if (arg1 or "").startswith("sqlite_autoindex_"):
                return sqlite3.SQLITE_OK  # a UNIQUE or PRIMARY KEY constraint's index
            return self._owned_or_deny(arg1)
        if action == sqlite3.SQLITE_DROP_TABLE:
            if db != "main":
                return self._deny("Only the main database is available.")
            return self._owned_or_deny(arg1)
        if action == sqlite3.SQLITE_REINDEX and ddl:
            # CREATE INDEX asks for this on the new index.
            return self._owned_or_deny(arg1)
        if action == sqlite3.SQLITE_ALTER_TABLE:
            # arg1 is the database, arg2 the table.
            if arg1 != "main":
                return self._deny("Only the main database is available.")
            return self._owned_or_deny(arg2)
        return self._deny(_ACTION_REFUSALS.get(action, "That operation is not available."))

    def _authorize_unqualified_read(self, name: str | None) -> int:
        """A read SQLite reports without a database: a FROM item no column is used of.

        ``SELECT count(*) FROM t`` reports ``t`` this way, and so does a CTE or a
        subquery used the same way. A CTE's own reads are checked on their own, so a
        name that is no table (nor a virtual table) is allowed; one that is a table or
        view in the schema, a virtual-table module (``json_each``, ``pragma_*``) or
        an ``sqlite_*`` name must be owned.
        """
        if prefix_owns(self.prefix, name):
            return sqlite3.SQLITE_OK
        folded = _ascii_lower(name or "")
        if (
            not folded
            or folded in self._schema_names
            or folded in self._modules
            or folded.startswith(("sqlite_", "pragma_"))
        ):
            return self._deny(_not_yours(self.prefix))
        return sqlite3.SQLITE_OK

    def _progress(self) -> int:
        if self._trusted:
            return 0
        self._ticks += 1
        if self._ticks > self._tick_budget:
            return 1
        if self._deadline is not None and time.monotonic() > self._deadline:
            return 1
        return 0

    # -- running -----------------------------------------------------------------------

    def execute(
        self,
        statement: str,
        params: Sequence[SqlValue] = (),
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> SqlRows:
        """Run one statement with positional (``?``) parameters.

        The statement runs on a thread of its own while the caller waits, at most its
        time budget (``max_seconds``) and only while ``should_stop`` says go on; see
        :meth:`_watch` for how it is stopped.

        Args:
            statement: Exactly one SQL statement (a trailing ``;`` is fine).
            params: One value per ``?``: None, int, float, str or bytes.
            should_stop: Polled while the statement runs (the agent's deadline and
                cancel); when it returns True the statement is stopped.

        Returns:
            The columns, rows and number of changed rows.

        Raises:
            SqlDenied: It touches something outside the prefix, or a refused feature.
            SqlInvalid: It is malformed, more than one statement, or SQLite rejected it
                (syntax, constraint).
            SqlTooLarge: The result, a value or the database would be too large.
            SqlTimeout: It ran past its step or time budget, or the database stayed
                locked.
            SqlError: The connection is closed or the database failed.
        """
        if not isinstance(statement, str):
            raise SqlInvalid("The statement must be text.")
        checked = _check_params(params)
        if self._abandoned:
            raise self._closed_error()
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        self._interrupted = False

        def work() -> None:
            try:
                box.append((True, self._execute(statement, checked)))
            except BaseException as exc:  # handed to the calling thread
                box.append((False, exc))
            finally:
                done.set()

        runner = threading.Thread(target=work, name=f"brio-sql-{self.prefix}", daemon=True)
        runner.start()
        if not self._watch(done, should_stop):
            raise SqlTimeout(
                "The statement ran past its time budget (or the agent's run was stopped) "
                "inside one SQLite function that cannot be interrupted, so it was abandoned "
                "and this SQL connection closed. Build smaller values (printf widths, "
                "zeroblob, replace) and start the agent again."
            )
        ok, value = box[0]
        if ok:
            result: SqlRows = value
            return result
        raise value

    def _watch(self, done: threading.Event, should_stop: Callable[[], bool] | None) -> bool:
        """Wait for the statement; stop it past its time budget or when ``should_stop``.

        A statement is stopped with ``sqlite3_interrupt``, which SQLite honours between
        virtual machine instructions. One instruction can run for a long time (a
        ``printf`` with a huge precision, say); if the statement has not ended
        :data:`_INTERRUPT_GRACE_S` after the interrupt, it is abandoned: the connection
        is marked closed, its thread rolls back and closes it when SQLite returns, and
        nothing it did is committed.

        Returns:
            Whether the statement ended (with a result or an error); False if abandoned.
        """
        end = time.monotonic() + self._max_seconds if self._max_seconds is not None else None
        while True:
            left = _WATCH_SLICE_S if end is None else min(_WATCH_SLICE_S, end - time.monotonic())
            if left > 0 and done.wait(left):
                return True
            if (end is not None and time.monotonic() >= end) or (
                should_stop is not None and should_stop()
            ):
                break
        self._interrupted = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.interrupt()
        if done.wait(_INTERRUPT_GRACE_S):
            return True
        self._abandoned = True
        return False

    def _closed_error(self) -> SqlError:
        return SqlError(
            "This agent's SQL connection is closed. Start the agent again.",
            title="SQL connection closed",
        )

    def _execute(self, statement: str, checked: tuple[SqlValue, ...]) -> SqlRows:
        """Run one checked statement in its own transaction (on the statement's thread)."""
        with self._lock:
            try:
                return self._execute_locked(statement, checked)
            finally:
                if self._abandoned and self._conn is not None:
                    conn, self._conn = self._conn, None
                    self._rollback(conn)
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()

    def _execute_locked(self, statement: str, checked: tuple[SqlValue, ...]) -> SqlRows:
        conn = self._conn
        if conn is None:
            raise self._closed_error()
        scan = self._precheck(statement)
        ddl = scan.words[0] in _DDL_WORDS
        writes = ddl or scan.words[0] not in ("SELECT", "VALUES")
        self._run_trusted(conn, "BEGIN IMMEDIATE" if writes else "BEGIN")
        try:
            self._schema_names = frozenset(
                _ascii_lower(str(n))
                for (n,) in conn.execute(
                    "SELECT name FROM main.sqlite_schema WHERE type IN ('table', 'view')"
                )
            )
            before = self._foreign_schema(conn) if ddl else None
            result = self._run(conn, statement, checked, ddl=ddl, create=scan.words[0] == "CREATE")
            if before is not None:
                self._check_schema(conn, before)
        except BaseException:
            self._rollback(conn)
            raise
        if self._abandoned or self._interrupted:  # given up on: apply nothing
            self._rollback(conn)
            raise _translate(sqlite3.OperationalError("interrupted"), self.prefix, "")
        try:
            self._run_trusted(conn, "COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise _translate(exc, self.prefix, "") from exc
        return result

    def _precheck(self, statement: str) -> _Scan:
        if "\x00" in statement:
            raise SqlInvalid("The statement contains a NUL character.")
        scan = _scan(statement)
        if not scan.words or not scan.words[0]:
            raise SqlInvalid("The statement is empty. Send one SQL statement.")
        first = scan.words[0]
        if first in _REFUSED_WORDS:
            raise SqlDenied(f"{_REFUSED_WORDS[first]} {self._rule()}")
        if first in _TRANSACTION_WORDS:
            raise SqlDenied(
                "Transaction control is not available: every call runs as its own "
                "transaction and is committed when it succeeds."
            )
        if first in _DDL_WORDS:
            rest = scan.words[1:4]
            if "TRIGGER" in rest:
                raise SqlDenied("Triggers are not available to agents. " + self._rule())
            if "VIEW" in rest:
                raise SqlDenied(
                    "Views are not available to agents; write the SELECT each time. " + self._rule()
                )
            if "VIRTUAL" in rest:
                raise SqlDenied("Virtual tables are not available to agents.")
            if first == "CREATE" and ("TEMP" in rest[:1] or "TEMPORARY" in rest[:1]):
                raise SqlDenied(
                    "Temporary tables are not available; create a table named "
                    f"{self.prefix}_… and drop it when done."
                )
            if first == "DROP":
                self._check_drop(scan)
            if first == "ALTER":
                self._check_rename(scan)
        elif first not in _DML_WORDS:
            raise SqlInvalid(
                f"Statements starting with {first} are not available. Use SELECT, "
                "INSERT, UPDATE, DELETE, CREATE TABLE/INDEX, DROP TABLE/INDEX or ALTER TABLE."
            )
        if scan.trailing:
            raise SqlInvalid("Send one statement per call; this one has more after ';'.")
        return scan

    def _check_drop(self, scan: _Scan) -> None:
        """Refuse a DROP of a name outside the prefix before SQLite sees it.

        ``DROP TABLE IF EXISTS x`` of a missing table never reaches the authorizer, so
        without this it would succeed for a missing foreign name and fail for an
        existing one: a way to learn which tables other agents have.
        """
        toks = list(scan.tokens[1:])
        if toks and toks[-1] == ("punct", ";"):
            toks.pop()
        if len(toks) >= 3 and [t.upper() for _, t in toks[1:3]] == ["IF", "EXISTS"]:
            toks = toks[:1] + toks[3:]
        named = [k in ("word", "name", "string") for k, _ in toks]
        if len(toks) == 2 and named[1]:
            schema, name = "main", toks[1][1]
        elif len(toks) == 4 and named[1] and toks[2][0] == "." and named[3]:
            schema, name = toks[1][1], toks[3][1]
        else:
            raise SqlInvalid("Write DROP TABLE or DROP INDEX, optionally IF EXISTS, then one name.")
        if _ascii_lower(schema) != "main":
            raise SqlDenied(f"Only the main database is available. {self._rule()}")
        if not prefix_owns(self.prefix, name):
            raise SqlDenied(_not_yours(self.prefix))

    def _check_rename(self, scan: _Scan) -> None:
        """Refuse ``ALTER TABLE … RENAME TO <name>`` to a name outside the prefix.

        SQLite would answer "there is already another table" for a name that exists
        and rename (then be rolled back) for one that does not: two answers that tell
        which tables others have. Both get the one refusal before SQLite runs it.
        """
        toks = [(k, t) for k, t in scan.tokens if k != "punct" or t != ";"]
        for i in range(len(toks) - 2):
            kind, text = toks[i]
            if kind == "word" and text.upper() == "RENAME":
                after = toks[i + 1]
                if after[0] == "word" and after[1].upper() == "TO":
                    rest = toks[i + 2 :]
                    if len(rest) == 3 and rest[1][0] == ".":
                        rest = rest[2:]
                    if len(rest) == 1 and not prefix_owns(self.prefix, rest[0][1]):
                        raise SqlDenied(_not_yours(self.prefix))
                return

    def _run(
        self,
        conn: sqlite3.Connection,
        statement: str,
        params: tuple[SqlValue, ...],
        *,
        ddl: bool,
        create: bool,
    ) -> SqlRows:
        self._denial = ""
        self._ticks = 0
        self._deadline = (
            time.monotonic() + self._max_seconds if self._max_seconds is not None else None
        )
        self._ddl = ddl
        self._create = create
        changes_before = conn.total_changes
        rows: list[tuple[SqlValue, ...]] = []
        self._trusted = False
        try:
            cursor = conn.execute(statement, params)
            columns = tuple(d[0] for d in cursor.description or ())
            size = sum(len(c.encode("utf-8", "replace")) for c in columns)
            while True:
                batch = cursor.fetchmany(256)
                if not batch:
                    break
                for row in batch:
                    rows.append(row)
                    if len(rows) > self.max_rows:
                        raise SqlTooLarge(
                            f"The result has more than {self.max_rows} rows. Add a LIMIT "
                            "(and OFFSET to page through it), or aggregate."
                        )
                    size += sum(_value_size(v) for v in row)
                    if size > self.max_result_bytes:
                        raise SqlTooLarge(
                            f"The result is over {self.max_result_bytes} bytes. Select "
                            "fewer columns or rows (LIMIT), or shorter values (substr)."
                        )
            cursor.close()
            changes = conn.total_changes - changes_before
        except sqlite3.Error as exc:
            raise _translate(exc, self.prefix, self._denial) from exc
        except ValueError as exc:  # e.g. a NUL or a surrogate in the statement
            raise SqlInvalid(f"The statement could not be used: {exc}.") from exc
        finally:
            self._trusted = True
            self._ddl = False
            self._create = False
        return SqlRows(columns=columns, rows=rows, changes=changes)

    def _run_trusted(self, conn: sqlite3.Connection, sql: str) -> None:
        try:
            conn.execute(sql)
        except sqlite3.Error as exc:
            raise _translate(exc, self.prefix, "") from exc

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            # A failed rollback leaves SQLite to roll back on close; nothing was
            # committed, which is what matters here.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _foreign_schema(self, conn: sqlite3.Connection) -> set[tuple[str, str, str, str]]:
        out: set[tuple[str, str, str, str]] = set()
        for type_, name, tbl, sql in conn.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM main.sqlite_schema"
        ):
            own = prefix_owns(self.prefix, tbl) and (
                prefix_owns(self.prefix, name) or str(name).startswith("sqlite_autoindex_")
            )
            if not own and name != "sqlite_sequence":
                out.add((str(type_), str(name), str(tbl), str(sql)))
        return out

    def _check_schema(
        self, conn: sqlite3.Connection, before: set[tuple[str, str, str, str]]
    ) -> None:
        after = self._foreign_schema(conn)
        if after != before:
            raise SqlDenied(_not_yours(self.prefix))
        owned = [
            str(name)
            for (name,) in conn.execute("SELECT name FROM main.sqlite_schema WHERE type='table'")
            if prefix_owns(self.prefix, str(name))
        ]
        for table in owned:
            for (target,) in conn.execute(
                'SELECT "table" FROM pragma_foreign_key_list(?)', (table,)
            ):
                if not prefix_owns(self.prefix, str(target)):
                    raise SqlDenied(
                        f"{table} would reference {target}, which is not yours; it was "
                        f"rolled back. {self._rule()}"
                    )

    def close(self) -> None:
        """Close the connection. Idempotent; later calls to :meth:`execute` fail.

        Never waits long: if a statement is still running (an abandoned one), its
        thread closes the connection when SQLite returns.
        """
        if not self._lock.acquire(timeout=_INTERRUPT_GRACE_S):
            self._abandoned = True
            return
        try:
            conn, self._conn = self._conn, None
        finally:
            self._lock.release()
        if conn is not None:
            conn.close()

    def __enter__(self) -> AgentSql:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_ACTION_REFUSALS: Final[dict[int, str]] = {
    sqlite3.SQLITE_ATTACH: "ATTACH is not available to agents.",
    sqlite3.SQLITE_DETACH: "DETACH is not available to agents.",
    sqlite3.SQLITE_PRAGMA: "PRAGMA (and pragma_* functions) are not available to agents.",
    sqlite3.SQLITE_TRANSACTION: "Transaction control is not available to agents.",
    sqlite3.SQLITE_SAVEPOINT: "Savepoints are not available to agents.",
    sqlite3.SQLITE_CREATE_TRIGGER: "Triggers are not available to agents.",
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "Triggers are not available to agents.",
    sqlite3.SQLITE_CREATE_VIEW: "Views are not available to agents.",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "Views are not available to agents.",
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "Temporary tables are not available to agents.",
    sqlite3.SQLITE_CREATE_TEMP_INDEX: "Temporary indexes are not available to agents.",
    sqlite3.SQLITE_CREATE_VTABLE: "Virtual tables are not available to agents.",
    sqlite3.SQLITE_ANALYZE: "ANALYZE is not available to agents.",
    sqlite3.SQLITE_REINDEX: "REINDEX is not available to agents.",
}


def _harden(
    conn: sqlite3.Connection, max_value_bytes: int, max_statement_bytes: int, max_db_bytes: int
) -> None:
    """Settings made by the kernel before the authorizer goes in."""
    if hasattr(conn, "enable_load_extension"):
        conn.enable_load_extension(False)
    setconfig = getattr(conn, "setconfig", None)
    if setconfig is not None:  # Python 3.12+
        for name, on in (
            ("SQLITE_DBCONFIG_DEFENSIVE", True),
            ("SQLITE_DBCONFIG_TRUSTED_SCHEMA", False),
            ("SQLITE_DBCONFIG_ENABLE_TRIGGER", False),
            ("SQLITE_DBCONFIG_ENABLE_VIEW", False),
            ("SQLITE_DBCONFIG_DQS_DDL", False),
            ("SQLITE_DBCONFIG_DQS_DML", False),
            ("SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER", False),
        ):
            code = getattr(sqlite3, name, None)
            if code is not None:
                setconfig(code, on)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(1024, max_value_bytes))
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, max_statement_bytes)
    conn.setlimit(sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 1)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000)
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA recursive_triggers=OFF")
    conn.execute("PRAGMA journal_mode=WAL")
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA max_page_count={max(1, max_db_bytes // page_size)}")


def _decode_text(data: bytes) -> str:
    # A TEXT value need not be valid UTF-8 (CAST(x'ff' AS TEXT)); replace, never fail.
    return data.decode("utf-8", "replace")


def _value_size(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "replace"))
    if isinstance(value, bytes):
        return len(value)
    return 8


def _check_params(params: Sequence[SqlValue]) -> tuple[SqlValue, ...]:
    if isinstance(params, (str, bytes)):
        raise SqlInvalid("Parameters must be a list of values, one per '?'.")
    out: list[SqlValue] = []
    for i, value in enumerate(params):
        if value is None or (
            isinstance(value, (int, float, str, bytes)) and not isinstance(value, bool)
        ):
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise SqlInvalid(f"Parameter {i + 1} does not fit in 64 bits.")
            out.append(value)
        else:
            raise SqlInvalid(
                f"Parameter {i + 1} is a {type(value).__name__}; use null, an integer, "
                "a real, text or a blob."
            )
    return tuple(out)


def _not_yours(prefix: str) -> str:
    """The one refusal for a table or index outside ``prefix``, existing or not.

    It names no table on purpose: SQLite reports an existing table's name as it is
    stored and a missing one's as it was written, so naming it would tell them apart.
    """
    return (
        "That statement uses a table or index that is not yours (or that does not "
        f"exist). Agents may only use tables named {prefix}_… (for example "
        f"{prefix}_notes)."
    )


def _translate(exc: sqlite3.Error, prefix: str, denial: str) -> SqlError:
    """The agent-facing error for a SQLite error."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    rule = f"Agents may only use tables named {prefix}_… (for example {prefix}_notes)."
    if code == sqlite3.SQLITE_AUTH or text == "not authorized" or denial:
        return SqlDenied(denial or f"That statement is not allowed. {rule}")
    if code == sqlite3.SQLITE_INTERRUPT or text == "interrupted":
        return SqlTimeout(
            "The statement ran past its step budget or its time budget (or the agent's "
            "run was stopped) and was stopped. Add a LIMIT, an index, or a tighter WHERE "
            "clause."
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in text:
        return SqlTimeout(
            "The agents database stayed locked by another agent. Try again shortly.",
            title="Agents database busy",
        )
    if code == sqlite3.SQLITE_TOOBIG or "too big" in text:
        return SqlTooLarge(f"A value would be too large ({text}). Build smaller values.")
    if code == sqlite3.SQLITE_FULL or "is full" in text:
        return SqlTooLarge(
            "The agents database is at its size limit. Drop tables or rows you no longer need."
        )
    match = _NAMED_ERROR.search(text) or _ALREADY_ERROR.search(text)
    if match and not prefix_owns(prefix, match.group("name").strip("'\"`[]")):
        return SqlDenied(_not_yours(prefix))
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in text:
        return SqlInvalid("Send one statement per call.")
    if isinstance(
        exc, (sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError)
    ):
        return SqlInvalid(f"SQLite rejected the statement: {text}.")
    return SqlError(f"The agents database failed: {text}.")

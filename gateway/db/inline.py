"""Short write transactions on a file-backed SQLite database, run on the event loop itself.

A quota reservation is one UPDATE of one row. Through SQLAlchemy's async engine on aiosqlite it costs about
0.65 ms of CPU, mostly five hand-offs to aiosqlite's thread (cursor, execute, close, commit, reset); the
transaction itself costs about 27 µs, less than one hand-off (measured: 175 µs). On SQLite the quota
ledger's statements therefore run here, on a connection of their own, made never to wait:

- `busy_timeout` is 0: when another connection holds the write lock, `begin` says so at once (None) and
  the caller takes the engine's path instead, in aiosqlite's thread, where waiting harms nobody;
- this connection never checkpoints (a checkpoint writes the database file and syncs it): the engine's
  connections, which write every usage record, do;
- in WAL mode with `synchronous=NORMAL` a commit appends to the WAL without syncing it;
- a statement slower than `SLOW_SECONDS` (a disk in trouble) turns the path off for `PAUSE_SECONDS`.

Statements are the repositories' SQLAlchemy Core statements, compiled once for SQLite, so each is written
once. Their parameters are plain integers and strings (no type processing is applied). An error is raised
as SQLAlchemy's `OperationalError`, as the engine would raise it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

log = logging.getLogger("gateway.db")

SLOW_SECONDS = 0.05  # a disk in trouble, not a busy CPU (a descheduled thread can lose 30 ms)
PAUSE_SECONDS = 30.0
_DIALECT = sqlite.dialect()
Params = dict[str, Any] | None


class InlineResult:
    """The part of a SQLAlchemy result the quota statements read."""

    __slots__ = ("rowcount", "_rows")

    def __init__(self, rowcount: int, rows: list[Any]) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None


class InlineTransaction:
    __slots__ = ("_db",)

    def __init__(self, db: InlineSQLite) -> None:
        self._db = db

    async def execute(self, statement: ClauseElement, parameters: Params = None) -> InlineResult:
        """Runs at once: awaiting it never gives the event loop to anyone else."""
        cursor = self._db.run(*self._db.bound(statement, parameters))
        return InlineResult(cursor.rowcount, cursor.fetchall())


class InlineSQLite:
    # Tests: called with each statement's SQL before it runs (raising makes it fail).
    before_execute: Callable[[str], None] | None = None

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=0")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._compiled: weakref.WeakKeyDictionary[ClauseElement, tuple[str, tuple[str, ...], dict[str, Any]]]
        self._compiled = weakref.WeakKeyDictionary()
        self._paused_until = 0.0

    @classmethod
    def for_url(cls, url: str) -> InlineSQLite | None:
        """For a file-backed SQLite database, put in WAL mode; None for anything else (the engine's path)."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
            return None
        try:
            db = cls(parsed.database)
        except sqlite3.Error:  # not there (yet): the engine's path, and readiness, will say
            return None
        try:  # as the engine sets on each of its connections (db/session.py)
            wal = db.conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
            db.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the schema read now, not later
        except sqlite3.Error:
            wal = False
        if not wal:  # a rollback journal would make readers wait for our writes: not for the loop
            db.close()
            return None
        return db

    def bound(self, statement: ClauseElement, parameters: Params) -> tuple[str, tuple[Any, ...]]:
        """The SQL of a statement and its arguments in order."""
        sql, names, fixed = self._compiled_for(statement)
        values = {**fixed, **(parameters or {})}
        return sql, tuple(values[name] for name in names)

    def _compiled_for(self, statement: ClauseElement) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        entry = self._compiled.get(statement)
        if entry is None:
            compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
            names = tuple(compiled.positiontup or ())  # qmark: the binds in SQL order
            fixed = {name: bind.effective_value for name, bind in compiled.binds.items()}  # the literals
            entry = (compiled.string, names, fixed)
            self._compiled[statement] = entry
        return entry

    def alone(self, statement: ClauseElement, parameters: Params) -> int | None:
        """One statement, committed on its own: its row count. None when the database is busy, this path is
        paused, or the statement failed: nothing has been done, use the engine (which waits, or says)."""
        if self.paused or self.conn.in_transaction:
            return None
        try:
            return self.run(*self.bound(statement, parameters)).rowcount
        except OperationalError:
            return None

    @property
    def paused(self) -> bool:
        return time.monotonic() < self._paused_until

    @contextmanager
    def begin(self) -> Iterator[InlineTransaction | None]:
        """A write transaction, committed at the end of the block (rolled back on an error); None when the
        database is busy or this path is paused: nothing has been done, use the engine."""
        if self.paused:
            yield None
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # locked by another writer (or worse: the engine will say)
            yield None
            return
        try:
            yield InlineTransaction(self)
            self.run("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        if self.before_execute is not None:
            self.before_execute(sql)
        started = time.monotonic()
        try:
            return self.conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise OperationalError(sql, args, exc) from exc
        finally:
            took = time.monotonic() - started
            if took > SLOW_SECONDS:
                self._paused_until = time.monotonic() + PAUSE_SECONDS
                log.warning("a quota statement on SQLite took %.1f ms; running them off the event loop "
                            "for %.0f s", took * 1000, PAUSE_SECONDS)  # fmt: skip

    def close(self) -> None:
        self.conn.close()

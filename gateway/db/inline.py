"""Short write transactions on a file-backed SQLite database, run on the event loop itself.

A quota reservation is one UPDATE of one row. Through SQLAlchemy's async engine on aiosqlite it costs about
0.65 ms of CPU, mostly five hand-offs to aiosqlite's thread (cursor, execute, close, commit, reset); the
transaction itself costs about 30 µs, less than one hand-off (measured: 175 µs). On SQLite the quota
ledger's statements, and the usage records' inserts, therefore run here, on one connection of their own
(so they never wait for each other), made never to wait:

- `busy_timeout` is 0: when another connection holds the write lock, `begin` says so at once (None) and
  the caller waits, or takes the engine's path, in aiosqlite's thread, where waiting harms nobody;
- this connection never checkpoints (a checkpoint writes the database file and syncs it): `checkpoint`
  runs one through the engine, in its thread;
- in WAL mode with `synchronous=NORMAL` a commit appends to the WAL without syncing it;
- a statement slower than `SLOW_SECONDS` (a disk in trouble) turns the path off for `PAUSE_SECONDS`.

Statements are SQLAlchemy Core statements, compiled once with the engine's dialect, their parameters
converted by the columns' own bind processors (dates, JSON), so each statement is written once, in the
repositories. Errors are raised as SQLAlchemy's, as the engine would raise them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

log = logging.getLogger("gateway.db")

SLOW_SECONDS = 0.05  # a disk in trouble, not a busy CPU (a descheduled thread can lose 30 ms)
PAUSE_SECONDS = 30.0
Params = dict[str, Any] | None
Processor = Callable[[Any], Any]
Compiled = tuple[str, tuple[str, ...], dict[str, Any], tuple[tuple[int, Processor], ...]]


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

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    def executemany(self, sql: str, rows: list[Any]) -> None:
        """`sql` (already in SQLite's terms) once per row, the rows' values already converted."""
        self._db.run(sql, rows, many=True)


class InlineSQLite:
    # Tests: called with each statement's SQL before it runs (raising makes it fail).
    before_execute: Callable[[str], None] | None = None

    def __init__(self, path: str, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: Dialect = engine.dialect
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=0")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._compiled: weakref.WeakKeyDictionary[ClauseElement, Compiled] = weakref.WeakKeyDictionary()
        self._paused_until = 0.0

    @classmethod
    def beside(cls, engine: AsyncEngine) -> InlineSQLite | None:
        """For the engine's database if it is a SQLite file (put in WAL mode); None for anything else."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        try:
            db = cls(url.database, engine)
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
        """The SQL of a statement and its arguments in order, converted for the driver."""
        sql, names, fixed, processors = self._compiled_for(statement)
        values = {**fixed, **(parameters or {})}
        args = [values[name] for name in names]
        for i, process in processors:
            args[i] = process(args[i])
        return sql, tuple(args)

    def _compiled_for(self, statement: ClauseElement) -> Compiled:
        entry = self._compiled.get(statement)
        if entry is None:
            compiled = cast(SQLCompiler, statement.compile(dialect=self.dialect))
            names = tuple(compiled.positiontup or ())  # qmark: the binds in SQL order
            binds = compiled.binds
            fixed = {name: bind.effective_value for name, bind in binds.items()}  # the literals
            processors = tuple(
                (i, process)
                for i, name in enumerate(names)
                if (process := binds[name].type.dialect_impl(self.dialect).bind_processor(self.dialect))
            )
            entry = (compiled.string, names, fixed, processors)
            self._compiled[statement] = entry
        return entry

    def alone(self, statement: ClauseElement, parameters: Params) -> int | None:
        """One statement, committed on its own: its row count. None when the database is busy, this path is
        paused, or the statement failed: nothing has been done, use the engine (which waits, or says)."""
        if self.paused or self.conn.in_transaction:
            return None
        try:
            return self.run(*self.bound(statement, parameters)).rowcount
        except DBAPIError:
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

    def run(self, sql: str, args: Any = (), many: bool = False) -> sqlite3.Cursor:
        if self.before_execute is not None:
            self.before_execute(sql)
        started = time.monotonic()
        try:
            return self.conn.executemany(sql, args) if many else self.conn.execute(sql, args)
        except sqlite3.Error as exc:  # as SQLAlchemy wraps it: IntegrityError, OperationalError, ...
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
        finally:
            took = time.monotonic() - started
            if took > SLOW_SECONDS:
                self._paused_until = time.monotonic() + PAUSE_SECONDS
                log.warning("a statement on SQLite took %.1f ms; running statements off the event loop "
                            "for %.0f s", took * 1000, PAUSE_SECONDS)  # fmt: skip

    async def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file, off the event loop (the engine's thread); never
        waits for readers or writers (PASSIVE)."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self.conn.close()

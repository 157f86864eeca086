"""The quota statements on a SQLite file run on the event loop (db/inline.py), and never make it wait: a
database another connection holds, or a statement that was slow, sends them through the engine instead."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

from gateway.billing import ledger as ledger_module
from gateway.billing import usage_writer
from gateway.billing.ledger import QuotaLedger
from gateway.billing.usage_writer import UsageWriter
from gateway.db import inline, migrate
from gateway.db.inline import InlineSQLite
from gateway.db.models import Token, UsageRecordRow
from gateway.db.session import create_engine, create_sessionmaker
from gateway.domain import Attempt
from gateway.settings import DatabaseSettings, UsageSettings
from tests.billing.test_ledger import GatedCharges, Sessions, make_token, state
from tests.billing.test_usage_writer import record
from tests.db.conftest import in_thread


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.db"
    in_thread(migrate.upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def sessions(db_path: Path) -> AsyncIterator[Sessions]:
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{db_path}"))
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def ledger(sessions: Sessions) -> Iterator[QuotaLedger]:
    inline = InlineSQLite.beside(sessions.kw["bind"])
    assert inline is not None
    yield QuotaLedger(sessions, inline=inline)
    inline.close()


class EngineUpdates:
    def __init__(self, sessions: Sessions) -> None:
        self.count = 0
        event.listen(sessions.kw["bind"].sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.count += statement.lstrip().upper().startswith("UPDATE TOKENS")


async def test_statements_run_inline_when_the_database_is_free(
    sessions: Sessions, ledger: QuotaLedger
) -> None:
    engine = EngineUpdates(sessions)
    await make_token(sessions, "tok", quota=10_000)
    assert await ledger.reserve("tok", 4_000) is True
    assert ledger.settle("tok", reserved=4_000, cost=1_000) is None  # a refund, applied at once
    assert await ledger.reserve("tok", 2_000) is True
    assert ledger.settle("tok", reserved=2_000, cost=3_000) is None  # an extra charge that fits
    assert ledger.pending == 0  # no task, no batch
    assert engine.count == 0
    assert await state(sessions, "tok") == (10_000, 4_000)  # the engine's connections see the commits


async def test_an_extra_charge_that_does_not_fit_goes_to_zero_with_a_shortfall(
    sessions: Sessions, ledger: QuotaLedger
) -> None:
    await make_token(sessions, "tok", quota=10_000, used=9_000)
    task = ledger.settle("tok", reserved=0, cost=3_000)
    assert task is not None and await task == 2_000
    assert await state(sessions, "tok") == (10_000, 10_000)


async def test_a_token_with_a_statement_queued_is_not_overtaken(
    sessions: Sessions, ledger: QuotaLedger, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first reservation waits on the engine's path; the second, issued while it waits, queues behind
    it even though the database is free by then: the serial outcome (the first fits, the second not)."""
    await make_token(sessions, "tok", quota=5_000)
    monkeypatch.setattr(ledger_module, "BUSY_TRIES", 1)  # straight to the engine's path
    gated = GatedCharges(monkeypatch)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    first = asyncio.ensure_future(ledger.reserve("tok", 4_000))
    await gated.entered.wait()  # on the engine's path: the database was busy
    holder.execute("COMMIT")
    holder.close()
    second = asyncio.ensure_future(ledger.reserve("tok", 3_000))
    await asyncio.sleep(0)
    assert not second.done() and gated.charged == [4_000]
    gated.gate.set()
    assert await asyncio.gather(first, second) == [True, False]
    assert gated.charged == [4_000, 3_000]
    assert await state(sessions, "tok") == (5_000, 4_000)


async def test_a_busy_database_makes_the_reservation_wait_without_blocking_the_loop(
    sessions: Sessions, ledger: QuotaLedger, db_path: Path
) -> None:
    """Another writer holds the database: the reservation waits for it (the loop turning meanwhile), and the
    token's next ones queue behind it; once the database is free they run inline, the queued ones as one."""
    assert ledger.inline is not None
    assert ledger.inline.conn.execute("PRAGMA busy_timeout").fetchone() == (0,)  # it never waits for a lock
    updates: list[str] = []
    ledger.inline.before_execute = updates.append
    engine = EngineUpdates(sessions)
    await make_token(sessions, "tok", quota=10_000)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reserving = [asyncio.ensure_future(ledger.reserve("tok", 4_000))]
        for _ in range(20):  # the loop keeps turning while the reservation waits for the lock
            await asyncio.sleep(0)
        reserving += [asyncio.ensure_future(ledger.reserve("tok", 1_000)) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(r.done() for r in reserving)
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert await asyncio.gather(*reserving) == [True] * 4
    assert engine.count == 0
    # The first's attempt at once (busy), its batch, then the three queued behind it as one statement.
    assert sum(u.startswith("UPDATE") for u in updates) == 3
    assert await state(sessions, "tok") == (10_000, 7_000)


async def test_a_database_busy_for_long_sends_the_batch_through_the_engine(
    sessions: Sessions, ledger: QuotaLedger, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "BUSY_TRIES", 1)
    engine = EngineUpdates(sessions)
    await make_token(sessions, "tok", quota=10_000)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reserving = asyncio.ensure_future(ledger.reserve("tok", 4_000))
        while engine.count == 0:  # it gave up on the inline path: its connection waits in its thread
            await asyncio.sleep(0.001)
        assert not reserving.done()
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert await reserving is True
    assert await state(sessions, "tok") == (10_000, 4_000)


async def test_a_slow_statement_pauses_the_inline_path(
    sessions: Sessions, ledger: QuotaLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = EngineUpdates(sessions)
    await make_token(sessions, "tok", quota=10_000)
    monkeypatch.setattr(inline, "SLOW_SECONDS", -1.0)  # every statement counts as slow
    assert await ledger.reserve("tok", 1_000) is True
    assert engine.count == 0  # that one ran inline, and was "slow"
    assert await ledger.reserve("tok", 1_000) is True
    assert engine.count == 1  # the next one went through the engine
    assert await state(sessions, "tok") == (10_000, 2_000)


async def test_only_a_sqlite_file_runs_inline_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    sqlite3.connect(path).close()  # a rollback journal, as a new file has
    urls = {
        "sqlite+aiosqlite://": False,
        "sqlite+aiosqlite:///:memory:": False,
        "postgresql+asyncpg://u@127.0.0.1/db": False,
        f"sqlite+aiosqlite:///{tmp_path}": False,  # a directory: cannot be opened
        f"sqlite+aiosqlite:///{path}": True,
    }
    for url, runs_inline in urls.items():
        engine = create_engine(DatabaseSettings(url=url))
        db = InlineSQLite.beside(engine)
        assert (db is not None) is runs_inline, url
        if db is not None:
            db.close()
        await engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_usage_records_are_written_inline(sessions: Sessions, ledger: QuotaLedger) -> None:
    """The same connection as the quota statements: a batch, its tokens' `last_used_at`, dates and JSON
    converted as the engine converts them."""
    statements: list[str] = []
    event.listen(sessions.kw["bind"].sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    await make_token(sessions, "tok", quota=None)
    statements.clear()
    writer = UsageWriter(sessions, UsageSettings(), ledger.inline)
    attempt = Attempt(channel="c", key_index=0, status=200, duration_ms=5)
    for i in range(3):
        writer.submit(record(i, token_id="tok", attempts=[attempt]))
    assert await writer.flush() is True
    assert statements == []  # nothing through the engine
    async with sessions() as session:
        rows = (await session.execute(select(UsageRecordRow).order_by(UsageRecordRow.id))).scalars().all()
        token = await session.get(Token, "tok")
    assert [(r.request_id, r.created_at, r.attempts) for r in rows] == [
        (f"req-{i}", record(i).created_at.replace(tzinfo=None), [attempt.as_dict()]) for i in range(3)
    ]
    assert token is not None and token.last_used_at == record(2).created_at.replace(tzinfo=None)


async def test_the_usage_writer_checkpoints_the_wal_from_the_engines_thread(
    sessions: Sessions, ledger: QuotaLedger, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ledger.inline is not None
    monkeypatch.setattr(usage_writer, "CHECKPOINT_SECONDS", 0.0)
    checkpointed = asyncio.Event()
    real = ledger.inline.checkpoint

    async def watched() -> None:
        await real()
        checkpointed.set()

    monkeypatch.setattr(ledger.inline, "checkpoint", watched)
    writer = UsageWriter(sessions, UsageSettings(batch_size=2), ledger.inline)
    writer.start()
    writer.submit(record(0))
    writer.submit(record(1))  # a full batch wakes the writer
    await checkpointed.wait()
    await writer.stop()
    with sqlite3.connect(db_path) as conn:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and frames == copied  # nothing left in the WAL that is not in the database file

"""Real database errors sorted into "unreachable, retry later" and "refused these values"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.db.errors import DATABASE_ERRORS, describe, is_outage, is_refusal
from tests.db.conftest import PG_URL, requires_postgres
from tests.fakes.server import free_port


async def failure(engine: AsyncEngine, sql: str, **params: object) -> Exception:
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    except Exception as exc:
        assert isinstance(exc, DATABASE_ERRORS) or is_refusal(exc), repr(exc)
        return exc
    raise AssertionError("the statement did not fail")


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def pg() -> AsyncIterator[AsyncEngine]:
    assert PG_URL
    engine = create_async_engine(PG_URL)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_sqlite_refusals(sqlite: AsyncEngine) -> None:
    overflow = await failure(sqlite, "SELECT :x", x=2**70)
    surrogate = await failure(sqlite, "SELECT :x", x="a\ud800")
    async with sqlite.begin() as conn:
        await conn.execute(text("CREATE TABLE t (a INTEGER NOT NULL)"))
    not_null = await failure(sqlite, "INSERT INTO t VALUES (NULL)")
    for exc in (overflow, surrogate, not_null):
        assert is_refusal(exc) and not is_outage(exc), repr(exc)


async def test_connection_refused_is_an_outage() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        exc = await failure(engine, "SELECT 1")
    finally:
        await engine.dispose()
    assert is_outage(exc) and not is_refusal(exc)


@requires_postgres
@pytest.mark.postgres
async def test_postgres_refusals(pg: AsyncEngine) -> None:
    cases = [
        ("SELECT CAST(:x AS INTEGER)", {"x": 2**40}),  # refused by the driver, as an InterfaceError
        ("SELECT CAST(:x AS VARCHAR)", {"x": "a\x00b"}),  # refused by the server
        ("SELECT CAST(:x AS VARCHAR)", {"x": "a\ud800"}),
    ]
    for sql, params in cases:
        exc = await failure(pg, sql, **params)
        assert is_refusal(exc) and not is_outage(exc), describe(exc)
        assert "SELECT" not in describe(exc)  # the statement and its parameters stay out of logs


@requires_postgres
@pytest.mark.postgres
async def test_postgres_connection_lost_is_an_outage(pg: AsyncEngine) -> None:
    exc = await failure(pg, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert is_outage(exc) and not is_refusal(exc)
    missing = await failure(pg, "SELECT * FROM no_such_table_here")
    assert not is_outage(missing) and not is_refusal(missing)  # neither: the writer's "unsure" case

"""The usage records' prepared batch insert stores exactly what SQLAlchemy's Core insert stores, column by
column as the database holds it (SQLite's datetime text, JSON text, booleans), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import migrate
from gateway.db.fit import fit_row
from gateway.db.models import UsageRecordRow
from gateway.db.repositories import USAGE_TABLE, insert_usage_records
from gateway.db.session import create_engine, create_sessionmaker
from gateway.db.usage_rows import prepared_insert, usage_row
from gateway.domain import Attempt, Usage, UsageRecord
from gateway.settings import DatabaseSettings
from tests.db.conftest import in_thread, requires_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        in_thread(migrate.upgrade, url)
    else:
        url = request.getfixturevalue("pg_migrated")
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(UsageRecordRow))
        yield engine
    finally:
        await engine.dispose()


def _records(prefix: str) -> list[UsageRecord]:
    full = UsageRecord(
        request_id=f"{prefix}-full",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC),
        token_id="tok_1",
        group="default",
        endpoint="/v1/chat/completions",
        model="gpt-x",
        stream=True,
        upstream_model="gpt-x-up",
        channel="primary",
        attempts=[Attempt("backup", 1, "timeout", 30_000), Attempt("primary", 0, 200, 12)],
        status="success",
        http_status=200,
        latency_ms=1020,
        ttfb_ms=300,
        usage=Usage(50, 4200, 4250, 30, 10, 10, 40, 4160),
        image_count=2,
        image_size="1024x1024",
        image_quality="high",
        unit_price_micro_usd=28_000,
        cost_micro_usd=56_000,
        usage_estimated=True,
        shortfall_micro_usd=7,
    )
    # Defaults and None everywhere they may be; a string over its column's width and an integer over
    # its range, both made to fit.
    bare = UsageRecord(
        request_id=f"{prefix}-bare",
        created_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        token_id="tok_2",
        group="g" * 300,
        endpoint="/v1/images/generations",
        model="m\x00odel",
        stream=False,
        latency_ms=2**40,
    )
    return [full, bare]


async def _stored(engine: AsyncEngine, prefix: str) -> list[dict[str, Any]]:
    columns = [c for c in USAGE_TABLE.columns if c.name != "id"]
    sql = f"SELECT {', '.join(engine.dialect.identifier_preparer.quote(c.name) for c in columns)} "
    sql += "FROM usage_records WHERE request_id LIKE '" + prefix + "-%' ORDER BY request_id"
    async with engine.connect() as conn:  # driver values: what the database holds, no type processing
        rows = (await conn.exec_driver_sql(sql)).all()
    return [
        {
            c.name: (v if c.name != "request_id" else v.split("-", 1)[1])
            for c, v in zip(columns, row, strict=True)
        }
        for row in rows
    ]


async def test_the_prepared_insert_stores_what_the_core_insert_stores(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await session.execute(
            insert(USAGE_TABLE), [fit_row(USAGE_TABLE, usage_row(r)) for r in _records("core")]
        )
        await insert_usage_records(session, _records("prepared"))
    core, prepared = await _stored(engine, "core"), await _stored(engine, "prepared")
    assert len(core) == 2
    assert prepared == core
    async with sessions() as session:
        rows = (
            (await session.execute(select(UsageRecordRow).order_by(UsageRecordRow.request_id)))
            .scalars()
            .all()
        )
    by_id = {r.request_id: r for r in rows}
    assert by_id["prepared-full"].attempts == [a.as_dict() for a in _records("x")[0].attempts]
    assert by_id["prepared-full"].created_at.replace(tzinfo=UTC) == _records("x")[0].created_at
    assert by_id["prepared-bare"].group == "g" * 100
    assert by_id["prepared-bare"].model == "model"
    assert by_id["prepared-bare"].latency_ms == 2**31 - 1


def test_the_statement_is_compiled_once_per_database(engine: AsyncEngine) -> None:
    first = prepared_insert(USAGE_TABLE, engine.dialect)
    assert prepared_insert(USAGE_TABLE, engine.dialect) is first
    assert "id" not in first.names and len(first.names) == len(USAGE_TABLE.columns) - 1

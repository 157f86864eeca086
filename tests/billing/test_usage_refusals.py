"""A usage record is never refused by the database (§6.5), on SQLite and on PostgreSQL.

Every string is cut to its column's width and every number is kept inside its column's range before
the insert; a batch the database still refuses is written row by row, so the one bad row is logged
with its request id and dropped while the others are written. An outage is not a refusal: then the
records stay buffered and are retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.edge import MAX_ID_LEN
from gateway.billing.usage_writer import UsageWriter
from gateway.db import migrate
from gateway.db.inline import InlineSQLite
from gateway.db.models import Token, UsageRecordRow
from gateway.db.session import create_engine, create_sessionmaker
from gateway.domain import Attempt, Usage, UsageRecord
from gateway.settings import DatabaseSettings, UsageSettings
from tests.db.conftest import in_thread, requires_postgres

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
POSTGRES = pytest.param("postgres", marks=[pytest.mark.postgres, requires_postgres])


# "sqlite-inline": the batches written on the event loop (db/inline.py), as the gateway does on a SQLite file.
@pytest.fixture(params=["sqlite", "sqlite-inline", POSTGRES])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        in_thread(migrate.upgrade, url)  # the migrated schema, widths included
        return url
    pg: str = request.getfixturevalue("pg_migrated")
    return pg


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        async with engine.begin() as conn:  # the PostgreSQL database is shared by the module
            await conn.execute(delete(UsageRecordRow))
            await conn.execute(delete(Token))
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def record(request_id: str, i: int = 0, **kw: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "created_at": T0 + timedelta(seconds=i),
        "token_id": "tok_x",
        "group": "default",
        "endpoint": "/v1/chat/completions",
        "model": "m",
        "stream": False,
        **kw,
    }
    return UsageRecord(request_id=request_id, **values)


@pytest.fixture
def writer(request: pytest.FixtureRequest, sessions: Sessions) -> Iterator[Callable[[Sessions], UsageWriter]]:
    inline = None
    if request.node.callspec.params["db_url"] == "sqlite-inline":
        inline = InlineSQLite.beside(sessions.kw["bind"])
        assert inline is not None
    yield lambda s: UsageWriter(s, UsageSettings(batch_size=50, flush_interval_seconds=60), inline)
    if inline is not None:
        inline.close()


async def rows(sessions: Sessions) -> list[UsageRecordRow]:
    async with sessions() as session:
        return list((await session.execute(select(UsageRecordRow).order_by(UsageRecordRow.id))).scalars())


def width(column: str) -> int:
    type_ = UsageRecordRow.__table__.c[column].type
    assert isinstance(type_, String) and type_.length
    return type_.length


def test_request_id_column_holds_every_id_the_edge_accepts() -> None:
    assert width("request_id") >= MAX_ID_LEN == 128


async def test_oversized_strings_are_cut_to_width_and_the_next_records_follow(
    sessions: Sessions, writer: Callable[[Sessions], UsageWriter]
) -> None:
    long = {
        "token_id": "t" * 300,
        "group": "g" * 300,
        "endpoint": "/" + "e" * 300,
        "model": "m" * 1000,
        "upstream_model": "u" * 1000,
        "channel": "c" * 1000,
        "error_code": "x" * 1000,
        "image_size": "9" * 500,
        "image_quality": "q" * 500,
    }
    w = writer(sessions)
    w.submit(record("r" * 100, **long))
    w.submit(record("R" * 300, 1))  # longer than any id the edge lets through
    for i in range(20):
        w.submit(record(f"after-{i}", i + 2))
    assert await w.flush() is True
    stored = await rows(sessions)
    assert len(stored) == 22
    first = stored[0]
    assert first.request_id == "r" * 100  # fits whole now
    for column, value in long.items():
        assert getattr(first, column) == value[: width(column)], column
    assert (first.image_size, first.error_code) == ("9" * 32, "x" * 100)
    assert stored[1].request_id == "R" * width("request_id")
    assert [r.request_id for r in stored[2:]] == [f"after-{i}" for i in range(20)]
    assert (w.depth, w.written, w.dropped) == (0, 22, 0)


async def test_values_outside_what_a_column_can_hold_are_made_to_fit(
    sessions: Sessions, writer: Callable[[Sessions], UsageWriter]
) -> None:
    """A NUL byte (PostgreSQL text cannot hold one), a lone surrogate (no encoding can) and numbers
    past the column's integer range; JSON escapes them all, so attempts keep theirs."""
    w = writer(sessions)
    huge = Usage(prompt_tokens=2**40, total_tokens=2**40, image_output_tokens=-(2**40))
    w.submit(
        record(
            "nul\x00id",
            error_code="bad\x00code",
            image_quality="hi\ud800gh",
            image_size="1024x\x001024",
            usage=huge,
            cost_micro_usd=2**70,
            latency_ms=2**33,
            attempts=[Attempt("ch\x00an", 0, "x\x00", 1)],
        )
    )
    w.submit(record("next", 1))
    assert await w.flush() is True
    first, second = await rows(sessions)
    assert (first.request_id, first.error_code, first.image_size) == ("nulid", "badcode", "1024x1024")
    assert first.image_quality == "hi?gh"
    assert (first.prompt_tokens, first.image_output_tokens) == (2**31 - 1, -(2**31))
    assert (first.cost_micro_usd, first.latency_ms) == (2**63 - 1, 2**31 - 1)
    assert first.attempts == [{"channel": "ch\x00an", "key_index": 0, "status": "x\x00", "duration_ms": 1}]
    assert second.request_id == "next"


async def refuse_rows_named_refuse(session: AsyncSession) -> None:
    """A trigger that makes the database itself refuse every row whose request id starts with
    `refuse-`, as it would a value it cannot store."""
    if session.bind.dialect.name == "sqlite":
        await session.execute(
            text(
                "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records "
                "WHEN NEW.request_id LIKE 'refuse-%' BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
            )
        )
        return
    await session.execute(
        text(
            "CREATE OR REPLACE FUNCTION refuse_usage() RETURNS trigger AS $$ BEGIN "
            "IF NEW.request_id LIKE 'refuse-%' THEN "
            "RAISE EXCEPTION 'refused by test' USING ERRCODE = '22023'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
    )
    await session.execute(text("DROP TRIGGER IF EXISTS refuse_usage ON usage_records"))
    await session.execute(
        text(
            "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records "
            "FOR EACH ROW EXECUTE FUNCTION refuse_usage()"
        )
    )


async def drop_refusal(session: AsyncSession) -> None:
    if session.bind.dialect.name == "sqlite":
        await session.execute(text("DROP TRIGGER IF EXISTS refuse_usage"))
    else:
        await session.execute(text("DROP TRIGGER IF EXISTS refuse_usage ON usage_records"))


@pytest.fixture
async def refusing(sessions: Sessions) -> AsyncIterator[Sessions]:
    async with sessions() as session, session.begin():
        await refuse_rows_named_refuse(session)
    try:
        yield sessions
    finally:
        async with sessions() as session, session.begin():
            await drop_refusal(session)


async def test_a_refused_row_is_logged_and_dropped_and_the_rest_are_written(
    refusing: Sessions, writer: Callable[[Sessions], UsageWriter], caplog: pytest.LogCaptureFixture
) -> None:
    w = writer(refusing)
    ids = ["a-0", "a-1", "refuse-me-42", "a-3", "refuse-too", "a-5"]
    for i, request_id in enumerate(ids):
        w.submit(record(request_id, i))
    with caplog.at_level("ERROR", logger="gateway.usage"):
        assert await w.flush() is True
    assert [r.request_id for r in await rows(refusing)] == ["a-0", "a-1", "a-3", "a-5"]
    assert (w.depth, w.written) == (0, 4)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2, refused
    assert "refuse-me-42" in refused[0] and "refuse-too" in refused[1]
    assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback

    # The dropped rows do not come back; later records are written at once.
    w.submit(record("a-6", 6))
    assert await w.flush() is True
    assert [r.request_id for r in await rows(refusing)][-1] == "a-6"

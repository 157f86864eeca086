from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth import manage
from gateway.billing.usage_writer import UsageWriter
from gateway.db.models import Token, UsageRecordRow
from gateway.domain import Attempt, Usage, UsageRecord
from gateway.settings import UsageSettings

Sessionmaker = async_sessionmaker[AsyncSession]
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(i: int, token_id: str = "tok_x", **kw: Any) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{i}",
        created_at=T0 + timedelta(seconds=i),
        token_id=token_id,
        group="default",
        endpoint="/v1/chat/completions",
        model="m",
        stream=False,
        **kw,
    )


async def count_rows(sm: Sessionmaker) -> int:
    async with sm() as session:
        return (await session.execute(select(func.count()).select_from(UsageRecordRow))).scalar_one()


async def request_ids(sm: Sessionmaker) -> list[str]:
    async with sm() as session:
        rows = await session.execute(select(UsageRecordRow.request_id).order_by(UsageRecordRow.id))
        return list(rows.scalars())


class Watched:
    """A sessionmaker that tells the test each time a session has closed (its transaction is over) or
    could not be opened, so a test waits for the writer's progress instead of sleeping."""

    def __init__(self, inner: Sessionmaker) -> None:
        self.inner = inner
        self.changed = asyncio.Event()

    def __call__(self) -> _WatchedSession:
        return _WatchedSession(self)

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` holds; it is checked after every session (the timeout only stops a hang)."""
        while not done():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=20)


class _WatchedSession:
    def __init__(self, maker: Watched) -> None:
        self.maker = maker
        self.session = maker.inner()

    async def __aenter__(self) -> AsyncSession:
        return await self.session.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.session.__aexit__(*exc)
        finally:
            self.maker.changed.set()


class FlakySessionmaker(Watched):
    """A sessionmaker that refuses (like a database that is down) until `up` is set."""

    def __init__(self, inner: Sessionmaker) -> None:
        super().__init__(inner)
        self.up = False
        self.failures = 0

    def __call__(self) -> _WatchedSession:
        if not self.up:
            self.failures += 1
            self.changed.set()
            raise ConnectionRefusedError("database is down")
        return super().__call__()


class SlowSessionmaker:
    """Sessions that take `delay` seconds to open, like a database under load."""

    def __init__(self, inner: Sessionmaker, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.opening = asyncio.Event()

    def __call__(self) -> SlowSession:
        return SlowSession(self)


class SlowSession:
    def __init__(self, maker: SlowSessionmaker) -> None:
        self.maker = maker
        self.session: AsyncSession | None = None

    async def __aenter__(self) -> AsyncSession:
        self.maker.opening.set()
        await asyncio.sleep(self.maker.delay)
        self.session = self.maker.inner()
        return await self.session.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        assert self.session is not None
        await self.session.__aexit__(*exc)


def writer(sm: Sessionmaker | Watched | SlowSessionmaker, **settings: Any) -> UsageWriter:
    return UsageWriter(cast(Sessionmaker, sm), UsageSettings(**settings))


async def test_stop_flushes_everything(sessionmaker: Sessionmaker) -> None:
    w = writer(sessionmaker, batch_size=7, flush_interval_seconds=60)
    w.start()
    for i in range(50):
        w.submit(record(i))
    await w.stop()
    assert await count_rows(sessionmaker) == 50
    assert sorted(await request_ids(sessionmaker)) == sorted(f"req-{i}" for i in range(50))
    assert (w.depth, w.written, w.dropped) == (0, 50, 0)


async def test_stop_without_start_still_flushes(sessionmaker: Sessionmaker) -> None:
    w = writer(sessionmaker)
    for i in range(3):
        w.submit(record(i))
    await w.stop()
    assert await count_rows(sessionmaker) == 3


async def test_full_batch_wakes_the_writer(sessionmaker: Sessionmaker) -> None:
    watched = Watched(sessionmaker)
    w = writer(watched, batch_size=5, flush_interval_seconds=60)
    w.start()
    try:
        for i in range(5):
            w.submit(record(i))
        await watched.until(lambda: w.written == 5)
        assert await count_rows(sessionmaker) == 5  # written long before the 60 s interval
    finally:
        await w.stop()


async def test_interval_flushes_a_partial_batch(sessionmaker: Sessionmaker) -> None:
    watched = Watched(sessionmaker)
    w = writer(watched, batch_size=100, flush_interval_seconds=0.02)
    w.start()
    try:
        w.submit(record(1))
        await watched.until(lambda: w.written == 1)
        assert await count_rows(sessionmaker) == 1
    finally:
        await w.stop()


async def test_record_fields_are_stored(sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session, session.begin():
        token, _ = await manage.create(session, name="t")
    w = writer(sessionmaker)
    w.submit(
        record(
            1,
            token_id=token.id,
            attempts=[Attempt("a", 0, 429, 12), Attempt("b", 1, 200, 30)],
            status="success",
            http_status=200,
            channel="b",
            usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7, image_output_tokens=4),
            cost_micro_usd=28_000,
        )
    )
    await w.stop()
    async with sessionmaker() as session:
        row = (await session.execute(select(UsageRecordRow))).scalar_one()
        touched = (await session.execute(select(Token.last_used_at).where(Token.id == token.id))).scalar_one()
    assert row.attempts == [
        {"channel": "a", "key_index": 0, "status": 429, "duration_ms": 12},
        {"channel": "b", "key_index": 1, "status": 200, "duration_ms": 30},
    ]
    assert (row.status, row.http_status, row.channel) == ("success", 200, "b")
    assert (row.prompt_tokens, row.total_tokens, row.image_output_tokens) == (3, 7, 4)
    assert row.cost_micro_usd == 28_000
    assert touched is not None and touched.replace(tzinfo=UTC) == T0 + timedelta(seconds=1)


async def test_database_down_keeps_records_buffered(sessionmaker: Sessionmaker) -> None:
    flaky = FlakySessionmaker(sessionmaker)
    w = writer(flaky, batch_size=4)
    for i in range(10):
        w.submit(record(i))
    assert await w.flush() is False
    assert w.depth == 10
    assert w.written == 0
    assert await count_rows(sessionmaker) == 0
    flaky.up = True
    assert await w.flush() is True
    assert w.depth == 0
    assert await request_ids(sessionmaker) == [f"req-{i}" for i in range(10)]  # order kept


async def test_background_writer_retries_until_the_database_is_back(sessionmaker: Sessionmaker) -> None:
    flaky = FlakySessionmaker(sessionmaker)
    w = writer(flaky, batch_size=2, flush_interval_seconds=0.01)
    w.start()
    try:
        for i in range(6):
            w.submit(record(i))
        await flaky.until(lambda: flaky.failures >= 2)  # tried, failed, tried again
        assert w.depth == 6
        flaky.up = True
        await flaky.until(lambda: w.written == 6)
        assert w.written == 6 and w.depth == 0
        assert await count_rows(sessionmaker) == 6
    finally:
        await w.stop()


async def test_stop_while_database_down_loses_nothing_silently(
    sessionmaker: Sessionmaker, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakySessionmaker(sessionmaker)
    w = writer(flaky)
    w.submit(record(1))
    with caplog.at_level("ERROR", logger="gateway.usage"):
        await w.stop()
    assert w.depth == 1
    assert "not written" in caplog.text


async def test_bounded_buffer_drops_the_oldest(sessionmaker: Sessionmaker) -> None:
    flaky = FlakySessionmaker(sessionmaker)
    w = writer(flaky, max_buffer=3, batch_size=100)
    for i in range(5):
        w.submit(record(i))
    assert w.depth == 3
    assert w.dropped == 2
    flaky.up = True
    assert await w.flush()
    assert await request_ids(sessionmaker) == ["req-2", "req-3", "req-4"]


async def test_stop_during_a_write_loses_no_record(sessionmaker: Sessionmaker) -> None:
    slow = SlowSessionmaker(sessionmaker, delay=0.1)
    w = writer(slow, batch_size=2, flush_interval_seconds=60)
    w.start()
    w.submit(record(1))
    w.submit(record(2))  # a full batch: the background task starts writing it
    await asyncio.wait_for(slow.opening.wait(), timeout=20)
    await w.stop()  # SIGTERM while that batch is on its way to the database
    assert await count_rows(sessionmaker) + w.depth == 2
    assert await count_rows(sessionmaker) == 2


async def test_flush_waits_for_the_batch_the_background_task_is_writing() -> None:
    """A caller's flush returning True means every record submitted before it is written, even when the
    background task had already taken them into a batch it was still writing."""
    entered, release = asyncio.Event(), asyncio.Event()
    written: list[str] = []

    class Blocking(UsageWriter):
        async def _write(self, batch: list[UsageRecord]) -> None:
            entered.set()
            await release.wait()
            written.extend(r.request_id for r in batch)

    writer = Blocking(cast(Any, None), UsageSettings(batch_size=10, flush_interval_seconds=60))
    writer.submit(record(1))
    background = asyncio.ensure_future(writer.flush())  # the writer task's own flush, mid-batch
    await entered.wait()
    caller = asyncio.ensure_future(writer.flush())
    await asyncio.sleep(0)
    assert not caller.done()  # it waits for the batch in flight instead of reporting an empty buffer
    release.set()
    assert await caller and await background
    assert written == [record(1).request_id]

"""Usage records are written in batches off the request path.

`submit` never blocks. A background task inserts batches; when the database is down the records
stay buffered (bounded: the oldest are dropped past `max_buffer`, with a log line) and the insert
is retried with backoff. `stop` flushes everything that is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import repositories as repo
from gateway.domain import UsageRecord
from gateway.settings import UsageSettings

log = logging.getLogger("gateway.usage")


class UsageWriter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: UsageSettings) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._buffer: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.dropped = 0
        self.written = 0

    @property
    def depth(self) -> int:
        return len(self._buffer)

    def submit(self, record: UsageRecord) -> None:
        if len(self._buffer) >= self._settings.max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("usage buffer full: %d record(s) dropped so far", self.dropped)
        self._buffer.append(record)
        if len(self._buffer) >= self._settings.batch_size:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the writer finish the batch it is on, then flush everything left."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(self._task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                pass  # a batch cut off mid-write went back into the buffer
            self._task = None
        for _ in range(3):
            if not self._buffer or not await self.flush():
                break
        if self._buffer:
            log.error("usage writer stopped with %d record(s) not written", len(self._buffer))

    async def flush(self) -> bool:
        """Write everything buffered now; False if the database refused."""
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self._settings.batch_size, len(self._buffer)))]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._buffer.extendleft(reversed(batch))
                raise
            except Exception:
                self._buffer.extendleft(reversed(batch))
                log.exception("writing %d usage record(s) failed; will retry", len(batch))
                return False
            self.written += len(batch)
        return True

    async def _write(self, batch: list[UsageRecord]) -> None:
        last_used: dict[str, datetime] = {}
        for record in batch:
            last_used[record.token_id] = max(
                record.created_at, last_used.get(record.token_id, record.created_at)
            )
        async with self._sessionmaker() as session, session.begin():
            await repo.insert_usage_records(session, batch)
            await repo.touch_tokens(session, last_used)

    async def _run(self) -> None:
        backoff = self._settings.flush_interval_seconds
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stopping:
                return  # stop() flushes what is left
            if await self.flush():
                backoff = self._settings.flush_interval_seconds
            else:
                backoff = min(backoff * 2, 30.0)

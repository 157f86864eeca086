"""Usage records are written in batches off the request path.

`submit` never blocks. A background task inserts batches; when the database is down the records
stay buffered (bounded: the oldest are dropped past `max_buffer`, with a log line) and the insert
is retried with backoff. `stop` flushes everything that is left.

A batch the database refuses (not an outage: it is up, but will not take these values) is written
again record by record, so a bad record is logged with its request id and dropped without holding
back the others (§6.5). Records are made to fit their columns before any insert, so that is rare.

On a SQLite file a batch is written on the event loop when the database is free (`db/inline.py`: no
hand-offs to the database thread, and no lock held across turns of the loop, which the quota statements
would wait for); the WAL is then checkpointed every few seconds from the engine's thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import repositories as repo
from gateway.db.errors import DATABASE_ERRORS, describe, is_outage, is_refusal
from gateway.db.inline import InlineSQLite
from gateway.domain import UsageRecord
from gateway.settings import UsageSettings

log = logging.getLogger("gateway.usage")
CHECKPOINT_SECONDS = 5.0


class UsageWriter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: UsageSettings,
        inline: InlineSQLite | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._inline = inline  # a SQLite file: batches written on the event loop when it is free
        self._checkpointed = time.monotonic()
        self._buffer: deque[UsageRecord] = deque()
        self._flushing = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.dropped = 0  # buffer overflow
        self.refused = 0  # records the database would not take
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
        """Write everything buffered now; False if the database could not be reached (the rest stays).

        One flush at a time: a caller's flush waits for the batch the background task is writing, so when it
        returns True every record submitted before the call is in the database."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self._settings.batch_size, len(self._buffer)))]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._buffer.extendleft(reversed(batch))
                raise
            except Exception as exc:
                if is_outage(exc):
                    self._keep(batch, exc)
                    return False
                if not await self._one_by_one(batch):
                    return False
                continue
            self.written += len(batch)
        return True

    async def _one_by_one(self, batch: list[UsageRecord]) -> bool:
        """Write a refused batch record by record; False (the rest kept) if the database went away."""
        unsure: list[tuple[UsageRecord, Exception]] = []  # failed, but not clearly for their values
        wrote = False
        for n, record in enumerate(batch):
            try:
                await self._write([record])
            except asyncio.CancelledError:
                self._buffer.extendleft(reversed([r for r, _ in unsure] + batch[n:]))
                raise
            except Exception as exc:
                if is_outage(exc):
                    self._keep([r for r, _ in unsure] + batch[n:], exc)
                    return False
                if is_refusal(exc):
                    self._drop(record, exc)
                else:
                    unsure.append((record, exc))
                continue
            wrote = True
            self.written += 1
        if unsure and not wrote:
            # Not one record went in, and not because of its values: the database is the problem
            # (a missing table, a read-only replica). Keep them until it is fixed.
            self._keep([r for r, _ in unsure], unsure[0][1])
            return False
        for record, error in unsure:
            self._drop(record, error)
        return True

    def _keep(self, records: list[UsageRecord], exc: Exception) -> None:
        self._buffer.extendleft(reversed(records))
        log.error("writing %d usage record(s) failed; will retry: %s", len(records), describe(exc))

    def _drop(self, record: UsageRecord, exc: Exception) -> None:
        self.refused += 1
        rid = record.request_id
        log.error(
            "usage record %s refused by the database, dropped: %s",
            rid,
            describe(exc),
            extra={"request_id": rid},
        )

    async def _write(self, batch: list[UsageRecord]) -> None:
        last_used: dict[str, datetime] = {}
        for record in batch:
            last_used[record.token_id] = max(
                record.created_at, last_used.get(record.token_id, record.created_at)
            )
        if self._inline is not None:
            with self._inline.begin() as tx:
                if tx is not None:
                    await repo.insert_usage_records(tx, batch)
                    await repo.touch_tokens(tx, last_used)
                    return
        async with self._sessionmaker() as session, session.begin():
            await repo.insert_usage_records(session, batch)
            await repo.touch_tokens(session, last_used)

    async def _checkpoint(self) -> None:
        """Inline writes never checkpoint the WAL (db/inline.py): one every few seconds, in a thread."""
        if self._inline is None or time.monotonic() - self._checkpointed < CHECKPOINT_SECONDS:
            return
        self._checkpointed = time.monotonic()
        try:
            await self._inline.checkpoint()
        except DATABASE_ERRORS as exc:
            log.warning("checkpointing the database's WAL failed: %s", describe(exc))

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
                await self._checkpoint()
            else:
                backoff = min(backoff * 2, 30.0)

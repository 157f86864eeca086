"""Reserve and settle (§6.5): a token's quota moves in single short transactions, never across a call.

- `reserve` is one conditional UPDATE: it adds the estimate to `used` only if the quota covers it.
  It runs in a task of its own, so a request cancelled while it waits cannot leave a reservation
  behind: the task refunds what it reserved.
- `settle` charges the difference between the real cost and the reservation: a refund, an extra charge
  the quota covers, or, when it cannot, the quota down to exactly zero and the rest returned as the
  shortfall. A settlement the database refuses is retried in the background until it is applied;
  `drain` waits for the ones still running when the process stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db import repositories as repo
from gateway.errors import ServiceUnavailable

log = logging.getLogger("gateway.billing")

T = TypeVar("T")
CAS_ROUNDS = 20  # compare-and-set rounds of a settlement that overflows the quota (each one is raced)


class QuotaLedger:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], max_retry_delay: float = 5.0) -> None:
        self._sessionmaker = sessionmaker
        # Core connections, not ORM sessions: a reservation runs on every priced request of a token with a
        # quota, and a session costs about as much again as the statement (measured: 1.3 vs 0.6 ms CPU).
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        self._max_retry_delay = max_retry_delay
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def reserve(self, token_id: str, micro_usd: int) -> bool:
        """Take `micro_usd` from the token's quota now, or say that it does not cover it."""
        task = self._spawn(self._reserve(token_id, micro_usd))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: self._undo(t, token_id, micro_usd))
            raise

    def settle(self, token_id: str, reserved: int, cost: int) -> asyncio.Task[int] | None:
        """Move `used` from the reservation to the real cost; the task's result is the shortfall.
        None when there is nothing to change (no database round trip at all)."""
        delta = cost - reserved
        if delta == 0:
            return None
        return self._spawn(self._settle(token_id, delta))

    async def wait_idle(self) -> None:
        """Wait until no reservation or settlement is running (tests, and orderly hand-overs)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
            await asyncio.sleep(0)  # let their done callbacks (a refund, a record) run

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for running reservations and settlements (at shutdown); log what could not finish."""
        self._stopping = True
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:  # a finished reservation may start its refund: wait for that one too
            left = deadline - asyncio.get_running_loop().time()
            _, late = await asyncio.wait(set(self._tasks), timeout=max(left, 0))
            if late and left <= 0:
                for task in late:
                    task.cancel()
                log.error("%d quota settlement(s) not applied at shutdown", len(late))
                return
            await asyncio.sleep(0)  # let the done callbacks of the finished ones run

    # -- internals -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _undo(self, task: asyncio.Task[bool], token_id: str, micro_usd: int) -> None:
        if not task.cancelled() and task.exception() is None and task.result():
            self.settle(token_id, micro_usd, 0)

    async def _reserve(self, token_id: str, micro_usd: int) -> bool:
        try:
            async with self._engine.begin() as session:
                return await repo.charge_within_quota(session, token_id, micro_usd)
        except (SQLAlchemyError, OSError):
            log.exception("reserving quota for token %s failed", token_id)
            raise ServiceUnavailable(
                "The quota cannot be checked right now; try again shortly.", code="quota_unavailable"
            ) from None

    async def _settle(self, token_id: str, delta: int) -> int:
        delay = 0.05
        while True:
            try:
                return await self._apply(token_id, delta)
            except (SQLAlchemyError, OSError):
                if self._stopping:
                    log.exception("settling %d micro-USD on token %s failed at shutdown", delta, token_id)
                    raise
                log.warning("settling %d micro-USD on token %s failed; will retry", delta, token_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def _apply(self, token_id: str, delta: int) -> int:
        if delta < 0:
            async with self._engine.begin() as session:
                await repo.refund_used(session, token_id, -delta)
            return 0
        for _ in range(CAS_ROUNDS):
            async with self._engine.begin() as session:
                if await repo.charge_within_quota(session, token_id, delta):
                    return 0
            async with self._engine.begin() as session:
                state = await repo.quota_state(session, token_id)
            if state is None:
                return delta  # the token is gone
            quota, used = state
            if quota is None or quota - used >= delta:
                continue  # the quota changed under us: the plain charge fits now
            room = max(quota - used, 0)
            if room == 0:
                return delta
            async with self._engine.begin() as session:
                if await repo.charge_if_unchanged(session, token_id, used, quota, room):
                    return delta - room
        log.error("settling token %s: the quota kept changing; %d micro-USD not charged", token_id, delta)
        return delta

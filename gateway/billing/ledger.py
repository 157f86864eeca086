"""Reserve and settle (§6.5): a token's quota moves in short transactions, never across a call.

The requests of one token are decided in batches (`coalesce.Coalescer`: those queued in the same
event-loop turn, or while the token's previous statement runs), one transaction per batch:

- `reserve` is one conditional UPDATE for the whole batch: it adds the sum of the estimates to `used`
  only if the quota covers it. When it does not, the same transaction decides them one at a time in
  arrival order, so the outcome is the serial one: exactly the requests that fit succeed, never below
  zero. A request that follows a refused one and asks as much or more is refused without a statement.
  A request cancelled while it waits cannot leave a reservation behind: it is refunded when granted.
- `settle` charges the difference between the real cost and the reservation: a refund, an extra charge
  the quota covers, or, when it cannot, the quota down to exactly zero and the rest returned as the
  shortfall. A batch's refunds are one statement and its extra charges one more when their sum fits
  (refunds first); otherwise each charge is settled on its own. A settlement the database refuses is
  retried in the background until it is applied; `drain` waits for the ones still running when the
  process stops.

On a SQLite file, statements run on the event loop itself when the database is free (`db/inline.py`): one
costs less CPU than a hand-off to aiosqlite's thread. There, a token with nothing queued is reserved or
settled at once, alone, with no task and no batch (about 30 µs of CPU; the queue is what keeps the serial
order, so a token with anything queued joins the queue); a batch's transaction runs inline too. When the
database is busy, and on PostgreSQL, the statements run on the engine's connections.

A busy token with quota to spare needs no statement at all: its reservations and settlements are taken
from a block of quota this process holds (`billing/leases.py`), and only the reservation that the block
does not cover runs a statement, which takes the next block with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.billing.coalesce import Coalescer, Pending
from gateway.billing.leases import Leases
from gateway.db import repositories as repo
from gateway.db.inline import InlineSQLite
from gateway.errors import ServiceUnavailable

log = logging.getLogger("gateway.billing")

T = TypeVar("T")
BUSY_TRIES, BUSY_WAIT_SECONDS = 20, 0.002  # a batch waits this long for a busy SQLite file (see _transaction)
CAS_ROUNDS = 20  # compare-and-set rounds of a settlement that overflows the quota (each one is raced)


class QuotaLedger:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        max_retry_delay: float = 5.0,
        inline: InlineSQLite | None = None,
        block_requests: int = 0,
    ) -> None:
        # Core connections, not ORM sessions: a reservation runs on every priced request of a token with a
        # quota, and a session costs about as much again as the statement (measured: 1.3 vs 0.6 ms CPU).
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        # On a SQLite file, on the event loop when the database is free (db/inline.py: 30 µs, not 0.65 ms).
        self.inline = inline
        self._max_retry_delay = max_retry_delay
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._reserves = Coalescer[bool](self._reserve_batch, self._spawn)
        self._settles = Coalescer[int](self._settle_batch, self._spawn)
        self.leases = Leases(block_requests, self._give_back)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def reserve(self, token_id: str, micro_usd: int) -> bool:
        """Take `micro_usd` from the token's quota now, or say that it does not cover it."""
        if self.leases.take(token_id, micro_usd):
            return True
        if not self._reserves.busy(token_id):
            done = self._reserve_at_once(token_id, micro_usd)
            if done is not None:
                return done
        decided = self._reserves.submit(token_id, micro_usd)
        try:
            return await asyncio.shield(decided)
        except asyncio.CancelledError:
            decided.add_done_callback(lambda f: self._undo(f, token_id, micro_usd))
            raise

    def settle(self, token_id: str, reserved: int, cost: int) -> asyncio.Task[int] | None:
        """Move `used` from the reservation to the real cost; the task's result is the shortfall.
        None when there is nothing to change, or when it was applied at once with no shortfall."""
        delta = cost - reserved
        if delta == 0 or (
            self.leases.put_back(token_id, -delta) if delta < 0 else self.leases.take(token_id, delta)
        ):
            return None
        return self._change(token_id, delta)

    def _change(self, token_id: str, delta: int) -> asyncio.Task[int] | None:
        """A settlement on the token's row: at once when nothing of the token's is queued, else batched."""
        if not self._settles.busy(token_id):
            if delta < 0:
                done = self._at_once(repo.REFUND_USED, token_id, -delta, refund=True)
            else:
                done = self._at_once(repo.CHARGE_WITHIN_QUOTA, token_id, delta)
            if done:
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
        self.leases.release_all()
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

    def _reserve_at_once(self, token_id: str, micro_usd: int) -> bool | None:
        """A reservation of a token with nothing queued, inline: with the next block when it may take one."""
        take = self.leases.ask([micro_usd], token_id)
        if take is not None:
            done = self._at_once(repo.CHARGE_WITHIN_QUOTA, token_id, take)
            if done is None:
                return None
            if done:
                self.leases.granted(token_id, take - micro_usd)
                return True
            self.leases.refused(token_id)
        return self._at_once(repo.CHARGE_WITHIN_QUOTA, token_id, micro_usd)

    def _give_back(self, token_id: str, micro_usd: int) -> None:
        """A block's unspent part back to the token's row."""
        self._change(token_id, -micro_usd)

    def _at_once(self, statement: Any, token_id: str, micro_usd: int, refund: bool = False) -> bool | None:
        """A token with nothing queued: its statement inline, now, with no task or batch (db/inline.py).
        Whether it changed the row (a refund always counts as applied); None if it could not run."""
        if self.inline is None:
            return None
        rows = self.inline.alone(statement, {"token_id": token_id, "micro_usd": micro_usd})
        return None if rows is None else (refund or rows > 0)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[repo.Executor]:
        """A batch's transaction: inline when the database is free. While another connection writes (another
        process, an admin change), the batch waits for it rather than paying for the engine's path; after
        `BUSY_TRIES` it takes that path, whose connection waits in its thread."""
        tries = 0
        while self.inline is not None and not self.inline.paused and tries < BUSY_TRIES:
            with self.inline.begin() as tx:
                if tx is not None:
                    yield tx
                    return
            tries += 1
            await asyncio.sleep(BUSY_WAIT_SECONDS)
        async with self._engine.begin() as conn:
            yield conn

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _undo(self, decided: asyncio.Future[bool], token_id: str, micro_usd: int) -> None:
        if not decided.cancelled() and decided.exception() is None and decided.result():
            self.settle(token_id, micro_usd, 0)

    async def _reserve_batch(self, token_id: str, batch: list[Pending[bool]]) -> None:
        amounts = [p.amount for p in batch]
        take = self.leases.ask(amounts, token_id)
        block: int | None = None
        try:
            async with self._transaction() as conn:
                if take is not None and await repo.charge_within_quota(conn, token_id, take):
                    block, granted = take - sum(amounts), [True] * len(batch)
                else:
                    granted = await _grant(conn, token_id, amounts)
        except (SQLAlchemyError, OSError):
            log.exception("reserving quota for token %s failed (%d request(s))", token_id, len(batch))
            for pending in batch:
                pending.fail(
                    ServiceUnavailable(
                        "The quota cannot be checked right now; try again shortly.", code="quota_unavailable"
                    )
                )
            return
        if block is not None:
            self.leases.granted(token_id, block)
        elif take is not None:
            self.leases.refused(token_id)
        for pending, ok in zip(batch, granted, strict=True):
            pending.resolve(ok)

    async def _settle_batch(self, token_id: str, batch: list[Pending[int]]) -> None:
        """Refunds first (one statement), then the extra charges: one statement if their sum fits, else
        one at a time (each may take the quota to zero and come back with a shortfall)."""
        refunds = [p for p in batch if p.amount < 0]
        charges = [p for p in batch if p.amount > 0]
        async with self._transaction() as conn:
            if refunds:
                await repo.refund_used(conn, token_id, -sum(p.amount for p in refunds))
            fits = bool(charges) and await repo.charge_within_quota(
                conn, token_id, sum(p.amount for p in charges)
            )
        for pending in (*refunds, *charges) if fits else refunds:
            pending.resolve(0)
        if fits:
            return
        for pending in charges:  # the sum does not fit: in arrival order, as if one after the other
            try:
                pending.resolve(await self._apply(token_id, pending.amount, tried=len(charges) == 1))
            except (SQLAlchemyError, OSError) as exc:
                pending.fail(exc)  # its settlement retries it; the next ones are still tried

    async def _settle(self, token_id: str, delta: int) -> int:
        delay = 0.05
        while True:
            try:
                return await self._settles.submit(token_id, delta)
            except (SQLAlchemyError, OSError):
                if self._stopping:
                    log.exception("settling %d micro-USD on token %s failed at shutdown", delta, token_id)
                    raise
                log.warning("settling %d micro-USD on token %s failed; will retry", delta, token_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def _apply(self, token_id: str, delta: int, tried: bool = False) -> int:
        """An extra charge on its own: within the quota, or the quota to exactly zero and the shortfall.
        `tried`: the plain charge was just refused, go straight to reading the quota."""
        for _ in range(CAS_ROUNDS):
            if not tried:
                async with self._transaction() as session:
                    if await repo.charge_within_quota(session, token_id, delta):
                        return 0
            tried = False
            async with self._transaction() as session:
                state = await repo.quota_state(session, token_id)
            if state is None:
                return delta  # the token is gone
            quota, used = state
            if quota is None or quota - used >= delta:
                continue  # the quota changed under us: the plain charge fits now
            room = max(quota - used, 0)
            if room == 0:
                return delta
            async with self._transaction() as session:
                if await repo.charge_if_unchanged(session, token_id, used, quota, room):
                    return delta - room
        log.error("settling token %s: the quota kept changing; %d micro-USD not charged", token_id, delta)
        return delta


async def _grant(conn: repo.Executor, token_id: str, amounts: list[int]) -> list[bool]:
    """Which of the reservations, in arrival order, the quota covers: all in one statement when their sum
    fits, else one at a time in this transaction (a request that asks as much as a refused one, or more, is
    refused without a statement: at that moment it would not have fit either)."""
    if await repo.charge_within_quota(conn, token_id, sum(amounts)):
        return [True] * len(amounts)
    if len(amounts) == 1:
        return [False]
    granted: list[bool] = []
    refused: int | None = None  # the smallest amount refused so far
    for amount in amounts:
        ok = (refused is None or amount < refused) and await repo.charge_within_quota(conn, token_id, amount)
        if not ok:
            refused = amount if refused is None else min(refused, amount)
        granted.append(ok)
    return granted

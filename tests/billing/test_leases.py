"""Blocks of quota (billing/leases.py): a busy token's reservations and settlements are taken from a block
the process holds, with no statement; near the end of a quota every reservation is a statement again, so
the outcome stays exact; blocks go back when idle, at shutdown, and when an admin changes the token.
Each runs on SQLite inline, SQLite through the engine, and PostgreSQL (the fixtures of test_ledger)."""

from __future__ import annotations

import asyncio

from gateway.billing import leases
from gateway.billing.ledger import QuotaLedger
from tests.billing.test_ledger import NewLedger, Sessions, db_url, make_token, new_ledger, sessions, state

__all__ = ["db_url", "new_ledger", "sessions"]  # fixtures, used by name

TOKEN = "tok_lease"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def with_a_block(sessions: Sessions, new_ledger: NewLedger, quota: int = 1_000_000) -> QuotaLedger:
    """A ledger with blocks of 4 reservations, whose first reservation of 10 took its block of 40."""
    ledger = new_ledger(block_requests=4)
    await make_token(sessions, TOKEN, quota=quota)
    assert await ledger.reserve(TOKEN, 10)
    return ledger


async def test_a_block_serves_the_next_reservations_without_a_statement(
    sessions: Sessions, new_ledger: NewLedger
) -> None:
    ledger = await with_a_block(sessions, new_ledger)
    assert await state(sessions, TOKEN) == (1_000_000, 50)  # its own 10 and a block of 4 x 10
    assert ledger.leases.held(TOKEN) == 40
    assert [await ledger.reserve(TOKEN, 10) for _ in range(4)] == [True] * 4
    assert await state(sessions, TOKEN) == (1_000_000, 50)  # from the block: no statement
    assert await ledger.reserve(TOKEN, 10)  # the block is spent: the next one comes with this one
    assert await state(sessions, TOKEN) == (1_000_000, 100)
    await ledger.drain()  # the unspent block goes back
    assert await state(sessions, TOKEN) == (1_000_000, 60)
    assert ledger.leases.held(TOKEN) == 0


async def test_settlements_are_taken_from_and_given_to_the_block(
    sessions: Sessions, new_ledger: NewLedger
) -> None:
    ledger = await with_a_block(sessions, new_ledger)
    assert ledger.settle(TOKEN, reserved=10, cost=0) is None  # a refund: into the block
    assert ledger.settle(TOKEN, reserved=10, cost=25) is None  # an extra 15: out of it
    assert ledger.leases.held(TOKEN) == 40 + 10 - 15
    assert await state(sessions, TOKEN) == (1_000_000, 50)
    assert ledger.pending == 0
    await ledger.drain()
    assert await state(sessions, TOKEN) == (1_000_000, 15)  # 10 refunded, 25 charged


async def test_near_the_end_of_the_quota_the_outcome_is_exact(
    sessions: Sessions, new_ledger: NewLedger
) -> None:
    """150 reservations of 10 on a quota of 1,000: blocks at first, statements of their own near the end;
    exactly 100 succeed and the quota is spent to exactly zero."""
    ledger = new_ledger(block_requests=4)
    await make_token(sessions, TOKEN, quota=1_000)
    outcomes = await asyncio.gather(*(ledger.reserve(TOKEN, 10) for _ in range(150)))
    assert outcomes.count(True) == 100
    assert await state(sessions, TOKEN) == (1_000, 1_000)
    assert ledger.leases.held(TOKEN) == 0
    await ledger.drain()
    assert await state(sessions, TOKEN) == (1_000, 1_000)


async def test_one_at_a_time_to_the_end_of_the_quota(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger(block_requests=4)
    await make_token(sessions, TOKEN, quota=1_000)
    outcomes = [await ledger.reserve(TOKEN, 10) for _ in range(110)]
    assert outcomes == [True] * 100 + [False] * 10
    assert await state(sessions, TOKEN) == (1_000, 1_000)


async def test_a_refused_block_gives_back_what_was_held(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = await with_a_block(sessions, new_ledger, quota=250)  # 10 + a block of 40
    # 50 is more than the block holds, and 50 + a block of 200 is more than the 200 left: exact.
    assert await ledger.reserve(TOKEN, 50)
    await ledger.wait_idle()
    assert await state(sessions, TOKEN) == (250, 60)
    assert ledger.leases.held(TOKEN) == 0
    assert await ledger.reserve(TOKEN, 10)  # statements of their own for a while: no new block
    assert await state(sessions, TOKEN) == (250, 70)


async def test_an_idle_block_goes_back(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger(block_requests=4)
    clock = Clock()
    ledger.leases._clock = clock
    await make_token(sessions, TOKEN, quota=1_000_000)
    assert await ledger.reserve(TOKEN, 10)
    clock.now += leases.IDLE_SECONDS - 0.5
    ledger.leases.sweep()
    assert ledger.leases.held(TOKEN) == 40  # not idle long enough
    clock.now += 0.5
    ledger.leases.sweep()
    await ledger.wait_idle()
    assert ledger.leases.held(TOKEN) == 0
    assert await state(sessions, TOKEN) == (1_000_000, 10)


async def test_an_admin_change_gives_the_block_back(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = await with_a_block(sessions, new_ledger)
    ledger.leases.release(TOKEN)
    await ledger.wait_idle()
    assert await state(sessions, TOKEN) == (1_000_000, 10)


async def test_no_blocks_when_switched_off(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger(block_requests=0)
    await make_token(sessions, TOKEN, quota=1_000_000)
    assert await ledger.reserve(TOKEN, 10)
    assert await state(sessions, TOKEN) == (1_000_000, 10)
    assert ledger.leases.held(TOKEN) == 0

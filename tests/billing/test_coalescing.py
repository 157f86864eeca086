"""Reservations and settlements of one token are decided in batches: those issued in one event-loop turn, or
while the token's statement runs, share one UPDATE. A batch that does not fit is decided one at a time with
the serial outcome; an error in a batch fails each of its requests with the outage error and applies nothing.
Statements are counted on the engine (SQLite, and PostgreSQL when GATEWAY_TEST_POSTGRES_URL is set).

Batches are the engine's path. On a SQLite file the statements of a token with nothing queued run at once,
inline, each alone (tests/billing/test_inline.py); these tests therefore turn that path off."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from gateway.billing.coalesce import Coalescer, Pending
from gateway.billing.ledger import QuotaLedger
from gateway.errors import ServiceUnavailable
from tests.billing.test_ledger import (
    GatedCharges,
    NewLedger,
    Sessions,
    make_token,
    migrated_url,
    sessions,
    state,
)
from tests.db.conftest import requires_postgres

__all__ = ["sessions"]  # a fixture, used by name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[requires_postgres, pytest.mark.postgres])])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_url(request, tmp_path)


@pytest.fixture
def new_ledger(sessions: Sessions) -> NewLedger:
    return lambda **options: QuotaLedger(sessions, **options)  # no inline path


class TokenUpdates:
    """Counts the UPDATEs on `tokens` the engine sends; `fail_at` makes the n-th one (1-based) fail."""

    def __init__(self, sessions: Sessions) -> None:
        self.count = 0
        self.fail_at: int | None = None
        self._engine = sessions.kw["bind"].sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if not statement.lstrip().upper().startswith("UPDATE TOKENS"):
            return
        self.count += 1
        if self.count == self.fail_at:
            raise OperationalError(statement, None, OSError("connection to the database lost"))

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
def updates(sessions: Sessions) -> Iterator[TokenUpdates]:
    counter = TokenUpdates(sessions)
    yield counter
    counter.close()


async def reserve_all(ledger: QuotaLedger, token_id: str, amounts: list[int]) -> list[bool | BaseException]:
    """Issue the reservations in one turn of the event loop, in this order."""
    return await asyncio.gather(*(ledger.reserve(token_id, a) for a in amounts), return_exceptions=True)


def unavailable(outcome: object) -> bool:
    return isinstance(outcome, ServiceUnavailable) and outcome.code == "quota_unavailable"


async def test_reservations_issued_in_one_turn_are_one_statement(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_b", quota=1_000_000)
    assert await reserve_all(ledger, "tok_b", [1_000] * 20) == [True] * 20
    assert updates.count == 1
    assert await state(sessions, "tok_b") == (1_000_000, 20_000)


async def test_an_unlimited_token_is_one_statement_too(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_u", quota=None)
    assert await reserve_all(ledger, "tok_u", [7] * 10) == [True] * 10
    charged = [ledger.settle("tok_u", reserved=0, cost=3) for _ in range(10)]  # charged at settlement only
    assert await asyncio.gather(*(t for t in charged if t is not None)) == [0] * 10
    assert updates.count == 2
    assert await state(sessions, "tok_u") == (None, 100)


async def test_requests_arriving_during_a_statement_form_the_next_batch(
    sessions: Sessions, new_ledger: NewLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_n", quota=1_000_000)
    gated = GatedCharges(monkeypatch)
    first = asyncio.ensure_future(ledger.reserve("tok_n", 1_000))
    await gated.entered.wait()  # its statement is running
    later = [asyncio.ensure_future(ledger.reserve("tok_n", 2_000)) for _ in range(5)]
    await asyncio.sleep(0)  # one turn: each of them is queued behind the running statement
    assert gated.charged == [1_000]
    gated.gate.set()
    assert await asyncio.gather(first, *later) == [True] * 6
    assert gated.charged == [1_000, 10_000]
    assert await state(sessions, "tok_n") == (1_000_000, 11_000)


async def test_a_batch_that_does_not_fit_gets_the_serial_outcome(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_s", quota=100_000)
    amounts = [60_000, 50_000, 30_000, 20_000, 10_000]  # one after the other: 60 fits, 50 not, 30 fits, ...
    assert await reserve_all(ledger, "tok_s", amounts) == [True, False, True, False, True]
    assert updates.count == 1 + 5  # the sum, then each one
    assert await state(sessions, "tok_s") == (100_000, 100_000)


async def test_forty_on_a_quota_for_ten(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_f", quota=100_000)
    assert await reserve_all(ledger, "tok_f", [10_000] * 40) == [True] * 10 + [False] * 30
    # The sum, the ten that fit, the first refused: the 29 after it ask as much and are refused unasked.
    assert updates.count == 1 + 10 + 1
    assert await state(sessions, "tok_f") == (100_000, 100_000)


async def test_an_error_in_the_batch_fails_every_request_and_applies_nothing(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_e", quota=30_000)
    updates.fail_at = 1  # the batched statement itself
    outcomes = await reserve_all(ledger, "tok_e", [10_000] * 6)
    assert all(unavailable(o) for o in outcomes), outcomes
    assert updates.count == 1
    updates.fail_at = updates.count + 3  # the third statement of the next batch: two of them already granted
    outcomes = await reserve_all(ledger, "tok_e", [10_000] * 5)
    assert all(unavailable(o) for o in outcomes), outcomes
    assert await state(sessions, "tok_e") == (30_000, 0)  # rolled back: nothing half reserved
    assert await reserve_all(ledger, "tok_e", [10_000] * 4) == [True] * 3 + [False]


async def test_refunds_issued_in_one_turn_are_one_statement(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_r", quota=100_000, used=50_000)
    refunds = [ledger.settle("tok_r", reserved=10_000, cost=0) for _ in range(5)]
    assert await asyncio.gather(*(t for t in refunds if t is not None)) == [0] * 5
    assert updates.count == 1
    assert await state(sessions, "tok_r") == (100_000, 0)


async def test_refunds_go_first_then_the_charges_that_fit(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_m", quota=100_000, used=90_000)
    tasks = [
        ledger.settle("tok_m", reserved=0, cost=20_000),
        ledger.settle("tok_m", reserved=30_000, cost=0),
        ledger.settle("tok_m", reserved=0, cost=15_000),
    ]
    assert await asyncio.gather(*(t for t in tasks if t is not None)) == [0, 0, 0]
    assert updates.count == 2  # one refund, one charge of 35_000
    assert await state(sessions, "tok_m") == (100_000, 95_000)


async def test_charges_that_overflow_are_settled_one_by_one(
    sessions: Sessions, new_ledger: NewLedger
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_o", quota=100_000, used=80_000)
    tasks = [ledger.settle("tok_o", reserved=0, cost=c) for c in (15_000, 10_000, 4_000)]
    # 15_000 fits; 10_000 takes the last 5_000 and is 5_000 short; nothing is left for 4_000.
    assert await asyncio.gather(*(t for t in tasks if t is not None)) == [0, 5_000, 4_000]
    assert await state(sessions, "tok_o") == (100_000, 100_000)


async def test_a_failed_settlement_batch_is_retried_whole(
    sessions: Sessions, new_ledger: NewLedger, updates: TokenUpdates
) -> None:
    ledger = new_ledger(max_retry_delay=0.01)
    await make_token(sessions, "tok_t", quota=None, used=30_000)
    updates.fail_at = 1
    tasks = [ledger.settle("tok_t", reserved=10_000, cost=c) for c in (0, 0, 12_000)]
    assert await asyncio.gather(*(t for t in tasks if t is not None)) == [0, 0, 0]
    assert await state(sessions, "tok_t") == (None, 12_000)


async def test_a_worker_cancelled_before_it_runs_leaves_nothing_behind() -> None:
    """At shutdown a worker may be cancelled before its first step: its waiters are cancelled, and the
    token's next request starts a new worker."""
    decided: list[list[int]] = []

    async def decide(token_id: str, batch: list[Pending[bool]]) -> None:
        decided.append([p.amount for p in batch])
        for pending in batch:
            pending.resolve(True)

    workers: list[asyncio.Task[None]] = []

    def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        workers.append(asyncio.ensure_future(coro))
        return workers[-1]

    coalescer = Coalescer[bool](decide, spawn)
    first = coalescer.submit("tok", 1)
    workers[0].cancel()
    await asyncio.wait(workers)
    await asyncio.sleep(0)  # one turn: the worker's done callbacks run
    assert first.cancelled()
    assert await coalescer.submit("tok", 2) is True
    assert decided == [[2]]

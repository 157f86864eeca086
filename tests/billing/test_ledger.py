"""`QuotaLedger` on a migrated database (SQLite, and PostgreSQL when GATEWAY_TEST_POSTGRES_URL is set):
the atomic reservation, settlements (refund, extra charge, shortfall), and cancellation safety."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.billing.ledger import QuotaLedger
from gateway.db import migrate
from gateway.db import repositories as repo
from gateway.db.inline import InlineSQLite
from gateway.db.models import Token, UsageRecordRow
from gateway.db.session import create_engine, create_sessionmaker
from gateway.settings import DatabaseSettings
from tests.db.conftest import in_thread, requires_postgres

Sessions = async_sessionmaker[AsyncSession]


# "sqlite": the quota statements run inline on the event loop (db/inline.py); "sqlite-engine": through the
# engine, as they do when the database is busy (and as on PostgreSQL).
@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-engine",
        pytest.param("postgres", marks=[requires_postgres, pytest.mark.postgres]),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_url(request, tmp_path)


def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        in_thread(migrate.upgrade, url)
        return url
    pg: str = request.getfixturevalue("pg_migrated")
    return pg


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(UsageRecordRow))
            await conn.execute(delete(Token))
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


NewLedger = Callable[..., QuotaLedger]


@pytest.fixture
def new_ledger(request: pytest.FixtureRequest, sessions: Sessions) -> Iterator[NewLedger]:
    """QuotaLedger(sessions, ...) on the path the database parameter names (`inline=False`: the engine's)."""
    engine: AsyncEngine = sessions.kw["bind"]
    paths: list[InlineSQLite] = []

    def make(
        inline: bool = request.node.callspec.params["db_url"] != "sqlite-engine", **options: Any
    ) -> QuotaLedger:
        path = InlineSQLite.beside(engine) if inline else None
        paths.extend([path] if path is not None else [])
        return QuotaLedger(sessions, inline=path, **options)

    yield make
    for path in paths:
        path.close()


class GatedCharges:
    """`repo.charge_within_quota` held at a gate: each amount asked is recorded, `entered` is set, and the
    statement runs once `gate` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.charged: list[int] = []
        self.entered, self.gate = asyncio.Event(), asyncio.Event()
        self._real = repo.charge_within_quota
        monkeypatch.setattr(repo, "charge_within_quota", self._gated)

    async def _gated(self, conn: repo.Executor, token_id: str, micro_usd: int) -> bool:
        self.charged.append(micro_usd)
        self.entered.set()
        await self.gate.wait()
        return await self._real(conn, token_id, micro_usd)


async def shortfall(settling: asyncio.Task[int] | None) -> int:
    """A settlement's shortfall: None is one applied at once (or nothing to change), with none."""
    return 0 if settling is None else await settling


async def make_token(sessions: Sessions, token_id: str, quota: int | None, used: int = 0) -> None:
    values: dict[str, Any] = {
        "id": token_id,
        "name": token_id,
        "key_hash": hashlib.sha256(token_id.encode()).hexdigest(),
        "key_prefix": token_id[:10],
        "allowed_groups": [],
        "quota_micro_usd": quota,
        "used_micro_usd": used,
        "created_at": datetime.now(UTC),
    }
    async with sessions.begin() as session:
        await repo.create_token(session, **values)


async def state(sessions: Sessions, token_id: str) -> tuple[int | None, int] | None:
    async with sessions() as session:
        return await repo.quota_state(session, token_id)


async def test_reserve_within_quota_only(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_a", quota=30_000)
    assert [await ledger.reserve("tok_a", 10_000) for _ in range(4)] == [True, True, True, False]
    assert await state(sessions, "tok_a") == (30_000, 30_000)
    assert not await ledger.reserve("tok_gone", 1)


async def test_unlimited_token_always_reserves(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_u", quota=None)
    assert await ledger.reserve("tok_u", 10**12)
    assert await state(sessions, "tok_u") == (None, 10**12)


async def test_concurrent_reservations_never_go_below_zero(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_c", quota=100_000)
    results = await asyncio.gather(*(ledger.reserve("tok_c", 10_000) for _ in range(40)))
    assert results.count(True) == 10
    assert await state(sessions, "tok_c") == (100_000, 100_000)


async def test_settle_refunds_the_difference(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_r", quota=100_000, used=40_000)  # 40_000 reserved
    assert await shortfall(ledger.settle("tok_r", reserved=40_000, cost=20_000)) == 0
    assert await state(sessions, "tok_r") == (100_000, 20_000)
    assert ledger.settle("tok_r", reserved=5, cost=5) is None  # nothing to change: no round trip
    assert ledger.pending == 0


async def test_settle_charges_more_when_the_quota_covers_it(
    sessions: Sessions, new_ledger: NewLedger
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_m", quota=100_000, used=10_000)
    assert await shortfall(ledger.settle("tok_m", reserved=10_000, cost=25_000)) == 0
    assert await state(sessions, "tok_m") == (100_000, 25_000)


async def test_settle_overflow_takes_the_quota_to_exactly_zero(
    sessions: Sessions, new_ledger: NewLedger
) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_o", quota=100_000, used=90_000)  # 10_000 of it reserved
    task = ledger.settle("tok_o", reserved=10_000, cost=35_000)
    assert task is not None
    assert await task == 15_000  # 25_000 more was due, 10_000 was left
    assert await state(sessions, "tok_o") == (100_000, 100_000)
    # Already at zero: the whole extra is the shortfall, and nothing moves.
    again = ledger.settle("tok_o", reserved=0, cost=7)
    assert again is not None and await again == 7
    assert await state(sessions, "tok_o") == (100_000, 100_000)


async def test_refund_never_goes_below_zero_used(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_z", quota=None, used=5)
    assert await shortfall(ledger.settle("tok_z", reserved=50, cost=0)) == 0
    assert await state(sessions, "tok_z") == (None, 0)


async def test_add_quota_revives_and_never_goes_negative(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger()
    await make_token(sessions, "tok_q", quota=10_000, used=10_000)
    assert not await ledger.reserve("tok_q", 1)
    async with sessions.begin() as session:
        assert await repo.add_quota(session, "tok_q", 5_000)
    assert await ledger.reserve("tok_q", 5_000)
    async with sessions.begin() as session:
        assert await repo.add_quota(session, "tok_q", -1_000_000)
    assert await state(sessions, "tok_q") == (0, 15_000)


async def test_cancelled_reservation_is_refunded(sessions: Sessions, new_ledger: NewLedger) -> None:
    """A request cancelled while its reservation runs: the reservation completes and is given back. (Inline,
    a reservation never waits: nothing can cancel it half way.)"""
    ledger = new_ledger(inline=False)
    await make_token(sessions, "tok_x", quota=50_000)
    waiter = asyncio.ensure_future(ledger.reserve("tok_x", 20_000))
    await asyncio.sleep(0)  # the reservation task has started
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await ledger.drain()
    assert await state(sessions, "tok_x") == (50_000, 0)


async def test_drain_waits_for_pending_settlements(sessions: Sessions, new_ledger: NewLedger) -> None:
    ledger = new_ledger(inline=False)  # inline, they are applied at once
    await make_token(sessions, "tok_d", quota=None, used=0)
    for _ in range(5):
        ledger.settle("tok_d", reserved=0, cost=3)
    assert ledger.pending == 5
    await ledger.drain()
    assert ledger.pending == 0
    assert await state(sessions, "tok_d") == (None, 15)

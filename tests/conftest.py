"""Shared fixtures: a fresh SQLite database with the gateway's tables, per test (`engine`, `sessionmaker`)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db import models
from gateway.db.base import Base
from gateway.db.session import create_engine, create_sessionmaker
from gateway.settings import DatabaseSettings


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    assert models.Token.__tablename__ in Base.metadata.tables
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)

"""Databases for the persistence tests: a SQLite file per test, and fresh PostgreSQL databases.

PostgreSQL tests run only when GATEWAY_TEST_POSTGRES_URL names a server (e.g.
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`). Each test module gets its own throw-away
database created beside that one and dropped afterwards, so runs never see each other's tables
(nor those of anyone else using the same server).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db import migrate

PG_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
requires_postgres = pytest.mark.skipif(
    not PG_URL, reason="set GATEWAY_TEST_POSTGRES_URL to run PostgreSQL tests"
)

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking code that calls asyncio.run (the migrations) away from any test event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


async def _admin(statement: str) -> None:
    assert PG_URL
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def create_pg_database() -> str:
    """A new, empty database on the server of GATEWAY_TEST_POSTGRES_URL; returns its URL."""
    assert PG_URL
    name = f"gateway_test_{secrets.token_hex(6)}"
    in_thread(asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def pg_migrated(pg_database: str) -> str:
    """The module's PostgreSQL database, migrated to head."""
    in_thread(migrate.upgrade, pg_database)
    return pg_database

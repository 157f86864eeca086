"""The async engine and sessionmaker for one process; SQLite gets WAL and a busy timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gateway.settings import DatabaseSettings


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a file-backed SQLite database, so the defaults work on a fresh machine."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def json_text(value: Any) -> str:
    """JSON columns' text: orjson (a usage record's `attempts` on every request; the standard library's
    encoder cost more than the rest of the insert), and the standard library for what orjson refuses
    (a lone surrogate, which it escapes)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    ensure_sqlite_dir(settings.url)
    is_sqlite = make_url(settings.url).get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite, "json_serializer": json_text}
    if not is_sqlite:
        kwargs.update(pool_size=settings.pool_size, max_overflow=settings.pool_size)
    engine = create_async_engine(settings.url, **kwargs)
    if is_sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

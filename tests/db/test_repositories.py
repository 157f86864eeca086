"""The repositories (all SQL of the gateway) against a migrated database: SQLite, and PostgreSQL
when GATEWAY_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import migrate
from gateway.db import repositories as repo
from gateway.db.models import Token, UsageRecordRow
from gateway.db.session import create_engine, create_sessionmaker
from gateway.domain import Attempt, Usage, UsageRecord
from gateway.settings import DatabaseSettings
from tests.db.conftest import in_thread, requires_postgres

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        in_thread(migrate.upgrade, url)
        return url
    pg: str = request.getfixturevalue("pg_migrated")
    return pg


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        async with engine.begin() as conn:  # the PostgreSQL database is shared by the module
            await conn.execute(delete(UsageRecordRow))
            await conn.execute(delete(Token))
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _token_values(token_id: str, name: str = "t", **overrides: Any) -> dict[str, Any]:
    key = f"sk-{token_id}-{name}"
    values: dict[str, Any] = {
        "id": token_id,
        "name": name,
        "key_hash": hashlib.sha256(key.encode()).hexdigest(),
        "key_prefix": key[:10],
        "group": "default",
        "allowed_groups": [],
        "models": None,
        "quota_micro_usd": None,
        "used_micro_usd": 0,
        "status": "active",
        "created_at": T0,
    }
    values.update(overrides)
    return values


async def _create(sessions: Sessions, token_id: str, name: str = "t", **overrides: Any) -> dict[str, Any]:
    values = _token_values(token_id, name, **overrides)
    async with sessions() as session, session.begin():
        await repo.create_token(session, **values)
    return values


async def _get(sessions: Sessions, token_id: str) -> Token | None:
    async with sessions() as session:
        return await repo.get_token(session, token_id)


async def _ids(sessions: Sessions, **filters: Any) -> list[str]:
    async with sessions() as session:
        return [t.id for t in await repo.list_tokens(session, **filters)]


async def test_create_then_get_by_id_and_by_hash(sessions: Sessions) -> None:
    expires = T0 + timedelta(days=30)
    values = await _create(
        sessions,
        "tok_1",
        "Alice",
        group="economy",
        allowed_groups=["default", "economy"],
        models=["gpt-image-1", "nano-banana"],
        quota_micro_usd=5_000_000_000_000,  # beyond 32 bits: money columns are BIGINT
        used_micro_usd=1_250_000,
        expires_at=expires,
        rpm_limit=60,
        max_concurrency=4,
        chat_image_field="list_data",
    )

    token = await _get(sessions, "tok_1")
    assert token is not None
    assert token.name == "Alice"
    assert token.group == "economy"
    assert token.allowed_groups == ["default", "economy"]
    assert token.models == ["gpt-image-1", "nano-banana"]
    assert token.quota_micro_usd == 5_000_000_000_000
    assert token.used_micro_usd == 1_250_000
    assert _utc(token.expires_at) == expires
    assert _utc(token.created_at) == T0
    assert token.last_used_at is None
    assert (token.rpm_limit, token.max_concurrency, token.chat_image_field) == (60, 4, "list_data")

    async with sessions() as session:
        by_hash = await repo.get_token_by_hash(session, values["key_hash"])
        assert by_hash is not None and by_hash.id == "tok_1"
        assert await repo.get_token_by_hash(session, hashlib.sha256(b"other").hexdigest()) is None
        assert await repo.get_token(session, "tok_missing") is None


async def test_key_hash_is_unique(sessions: Sessions) -> None:
    first = await _create(sessions, "tok_1")
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await repo.create_token(session, **_token_values("tok_2", key_hash=first["key_hash"]))
    assert await _get(sessions, "tok_2") is None


async def test_list_filters_and_cursor_pagination(sessions: Sessions) -> None:
    # Created out of id order: the listing (and so the cursor) follows the id.
    await _create(sessions, "tok_c", "Image Bot")
    await _create(sessions, "tok_a", "alpha", group="economy")
    await _create(sessions, "tok_e", "Beta tester", status="disabled")
    await _create(sessions, "tok_b", "IMAGE batch", group="economy", status="disabled")
    await _create(sessions, "tok_d", "delta", key_prefix="sk-findme")

    assert await _ids(sessions) == ["tok_a", "tok_b", "tok_c", "tok_d", "tok_e"]
    assert await _ids(sessions, group="economy") == ["tok_a", "tok_b"]
    assert await _ids(sessions, group="nope") == []
    assert await _ids(sessions, status="disabled") == ["tok_b", "tok_e"]
    assert await _ids(sessions, status="active") == ["tok_a", "tok_c", "tok_d"]
    assert await _ids(sessions, group="economy", status="active") == ["tok_a"]
    # q: name contains, case-insensitive ...
    assert await _ids(sessions, q="image") == ["tok_b", "tok_c"]
    assert await _ids(sessions, q="BETA") == ["tok_e"]
    assert await _ids(sessions, q="image", status="active") == ["tok_c"]
    # ... or the display prefix of the key starts with it.
    assert await _ids(sessions, q="sk-find") == ["tok_d"]
    assert await _ids(sessions, q="zzz") == []

    # Cursor pagination: each page starts after the last id of the previous one.
    assert await _ids(sessions, limit=2) == ["tok_a", "tok_b"]
    assert await _ids(sessions, after="tok_b", limit=2) == ["tok_c", "tok_d"]
    assert await _ids(sessions, after="tok_d", limit=2) == ["tok_e"]
    assert await _ids(sessions, after="tok_e", limit=2) == []
    assert await _ids(sessions, status="disabled", after="tok_b") == ["tok_e"]


async def test_update_token_changes_allowed_fields(sessions: Sessions) -> None:
    await _create(sessions, "tok_1", "old")
    expires = T0 + timedelta(hours=1)
    changes = {
        "name": "new",
        "group": "economy",
        "allowed_groups": ["economy"],
        "models": ["m1"],
        "quota_micro_usd": 7,
        "expires_at": expires,
        "status": "disabled",
        "rpm_limit": 10,
        "max_concurrency": 2,
        "chat_image_field": "object_url",
    }
    assert set(changes) == repo.TOKEN_MUTABLE_FIELDS
    async with sessions() as session, session.begin():
        assert await repo.update_token(session, "tok_1", changes) is True
    token = await _get(sessions, "tok_1")
    assert token is not None
    got = {name: getattr(token, name) for name in changes}
    got["expires_at"] = _utc(token.expires_at)
    assert got == changes

    # Back to "unlimited"/"none": nulls are written, not skipped.
    async with sessions() as session, session.begin():
        assert await repo.update_token(session, "tok_1", {"quota_micro_usd": None, "models": None})
    token = await _get(sessions, "tok_1")
    assert token is not None and token.quota_micro_usd is None and token.models is None

    async with sessions() as session, session.begin():
        assert await repo.update_token(session, "tok_missing", {"name": "x"}) is False
        assert await repo.update_token(session, "tok_missing", {}) is False
        assert await repo.update_token(session, "tok_1", {}) is True


@pytest.mark.parametrize("field", ["used_micro_usd", "id", "created_at", "last_used_at", "key", "bogus"])
async def test_update_token_refuses_unknown_fields(sessions: Sessions, field: str) -> None:
    await _create(sessions, "tok_1", "keep")
    async with sessions() as session, session.begin():
        with pytest.raises(ValueError, match=field):
            await repo.update_token(session, "tok_1", {"name": "changed", field: 1})
    token = await _get(sessions, "tok_1")
    assert token is not None and token.name == "keep" and token.used_micro_usd == 0


async def test_add_quota_from_null_is_atomic(sessions: Sessions) -> None:
    await _create(sessions, "tok_1")  # quota null = unlimited

    async def add(micro: int) -> bool:
        async with sessions() as session, session.begin():
            return await repo.add_quota(session, "tok_1", micro)

    # Concurrent additions from separate sessions: none is lost, the first one starts from zero.
    results = await asyncio.gather(*(add(1_000_000 + i) for i in range(8)))
    assert results == [True] * 8
    token = await _get(sessions, "tok_1")
    assert token is not None
    assert token.quota_micro_usd == sum(1_000_000 + i for i in range(8))

    assert await add(-28_000) is True
    token = await _get(sessions, "tok_1")
    assert token is not None and token.quota_micro_usd == sum(1_000_000 + i for i in range(8)) - 28_000

    async with sessions() as session, session.begin():
        assert await repo.add_quota(session, "tok_missing", 1) is False


async def test_delete_token(sessions: Sessions) -> None:
    values = await _create(sessions, "tok_1")
    await _create(sessions, "tok_2")
    async with sessions() as session, session.begin():
        assert await repo.delete_token(session, "tok_1") is True
    async with sessions() as session, session.begin():
        assert await repo.get_token(session, "tok_1") is None
        assert await repo.get_token_by_hash(session, values["key_hash"]) is None
        assert await repo.delete_token(session, "tok_1") is False
    assert await _ids(sessions) == ["tok_2"]


def _record(request_id: str, token_id: str, created_at: datetime, **overrides: Any) -> UsageRecord:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "created_at": created_at,
        "token_id": token_id,
        "group": "economy",
        "endpoint": "/v1/images/generations",
        "model": "gpt-image-1",
        "stream": True,
        "upstream_model": "gpt-image-1-upstream",
        "channel": "primary",
        "attempts": [Attempt("broken", 0, 503, 120), Attempt("primary", 1, 200, 900)],
        "status": "success",
        "http_status": 200,
        "error_code": None,
        "latency_ms": 1020,
        "ttfb_ms": 300,
        "usage": Usage(
            prompt_tokens=50,
            completion_tokens=4200,
            total_tokens=4250,
            text_input_tokens=30,
            cached_input_tokens=10,
            image_input_tokens=10,
            text_output_tokens=40,
            image_output_tokens=4160,
        ),
        "image_count": 2,
        "image_size": "1024x1024",
        "image_quality": "high",
        "unit_price_micro_usd": 28_000,
        "cost_micro_usd": 56_000,
        "usage_estimated": True,
    }
    fields.update(overrides)
    return UsageRecord(**fields)


async def test_insert_usage_records_and_touch_tokens(sessions: Sessions) -> None:
    await _create(sessions, "tok_1")
    await _create(sessions, "tok_2")
    await _create(sessions, "tok_3")
    ok = _record("req-1", "tok_1", T0)
    failed = _record(
        "req-2",
        "tok_2",
        T0 + timedelta(seconds=1),
        status="failed",
        http_status=502,
        error_code="upstream_error",
        stream=False,
        upstream_model=None,
        channel=None,
        attempts=[Attempt("primary", 0, "timeout", 30_000)],
        ttfb_ms=None,
        usage=Usage(),
        image_count=0,
        image_size=None,
        image_quality=None,
        unit_price_micro_usd=0,
        cost_micro_usd=0,
        usage_estimated=False,
    )
    used_1, used_2 = T0 + timedelta(minutes=5), T0 + timedelta(minutes=6)
    async with sessions() as session, session.begin():
        await repo.insert_usage_records(session, [ok, failed])
        await repo.insert_usage_records(session, [])  # an empty batch is a no-op
        await repo.touch_tokens(session, {"tok_1": used_1, "tok_2": used_2, "tok_gone": used_2})

    async with sessions() as session:
        rows = await repo.list_usage_records(session)
        only_2 = await repo.list_usage_records(session, token_id="tok_2")
        limited = await repo.list_usage_records(session, limit=1)
    assert [r.request_id for r in rows] == ["req-2", "req-1"]  # newest first
    assert [r.request_id for r in only_2] == ["req-2"]
    assert [r.request_id for r in limited] == ["req-2"]

    row = rows[1]
    assert {
        "token_id": row.token_id,
        "group": row.group,
        "endpoint": row.endpoint,
        "model": row.model,
        "upstream_model": row.upstream_model,
        "channel": row.channel,
        "status": row.status,
        "http_status": row.http_status,
        "error_code": row.error_code,
        "stream": row.stream,
        "latency_ms": row.latency_ms,
        "ttfb_ms": row.ttfb_ms,
        "image_count": row.image_count,
        "image_size": row.image_size,
        "image_quality": row.image_quality,
        "unit_price_micro_usd": row.unit_price_micro_usd,
        "cost_micro_usd": row.cost_micro_usd,
        "usage_estimated": row.usage_estimated,
    } == {
        "token_id": "tok_1",
        "group": "economy",
        "endpoint": "/v1/images/generations",
        "model": "gpt-image-1",
        "upstream_model": "gpt-image-1-upstream",
        "channel": "primary",
        "status": "success",
        "http_status": 200,
        "error_code": None,
        "stream": True,
        "latency_ms": 1020,
        "ttfb_ms": 300,
        "image_count": 2,
        "image_size": "1024x1024",
        "image_quality": "high",
        "unit_price_micro_usd": 28_000,
        "cost_micro_usd": 56_000,
        "usage_estimated": True,
    }
    assert _utc(row.created_at) == T0
    assert row.attempts == [
        {"channel": "broken", "key_index": 0, "status": 503, "duration_ms": 120},
        {"channel": "primary", "key_index": 1, "status": 200, "duration_ms": 900},
    ]
    assert (
        row.prompt_tokens,
        row.completion_tokens,
        row.total_tokens,
        row.text_input_tokens,
        row.cached_input_tokens,
        row.image_input_tokens,
        row.text_output_tokens,
        row.image_output_tokens,
    ) == (50, 4200, 4250, 30, 10, 10, 40, 4160)

    row = rows[0]
    assert (row.status, row.http_status, row.error_code, row.stream) == (
        "failed",
        502,
        "upstream_error",
        False,
    )
    assert row.attempts == [
        {"channel": "primary", "key_index": 0, "status": "timeout", "duration_ms": 30_000}
    ]
    assert row.ttfb_ms is None and row.channel is None and row.cost_micro_usd == 0
    assert row.usage_estimated is False

    last_used = {
        tid: _utc(t.last_used_at) for tid in ("tok_1", "tok_2", "tok_3") if (t := await _get(sessions, tid))
    }
    assert last_used == {"tok_1": used_1, "tok_2": used_2, "tok_3": None}

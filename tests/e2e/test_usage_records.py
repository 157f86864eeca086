"""§6.5 through the HTTP API: a request with over-long fields still gets its usage record, and so do
the requests after it. On PostgreSQL (which enforces column widths) and on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.models import UsageRecordRow
from tests.db.conftest import create_pg_database, drop_pg_database, in_thread, requires_postgres
from tests.gateway_process import GatewayProcess

POSTGRES = pytest.param("postgres", marks=[pytest.mark.postgres, requires_postgres])


@pytest.fixture(params=["sqlite", POSTGRES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def stored(url: str) -> list[tuple[str, str | None, int]]:
    async def read() -> list[tuple[str, str | None, int]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                columns = (UsageRecordRow.request_id, UsageRecordRow.image_size, UsageRecordRow.http_status)
                rows = await conn.execute(select(*columns).order_by(UsageRecordRow.id))
                return [(r[0], r[1], r[2]) for r in rows]
        finally:
            await engine.dispose()

    result: list[tuple[str, str | None, int]] = in_thread(asyncio.run, read())
    return result


def test_long_request_id_and_size_do_not_stop_usage_recording(database_url: str, tmp_path: Path) -> None:
    config = {
        "database": {"url": database_url},
        "channels": [{"name": "mock", "kind": "mock", "models": ["mock-chat", "mock-image"]}],
        "usage": {"flush_interval_seconds": 0.05},
    }
    gateway = GatewayProcess(tmp_path, config).start()  # `serve` migrates the new database first
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    long_id = "L" * 100
    try:
        key = gateway.admin("POST", "/admin/tokens", json={"name": "records"}).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=gateway.url, headers=auth, timeout=20) as client:
            first = client.post("/v1/chat/completions", json=chat, headers={"x-request-id": long_id})
            assert first.status_code == 200, first.text
            assert first.headers["x-request-id"] == long_id
            image = client.post(
                "/v1/images/generations",
                json={"model": "mock-image", "prompt": "p", "size": "1" * 500, "response_format": "b64_json"},
                headers={"x-request-id": "big-size"},
            )
            assert image.status_code == 200, image.text
            for i in range(20):
                resp = client.post("/v1/chat/completions", json=chat, headers={"x-request-id": f"after-{i}"})
                assert resp.status_code == 200, resp.text
    finally:
        gateway.stop()  # SIGTERM: the usage writer flushes everything before the process exits
    records = stored(database_url)
    assert [r[0] for r in records] == [long_id, "big-size", *(f"after-{i}" for i in range(20))]
    assert records[1][1] == "1" * 32  # the client's size, cut to its column
    assert all(r[2] == 200 for r in records)

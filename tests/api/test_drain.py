"""The drain (graceful shutdown) in process: once it has begun, new requests get 503
`server_shutting_down`, /readyz says 503 while /healthz still answers, and the server's own shutdown
runs only when the last request in flight has ended (or the grace is over)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.api.drain import Drain
from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings


async def test_shutdown_waits_for_the_last_request_in_flight() -> None:
    drain = Drain(grace_seconds=60)
    stopped = asyncio.Event()
    drain.enter()
    drain.enter()
    drain.begin(stopped.set)
    assert drain.draining
    await asyncio.sleep(0)
    drain.leave()
    await asyncio.sleep(0)
    assert not stopped.is_set()  # one request is still running
    drain.leave()
    await asyncio.wait_for(stopped.wait(), 5)


async def test_shutdown_runs_at_once_when_nothing_is_in_flight() -> None:
    drain = Drain(grace_seconds=60)
    stopped = asyncio.Event()
    drain.begin(stopped.set)
    await asyncio.wait_for(stopped.wait(), 5)
    assert drain.remaining() <= 60


async def test_the_grace_bounds_the_wait() -> None:
    drain = Drain(grace_seconds=0.01)
    stopped = asyncio.Event()
    drain.enter()  # never leaves
    drain.begin(stopped.set)
    await asyncio.wait_for(stopped.wait(), 5)
    assert drain.remaining() == 0


async def test_a_second_signal_does_not_start_a_second_drain() -> None:
    drain = Drain(grace_seconds=60)
    calls: list[str] = []
    drain.enter()
    drain.begin(lambda: calls.append("first"))
    drain.begin(lambda: calls.append("second"))
    drain.leave()
    await asyncio.sleep(0.01)
    assert calls == ["first"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.model_validate({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "none"},
        "channels": [{"name": "mock", "kind": "mock", "models": ["mock-chat"]}],
    })  # fmt: skip
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, settings.database.url).result()
    with TestClient(create_app(settings)) as c:
        yield c


def test_while_draining_new_requests_get_503_and_readyz_says_so(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    drain: Drain = client.app.state.drain  # type: ignore[attr-defined]
    drain.draining = True
    for method, path in (("POST", "/v1/chat/completions"), ("POST", "/v1/images/generations"),
                         ("GET", "/v1/models"), ("GET", "/admin/tokens")):  # fmt: skip
        resp = client.request(method, path, json={}, headers={"x-request-id": "rid-1"})
        assert resp.status_code == 503, path
        assert resp.json()["error"] == {
            "message": "This server is shutting down; send the request again (another server will take it).",
            "type": "server_error", "param": None, "code": "server_shutting_down",
        }  # fmt: skip
        assert resp.headers["x-request-id"] == "rid-1" and resp.headers["connection"] == "close"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "shutting_down"
    assert client.get("/healthz").status_code == 200  # alive: not to be restarted, only drained
    assert client.get("/metrics", headers={"Authorization": "Bearer adm"}).status_code == 200
    drain.draining = False

"""Helpers for the billing tests driven through the real app in process (lifespan, routers, pipelines)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.runtime import Runtime
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}


def settings(db: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "none"},
        "usage": {"flush_interval_seconds": 0.05},
        "retry": {"failures_to_cooldown": 1000},
        **overrides,
    }
    return Settings(**values)


@contextmanager
def running(config: Settings) -> Iterator[TestClient]:
    with ThreadPoolExecutor(max_workers=1) as pool:  # migrate.upgrade runs its own event loop
        pool.submit(migrate.upgrade, config.database.url).result()
    with TestClient(create_app(config)) as client:
        yield client


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def settle(client: TestClient) -> None:
    """Every settlement applied and every usage record written: the test reads a quiet database."""
    assert client.portal is not None
    rt = runtime(client)
    client.portal.call(rt.quota.wait_idle)
    assert client.portal.call(rt.usage.flush)


def new_token(client: TestClient, quota_usd: float | None = None, **fields: Any) -> tuple[str, str]:
    """(id, key) of a fresh token."""
    resp = client.post(
        "/admin/tokens", json={"name": "billing", "quota_usd": quota_usd, **fields}, headers=ADMIN
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return body["id"], body["key"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def generate(client: TestClient, key: str, model: str, **body: Any) -> Any:
    return client.post("/v1/images/generations", json={"model": model, "prompt": "a red fox", **body},
                       headers=bearer(key))  # fmt: skip


def me(client: TestClient, key: str) -> dict[str, Any]:
    resp = client.get("/v1/me", headers=bearer(key))
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def records(client: TestClient, token_id: str) -> list[dict[str, Any]]:
    settle(client)
    resp = client.get("/admin/usage/records", params={"token": token_id, "limit": 1000}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def error_code(resp: Any) -> str:
    body = resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    code: str = body["error"]["code"]
    return code

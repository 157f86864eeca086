"""A gateway app in process (TestClient) on a migrated SQLite database, with mock image channels."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.jobs.runner import JobRunner
from gateway.runtime import Runtime
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}


def make_settings(tmp: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'gateway.db'}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "none"},
        "channels": [
            {"name": "painter", "kind": "mock", "models": ["mock-image"]},
            {"name": "broken", "kind": "mock", "models": ["broken-image"], "mock": {"failure_rate": 1.0}},
        ],
        "jobs": {"sweep_interval_seconds": 3600},  # tests sweep by hand
        **extra,
    }
    return Settings.model_validate(data)


def start(settings: Settings) -> TestClient:
    with ThreadPoolExecutor(max_workers=1) as pool:  # migrate runs its own event loop
        pool.submit(migrate.upgrade, settings.database.url).result()
    return TestClient(create_app(settings))


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def open_app(**extra: Any) -> TestClient:
        client = start(make_settings(tmp_path, **extra)).__enter__()
        opened.append(client)
        return client

    yield open_app
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(app_factory: Callable[..., TestClient]) -> TestClient:
    return app_factory()


def new_key(client: TestClient, name: str = "t", **fields: Any) -> str:
    resp = client.post("/admin/tokens", json={"name": name, **fields}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["key"]
    return key


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def runner(client: TestClient) -> JobRunner:
    jobs: JobRunner = client.app.state.jobs  # type: ignore[attr-defined]
    return jobs


def submit(client: TestClient, key: str, body: dict[str, Any], path: str = "/v1/images/generations") -> str:
    resp = client.post(path, json=body, headers=auth(key, Prefer="respond-async"))
    assert resp.status_code == 202, resp.text
    job_id: str = resp.json()["id"]
    return job_id


def wait_done(client: TestClient, key: str, job_id: str, within: float = 10) -> dict[str, Any]:
    """Poll the job until it has finished (the deadline only bounds a broken run)."""
    deadline = time.monotonic() + within
    while True:
        resp = client.get(f"/v1/images/jobs/{job_id}", headers=auth(key))
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)

"""GET /metrics in process (§8.4): admin token unless `metrics.public`; every series moves when the
gateway does the thing it counts; label values stay bounded (an unknown model is "other")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def settings(tmp: Path, **extra: Any) -> Settings:
    return Settings.model_validate({
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'gateway.db'}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "local", "local": {"root": str(tmp / "images")}},
        "channels": [
            {"name": "flaky", "kind": "mock", "models": ["fo-image"], "priority": 10,
             "mock": {"failure_rate": 1.0}},
            {"name": "steady", "kind": "mock", "models": ["fo-image", "mock-chat"]},
        ],
        # Priced, so that a token without quota left is refused (the reservation is the quota check).
        "pricing": {"models": {"mock-chat": {"per_call": 0.001}, "fo-image": {"per_call": 0.001}}},
        **extra,
    })  # fmt: skip


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(**extra: Any) -> TestClient:
        s = settings(tmp_path, **extra)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(migrate.upgrade, s.database.url).result()
        client = TestClient(create_app(s)).__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def scrape(client: TestClient) -> Samples:
    resp = client.get("/metrics", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def token(client: TestClient, **fields: Any) -> dict[str, str]:
    resp = client.post("/admin/tokens", json={"name": "m", **fields}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['key']}"}


def test_metrics_need_the_admin_token_unless_public(make_client: Callable[..., TestClient]) -> None:
    private = make_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = private.get("/metrics", headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_admin_token"
    assert private.get("/metrics", headers=ADMIN).status_code == 200
    public = make_client(metrics={"public": True})
    assert public.get("/metrics").status_code == 200


def test_the_series_move(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    user = token(client)
    before = scrape(client)
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=chat, headers=user).status_code == 200
    assert (
        client.post("/v1/chat/completions", json={**chat, "model": "made-up-1"}, headers=user).status_code
        == 404
    )
    assert (
        client.post("/v1/chat/completions", json={**chat, "model": "made-up-2"}, headers=user).status_code
        == 404
    )
    image = {"model": "fo-image", "prompt": "p", "response_format": "url"}
    assert client.post("/v1/images/generations", json=image, headers=user).status_code == 200
    broke = token(client, quota_usd=0)
    assert client.post("/v1/chat/completions", json=chat, headers=broke).status_code == 429
    limited = token(client, rpm_limit=1)
    assert [
        client.post("/v1/chat/completions", json=chat, headers=limited).status_code for _ in range(2)
    ] == [200, 429]
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/chat/completions"
    assert moved("gateway_requests_total", route=route, model="mock-chat", status="200") == 4
    assert moved("gateway_requests_total", route=route, model="other", status="404") == 2  # bounded labels
    assert (
        moved("gateway_requests_total", route="/v1/images/generations", model="fo-image", status="200") == 1
    )
    assert moved("gateway_requests_total", route="/metrics", model="", status="200") == 1
    assert moved("gateway_upstream_attempts_total", channel="flaky", outcome="5xx") == 1
    assert moved("gateway_upstream_attempts_total", channel="steady", outcome="success") == 5
    assert moved("gateway_failovers_total", channel="flaky") == 1
    assert moved("gateway_upstream_latency_seconds_count", channel="steady", outcome="success") == 5
    assert (
        moved("gateway_upstream_latency_seconds_bucket", channel="steady", outcome="success", le="+Inf") == 5
    )
    assert moved("gateway_images_rehosted_total", origin="upstream") == 1
    assert moved("gateway_images_rehosted_bytes_total", origin="upstream") > 60  # a PNG
    assert moved("gateway_quota_rejections_total") == 1
    assert moved("gateway_rate_limit_rejections_total") == 1
    assert ("gateway_usage_queue_depth", frozenset()) in after

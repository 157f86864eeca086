"""GET /v1/models (§1): the models of the token's own group and of its `allowed_groups`, each once, in a
stable order (own group first, then the allowed groups in their order), cut to the token's allow-list."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}


def mock(name: str, models: list[str], group: str) -> dict[str, Any]:
    return {"name": name, "kind": "mock", "models": models, "groups": [group]}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database={"url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db"},
        admin={"token": "adm"},
        storage={"backend": "none"},
        groups={"default": {}, "economy": {}, "premium": {}, "vip": {}, "empty": {}},
        channels=[
            mock("a", ["m-a", "m-b"], "default"),
            mock("c", ["m-c", "m-b", "m-a"], "economy"),
            mock("d", ["m-d"], "premium"),
            mock("e", ["m-e"], "vip"),
        ],
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, settings.database.url).result()
    with TestClient(create_app(settings)) as c:
        yield c


def model_ids(client: TestClient, path: str = "/v1/models", **token: Any) -> list[str]:
    created = client.post("/admin/tokens", json={"name": "t", **token}, headers=ADMIN)
    assert created.status_code == 201, created.text
    resp = client.get(path, headers={"Authorization": f"Bearer {created.json()['key']}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    assert all(m["object"] == "model" for m in body["data"])
    return [m["id"] for m in body["data"]]


def test_own_group_only(client: TestClient) -> None:
    assert model_ids(client) == ["m-a", "m-b"]
    assert model_ids(client, group="vip") == ["m-e"]


@pytest.mark.parametrize("path", ["/v1/models", "/v1beta/openai/models"])
def test_allowed_groups_add_their_models_once_in_a_stable_order(client: TestClient, path: str) -> None:
    ids = model_ids(client, path, allowed_groups=["premium", "economy"])
    assert ids == ["m-a", "m-b", "m-d", "m-c"]


def test_allowed_groups_are_cut_to_the_allow_list(client: TestClient) -> None:
    ids = model_ids(client, allowed_groups=["economy", "premium"], models=["m-d", "m-c", "m-e", "nope"])
    assert ids == ["m-c", "m-d"]  # m-e is in a group the token may not use


def test_an_allowed_group_without_channels_adds_nothing(client: TestClient) -> None:
    assert model_ids(client, allowed_groups=["empty", "default"]) == ["m-a", "m-b"]

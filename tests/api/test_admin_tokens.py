"""The admin token API (§7) and the client-facing token endpoints (§6.3, §6.5), driven in process
through the real app (lifespan, routers, error renderer) on a migrated SQLite database."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}
ERROR_KEYS = {"message", "type", "param", "code"}
KEY_RE = re.compile(r"^sk-[A-Za-z0-9_-]{48}$")


def _settings(db: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "none"},
        "channels": [{"name": "m", "kind": "mock", "models": ["mock-chat"]}],
        "groups": {"default": {}, "economy": {}},
        **overrides,
    }
    return Settings(**values)


def _migrate(settings: Settings) -> None:
    # migrate.upgrade runs its own event loop: keep it off this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, settings.database.url).result()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    settings = _settings(db_path)
    _migrate(settings)
    with TestClient(create_app(settings)) as c:
        yield c


def case_id(value: object) -> str:
    """Readable parametrize ids: the body as compact JSON."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)


def error_of(resp: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """Check the §2 shape: exactly {error: {message, type, param, code}}, and return the inner object."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-request-id")
    body = resp.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) == ERROR_KEYS, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def create(c: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "t")
    resp = c.post("/admin/tokens", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def patch(c: TestClient, token_id: str, **body: Any) -> Any:
    return c.patch(f"/admin/tokens/{token_id}", json=body, headers=ADMIN)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def models_status(c: TestClient, key: str) -> int:
    status: int = c.get("/v1/models", headers=bearer(key)).status_code
    return status


def db_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM tokens")]
    conn.close()
    return rows


# --- admin authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("admin", [{}, {"token": None}, {"token": ""}])
def test_admin_api_is_off_without_a_configured_token(db_path: Path, admin: dict[str, Any]) -> None:
    settings = _settings(db_path, admin=admin)
    _migrate(settings)
    with TestClient(create_app(settings)) as c:
        for method, path in [
            ("GET", "/admin/tokens"),
            ("POST", "/admin/tokens"),
            ("GET", "/admin/tokens/tok_x"),
            ("DELETE", "/admin/tokens/tok_x"),
        ]:
            resp = c.request(method, path, headers=ADMIN, json={"name": "x"})
            err = error_of(resp, 503, code="admin_api_disabled")
            assert "GATEWAY_ADMIN_TOKEN" in err["message"] and "admin.token" in err["message"]
    assert db_rows(db_path) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer adm-and-more"},
        {"Authorization": "Bearer ad"},
        {"Authorization": "Bearer "},
    ],
)
def test_admin_api_refuses_missing_or_wrong_token(client: TestClient, headers: dict[str, str]) -> None:
    error_of(client.get("/admin/tokens", headers=headers), 401, code="invalid_admin_token")
    error_of(client.post("/admin/tokens", json={"name": "x"}, headers=headers), 401)
    assert client.get("/admin/tokens", headers=ADMIN).json()["data"] == []


def test_a_client_key_is_not_an_admin_token(client: TestClient) -> None:
    key = create(client)["key"]
    error_of(client.get("/admin/tokens", headers=bearer(key)), 401)


# --- create / get / list ----------------------------------------------------------------------------


def test_create_shows_the_key_once_and_stores_only_its_hash(client: TestClient, db_path: Path) -> None:
    resp = client.post("/admin/tokens", json={"name": "Alice", "quota_usd": 5}, headers=ADMIN)
    assert resp.status_code == 201
    created = resp.json()
    key = created["key"]
    assert KEY_RE.match(key) and len(key) == 51
    assert created["name"] == "Alice"
    assert created["group"] == "default"
    assert created["status"] == "active"
    assert created["allowed_groups"] == []
    assert created["models"] is None
    assert (created["quota_usd"], created["used_usd"], created["remaining_usd"]) == (5.0, 0.0, 5.0)
    assert created["id"].startswith("tok_")
    prefix = created["key_prefix"]
    assert key.startswith(prefix) and len(prefix) < 16
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None

    # Never shown again: not by GET, not by the listing.
    got = client.get(f"/admin/tokens/{created['id']}", headers=ADMIN)
    assert got.status_code == 200
    assert "key" not in got.json() and key not in got.text
    assert got.json() == {k: v for k, v in created.items() if k != "key"}
    listing = client.get("/admin/tokens", headers=ADMIN)
    assert key not in listing.text and all("key" not in t for t in listing.json()["data"])

    # The database holds the SHA-256 of the key and a display prefix, nothing else of it.
    (row,) = db_rows(db_path)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    secret = key[len(prefix) :]
    for column, value in row.items():
        assert key not in str(value), column
        assert secret not in str(value), column

    # Two tokens never share a key.
    assert create(client)["key"] != key


def test_create_with_every_field(client: TestClient) -> None:
    body = {
        "name": "full",
        "group": "economy",
        "allowed_groups": ["default"],
        "models": ["mock-chat"],
        "quota_usd": 12.345678,
        "expires_at": "2099-05-06T07:08:09Z",
        "status": "disabled",
        "rpm_limit": 30,
        "max_concurrency": 3,
        "chat_image_field": "object_url",
    }
    created = create(client, **body)
    view = client.get(f"/admin/tokens/{created['id']}", headers=ADMIN).json()
    assert view["group"] == "economy"
    assert view["allowed_groups"] == ["default"]
    assert view["models"] == ["mock-chat"]
    assert view["quota_usd"] == 12.345678
    assert datetime.fromisoformat(view["expires_at"]) == datetime(2099, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert (view["status"], view["rpm_limit"], view["max_concurrency"]) == ("disabled", 30, 3)
    assert view["chat_image_field"] == "object_url"
    assert models_status(client, created["key"]) == 401  # created disabled


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "quota_usd": -1}, "quota_usd"),
        ({"name": "x", "status": "paused"}, "status"),
        ({"name": "x", "rpm_limit": 0}, "rpm_limit"),
        ({"name": "x", "key": "sk-mine"}, "key"),
        ({"name": "x", "used_usd": 3}, "used_usd"),
        ({"name": "x", "group": "gold"}, "group"),
        # Beyond what the columns hold (BIGINT micro-USD, INTEGER limits): a 400, not a crash.
        ({"name": "x", "quota_usd": 1e20}, "quota_usd"),
        ({"name": "x", "rpm_limit": 2**40}, "rpm_limit"),
        ({"name": "x", "max_concurrency": 2**40}, "max_concurrency"),
    ],
    ids=case_id,
)
def test_create_rejects_bad_bodies(client: TestClient, body: dict[str, Any], param: str) -> None:
    err = error_of(client.post("/admin/tokens", json=body, headers=ADMIN), 400, param=param)
    assert err["type"] == "invalid_request_error"
    assert client.get("/admin/tokens", headers=ADMIN).json()["data"] == []


def test_create_rejects_a_body_that_is_not_json(client: TestClient) -> None:
    resp = client.post(
        "/admin/tokens", content=b"{name", headers={**ADMIN, "content-type": "application/json"}
    )
    error_of(resp, 400, code="invalid_json")


def test_get_unknown_token_is_404(client: TestClient) -> None:
    err = error_of(client.get("/admin/tokens/tok_nope", headers=ADMIN), 404, code="token_not_found")
    assert err["type"] == "invalid_request_error" and "tok_nope" in err["message"]
    error_of(patch(client, "tok_nope", name="x"), 404, code="token_not_found")
    error_of(client.delete("/admin/tokens/tok_nope", headers=ADMIN), 404, code="token_not_found")
    error_of(client.post("/admin/tokens/tok_nope/rotate", headers=ADMIN), 404, code="token_not_found")


def _list(c: TestClient, **params: Any) -> dict[str, Any]:
    resp = c.get("/admin/tokens", params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def _names(c: TestClient, **params: Any) -> set[str]:
    return {t["name"] for t in _list(c, **params)["data"]}


def test_list_filters(client: TestClient) -> None:
    create(client, name="Image Bot")
    create(client, name="alpha", group="economy")
    create(client, name="Beta tester", status="disabled")
    create(client, name="image batch", group="economy", status="disabled")
    key = create(client, name="delta")["key"]

    assert _names(client) == {"Image Bot", "alpha", "Beta tester", "image batch", "delta"}
    assert _names(client, group="economy") == {"alpha", "image batch"}
    assert _names(client, status="disabled") == {"Beta tester", "image batch"}
    assert _names(client, status="active", group="default") == {"Image Bot", "delta"}
    assert _names(client, q="IMAGE") == {"Image Bot", "image batch"}
    assert _names(client, q="image", group="economy") == {"image batch"}
    assert _names(client, q=key[:10]) == {"delta"}  # an operator can find a token by its key prefix
    assert _names(client, q="nothing-like-this") == set()
    assert _names(client, group="gold") == set()
    body = _list(client, group="economy")
    assert body["object"] == "list" and body["next_cursor"] is None


@pytest.mark.parametrize("param", ["q", "group", "status", "cursor"])
def test_list_filter_with_a_nul_is_a_400(client: TestClient, param: str) -> None:
    # PostgreSQL text cannot hold NUL: refused up front on every backend, never a database error (500).
    resp = client.get("/admin/tokens", params={param: "a\x00b"}, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_list_cursor_pagination(client: TestClient) -> None:
    ids = {create(client, name=f"t{i}")["id"] for i in range(7)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = _list(client, **params)
        pages += 1
        assert len(body["data"]) <= 3
        seen += [t["id"] for t in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert cursor == body["data"][-1]["id"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7 and set(seen) == ids
    assert seen == sorted(seen)

    # A page that ends exactly at the last token says so: no empty page after it.
    first = _list(client, limit=6)
    assert first["next_cursor"] is not None
    last = _list(client, limit=1, cursor=first["next_cursor"])
    assert len(last["data"]) == 1 and last["next_cursor"] is None

    # Filters and cursor together.
    create(client, name="e1", group="economy")
    create(client, name="e2", group="economy")
    page1 = _list(client, group="economy", limit=1)
    page2 = _list(client, group="economy", limit=1, cursor=page1["next_cursor"])
    assert {page1["data"][0]["name"], page2["data"][0]["name"]} == {"e1", "e2"}
    assert page2["next_cursor"] is None

    error_of(client.get("/admin/tokens", params={"limit": "many"}, headers=ADMIN), 400, param="limit")


# --- patch -------------------------------------------------------------------------------------------


def test_patch_every_field(client: TestClient) -> None:
    token = create(client, name="before")
    changes = {
        "name": "after",
        "group": "economy",
        "allowed_groups": ["default", "economy"],
        "models": ["mock-chat"],
        "quota_usd": 2.5,
        "expires_at": "2099-01-02T03:04:05+00:00",
        "status": "disabled",
        "rpm_limit": 100,
        "max_concurrency": 7,
        "chat_image_field": "list_data",
    }
    resp = patch(client, token["id"], **changes)
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert "key" not in view
    assert {k: view[k] for k in changes} == {**changes, "expires_at": "2099-01-02T03:04:05+00:00"}
    assert view["remaining_usd"] == 2.5
    assert client.get(f"/admin/tokens/{token['id']}", headers=ADMIN).json() == view

    # Back again; null clears the nullable fields, "none" the image field, a naive time is UTC.
    resp = patch(
        client,
        token["id"],
        status="active",
        models=None,
        quota_usd=None,
        rpm_limit=None,
        max_concurrency=None,
        chat_image_field="none",
        expires_at="2098-07-08T09:10:11",
    )
    view = resp.json()
    assert resp.status_code == 200, resp.text
    assert (view["status"], view["models"], view["quota_usd"], view["remaining_usd"]) == (
        "active",
        None,
        None,
        None,
    )
    assert (view["rpm_limit"], view["max_concurrency"], view["chat_image_field"]) == (None, None, None)
    assert datetime.fromisoformat(view["expires_at"]) == datetime(2098, 7, 8, 9, 10, 11, tzinfo=UTC)
    # An empty patch changes nothing and answers the token.
    assert patch(client, token["id"]).json() == view


def test_patch_takes_effect_at_once_for_the_key(client: TestClient) -> None:
    token = create(client, name="live", quota_usd=1)
    key, tid = token["key"], token["id"]
    assert models_status(client, key) == 200  # now cached by the authenticator

    assert patch(client, tid, status="disabled").status_code == 200
    error_of(client.get("/v1/models", headers=bearer(key)), 401, code="invalid_api_key")
    assert patch(client, tid, status="active").status_code == 200
    assert models_status(client, key) == 200

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert patch(client, tid, expires_at=past).status_code == 200
    error_of(client.get("/v1/models", headers=bearer(key)), 401, code="invalid_api_key")
    assert patch(client, tid, expires_at=None).status_code == 200
    assert models_status(client, key) == 200

    assert patch(client, tid, models=["not-served"]).status_code == 200
    assert client.get("/v1/models", headers=bearer(key)).json()["data"] == []

    assert patch(client, tid, name="renamed", group="economy", add_quota_usd=0.5).status_code == 200
    me = client.get("/v1/me", headers=bearer(key)).json()
    assert (me["name"], me["group"], me["quota_usd"]) == ("renamed", "economy", 1.5)


def test_add_quota(client: TestClient) -> None:
    token = create(client)
    assert token["quota_usd"] is None
    # From unlimited, adding starts at zero.
    assert patch(client, token["id"], add_quota_usd=2).json()["quota_usd"] == 2.0
    assert patch(client, token["id"], add_quota_usd="0.000001").json()["quota_usd"] == 2.000001
    # quota_usd and add_quota_usd together: set, then add.
    view = patch(client, token["id"], quota_usd=1, add_quota_usd=0.25).json()
    assert (view["quota_usd"], view["remaining_usd"]) == (1.25, 1.25)


def test_add_quota_from_concurrent_patches_all_count(client: TestClient) -> None:
    token = create(client, quota_usd=1)
    workers = 8
    barrier = threading.Barrier(workers)

    def add(_: int) -> int:
        barrier.wait(timeout=10)
        status: int = patch(client, token["id"], add_quota_usd=0.5).status_code
        return status

    with ThreadPoolExecutor(max_workers=workers) as pool:
        statuses = list(pool.map(add, range(workers)))
    assert statuses == [200] * workers
    view = client.get(f"/admin/tokens/{token['id']}", headers=ADMIN).json()
    assert view["quota_usd"] == 1 + 0.5 * workers


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"group": "gold"}, "group"),
        ({"allowed_groups": ["default", "gold"]}, "allowed_groups"),
        ({"name": "x", "color": "blue"}, "color"),
        ({"key": "sk-chosen-by-me"}, "key"),
        ({"key_hash": "0" * 64}, "key_hash"),
        ({"used_usd": 0}, "used_usd"),
        ({"id": "tok_other"}, "id"),
        ({"quota_usd": -0.01}, "quota_usd"),
        ({"status": "paused"}, "status"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"chat_image_field": "inline"}, "chat_image_field"),
        ({"add_quota_usd": "lots"}, "add_quota_usd"),
        ({"quota_usd": 1e20}, "quota_usd"),
        ({"add_quota_usd": 1e20}, "add_quota_usd"),
        ({"rpm_limit": 2**40}, "rpm_limit"),
    ],
    ids=case_id,
)
def test_patch_rejects_bad_fields_and_changes_nothing(
    client: TestClient, body: dict[str, Any], param: str
) -> None:
    token = create(client, name="keep")
    before = client.get(f"/admin/tokens/{token['id']}", headers=ADMIN).json()
    err = error_of(patch(client, token["id"], **{"name": "changed", **body}), 400, param=param)
    assert err["type"] == "invalid_request_error"
    assert client.get(f"/admin/tokens/{token['id']}", headers=ADMIN).json() == before


@pytest.mark.parametrize("field", ["name", "group", "status"])
def test_patch_null_for_a_required_field_is_400(client: TestClient, field: str) -> None:
    token = create(client, name="keep")
    before = client.get(f"/admin/tokens/{token['id']}", headers=ADMIN).json()
    error_of(patch(client, token["id"], **{field: None}), 400, param=field)
    assert client.get(f"/admin/tokens/{token['id']}", headers=ADMIN).json() == before


# --- delete / rotate ---------------------------------------------------------------------------------


def test_delete_revokes_the_key_at_once(client: TestClient, db_path: Path) -> None:
    token = create(client)
    other = create(client, name="other")
    key = token["key"]
    models = client.get("/v1/models", headers=bearer(key))
    assert models.status_code == 200
    assert [m["id"] for m in models.json()["data"]] == ["mock-chat"]

    resp = client.delete(f"/admin/tokens/{token['id']}", headers=ADMIN)
    assert resp.status_code == 200
    assert resp.json()["id"] == token["id"] and resp.json()["deleted"] is True

    error_of(client.get("/v1/models", headers=bearer(key)), 401, code="invalid_api_key")
    error_of(client.get("/v1/me", headers=bearer(key)), 401, code="invalid_api_key")
    error_of(client.get(f"/admin/tokens/{token['id']}", headers=ADMIN), 404)
    error_of(client.delete(f"/admin/tokens/{token['id']}", headers=ADMIN), 404)
    assert [r["id"] for r in db_rows(db_path)] == [other["id"]]
    assert models_status(client, other["key"]) == 200


def test_rotate_kills_the_old_key_at_once(client: TestClient, db_path: Path) -> None:
    token = create(client, name="rot", quota_usd=3)
    old = token["key"]
    assert models_status(client, old) == 200  # cached

    resp = client.post(f"/admin/tokens/{token['id']}/rotate", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    new = rotated["key"]
    assert KEY_RE.match(new) and new != old
    assert rotated["id"] == token["id"] and rotated["key_prefix"] == new[: len(rotated["key_prefix"])]
    assert (rotated["name"], rotated["quota_usd"]) == ("rot", 3.0)

    error_of(client.get("/v1/models", headers=bearer(old)), 401, code="invalid_api_key")
    assert models_status(client, new) == 200
    view = client.get(f"/admin/tokens/{token['id']}", headers=ADMIN)
    assert "key" not in view.json() and new not in view.text
    (row,) = db_rows(db_path)
    assert row["key_hash"] == hashlib.sha256(new.encode()).hexdigest()


# --- client endpoints --------------------------------------------------------------------------------


def test_me(client: TestClient) -> None:
    limited = create(client, name="limited", quota_usd=5, expires_at="2099-12-31T23:59:59Z", group="economy")
    me = client.get("/v1/me", headers=bearer(limited["key"]))
    assert me.status_code == 200
    body = me.json()
    assert set(body) == {"name", "group", "quota_usd", "used_usd", "remaining_usd", "expires_at"}
    assert (body["name"], body["group"]) == ("limited", "economy")
    assert (body["quota_usd"], body["used_usd"], body["remaining_usd"]) == (5.0, 0.0, 5.0)
    assert datetime.fromisoformat(body["expires_at"]) == datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)

    unlimited = client.get("/v1/me", headers=bearer(create(client, name="free")["key"])).json()
    assert unlimited == {
        "name": "free",
        "group": "default",
        "quota_usd": None,
        "used_usd": 0.0,
        "remaining_usd": None,
        "expires_at": None,
    }
    error_of(client.get("/v1/me"), 401, code="invalid_api_key")
    error_of(client.get("/v1/me", headers=bearer("sk-" + "x" * 48)), 401, code="invalid_api_key")


def test_health_and_readiness(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok" and ready.json()["status"] == "ok"


def test_readiness_fails_when_the_database_does_not_answer(tmp_path: Path) -> None:
    # The "database file" is a directory: SQLite cannot open it.
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable" and ready.json()["checks"]["database"] != "ok"

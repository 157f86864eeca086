"""Failures that are not the gateway's fault are not crashes (§2): a client that hangs up mid-upload,
a database that cannot be reached during the token lookup. Driven in process through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.api.edge import Edge
from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings
from tests.fakes.server import free_port

ERROR_KEYS = {"message", "type", "param", "code"}


def settings(database_url: str) -> Settings:
    return Settings(
        database={"url": database_url},
        admin={"token": "adm"},
        storage={"backend": "none"},
        channels=[{"name": "m", "kind": "mock", "models": ["mock-chat", "mock-image"]}],
    )


@pytest.fixture
def client_and_key(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    s = settings(f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, s.database.url).result()
    with TestClient(create_app(s)) as client:
        key = client.post("/admin/tokens", json={"name": "t"}, headers={"Authorization": "Bearer adm"}).json()
        yield client, key["key"]


async def send_raw(app: Edge, path: str, headers: dict[str, str], parts: list[bytes]) -> list[dict[str, Any]]:
    """One request whose body stops after `parts`: then the client is gone."""
    incoming: list[dict[str, Any]] = [{"type": "http.request", "body": p, "more_body": True} for p in parts]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "content_type", "first_part"),
    [
        ("/v1/images/edits", "multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-d"),
        ("/v1/images/generations", "application/json", b'{"model": "mock-image", "prompt": "'),
        ("/v1/chat/completions", "application/json", b'{"model": "mock-chat", "messages": ['),
        ("/admin/tokens", "application/json", b'{"name": "'),
    ],
)  # fmt: skip
def test_client_gone_mid_upload_is_not_a_server_error(
    client_and_key: tuple[TestClient, str],
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    first_part: bytes,
) -> None:
    client, key = client_and_key
    app = client.app
    assert isinstance(app, Edge)
    auth = "Bearer adm" if path.startswith("/admin") else f"Bearer {key}"
    headers = {"content-type": content_type, "content-length": "100000", "authorization": auth}
    with caplog.at_level("INFO"):
        sent = client.portal.call(send_raw, app, path, headers, [first_part])  # type: ignore[union-attr]
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
    assert all(r.exc_info is None for r in caplog.records)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] in ([], [499], [400])  # nobody is listening; never a 500
    # And the gateway goes on serving.
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200, me.text


def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert set(resp.json()) == {"error"}
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) == ERROR_KEYS and err["code"] == code, err
    assert resp.headers["x-request-id"]
    return err


def test_database_down_during_token_lookup_is_a_503(caplog: pytest.LogCaptureFixture) -> None:
    down = settings(f"postgresql+asyncpg://gateway@127.0.0.1:{free_port()}/gateway")
    key = {"Authorization": "Bearer sk-" + "a" * 48}
    with TestClient(create_app(down)) as client, caplog.at_level("INFO"):
        answers = [
            client.get("/v1/models", headers=key),
            client.get("/v1/me", headers=key),
            client.post("/v1/chat/completions", headers=key, json={"model": "mock-chat", "messages": []}),
            client.post("/v1/images/generations", headers=key, json={"model": "mock-image", "prompt": "p"}),
        ]
        for resp in answers:
            err = error_of(resp, 503, "service_unavailable")
            assert err["type"] == "server_error"
            assert "database" in err["message"] and "127.0.0.1" not in err["message"]
        assert client.get("/healthz").status_code == 200  # the process itself is fine
    lookups = [r for r in caplog.records if r.name == "gateway.auth"]
    assert len(lookups) == len(answers)
    assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback
    assert not [r for r in caplog.records if "unhandled" in r.getMessage()]


def test_database_down_on_admin_and_usage_routes_is_a_503(caplog: pytest.LogCaptureFixture) -> None:
    """Not only the token lookup: any route whose statement meets an outage answers 503, in one log line."""
    down = settings(f"postgresql+asyncpg://gateway@127.0.0.1:{free_port()}/gateway")
    admin = {"Authorization": "Bearer adm"}
    with TestClient(create_app(down)) as client, caplog.at_level("INFO"):
        answers = [
            client.get("/admin/tokens", headers=admin),
            client.post("/admin/tokens", headers=admin, json={"name": "t"}),
            client.get("/admin/tokens/tok_x", headers=admin),
            client.get("/admin/usage/records", headers=admin),
            client.get("/admin/usage/summary", headers=admin, params={"group_by": "model"}),
        ]
        for resp in answers:
            err = error_of(resp, 503, "service_unavailable")
            assert "database" in err["message"] and "127.0.0.1" not in err["message"]
    assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback
    assert not [r for r in caplog.records if "unhandled" in r.getMessage()]

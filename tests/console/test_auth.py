"""Console sign-in, sessions and CSRF through the real app: pages need a session, the admin API takes the
session cookie (with the CSRF header on every change) as well as the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from gateway.console.session import COOKIE, CSRF_HEADER
from gateway.settings import AdminSettings, ConsoleSettings
from tests.billing.support import ADMIN, running, runtime, settings
from tests.console.support import PAGES, login_form, session, set_cookies, sign_in


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running(settings(tmp_path / "gateway.db")) as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
def test_every_console_page_redirects_to_sign_in_without_a_session(client: TestClient, path: str) -> None:
    resp = client.get(path, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/console/login?next={quote(path)}"
    client.cookies.set(COOKIE, "abc.1800000000.forged")
    assert client.get(path, follow_redirects=False).status_code == 303


def test_a_wrong_token_is_refused(client: TestClient) -> None:
    resp = sign_in(client, "not-the-admin-token")
    assert resp.status_code == 401
    assert "Wrong admin token." in resp.text
    assert COOKIE not in set_cookies(resp)
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_sign_in_sets_a_strict_http_only_expiring_cookie_without_the_token(client: TestClient) -> None:
    resp = sign_in(client, "adm", next_path="/console/usage")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/usage"
    cookie = set_cookies(resp)[COOKIE]
    assert cookie["httponly"] == "true"
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600)
    assert cookie["expires"]
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert "adm" not in cookie["value"].split(".")
    page = client.get("/console/usage")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_over_https_the_cookie_is_secure_and_lasts_the_configured_hours(tmp_path: Path) -> None:
    config = settings(tmp_path / "gateway.db", console={"session_hours": 2})
    with running(config) as plain:
        https = TestClient(plain.app, base_url="https://console.test")
        resp = sign_in(https, "adm")
        cookie = set_cookies(resp)[COOKIE]
        assert cookie["secure"] and cookie["max-age"] == str(2 * 3600)


def test_only_console_paths_are_followed_after_sign_in(client: TestClient) -> None:
    for evil in ("https://evil.example/", "//evil.example/console", "/console\\@evil.example"):
        client.cookies.clear()
        resp = sign_in(client, "adm", next_path=evil)
        assert resp.headers["location"] == "/console", evil


def test_a_cross_site_sign_in_post_is_refused(client: TestClient) -> None:
    # A form on another site can post the fields, but its request never carries the SameSite=Strict nonce.
    nonce = login_form(client)
    client.cookies.clear()
    resp = client.post(
        "/console/login", data={"token": "adm", "nonce": nonce, "next": "/console"}, follow_redirects=False
    )
    assert resp.status_code == 403
    assert COOKIE not in set_cookies(resp)


def test_the_admin_api_takes_the_session_and_wants_the_csrf_header_for_changes(client: TestClient) -> None:
    _, csrf = session(client, "adm")
    assert client.get("/admin/tokens").status_code == 200
    assert client.get("/admin/usage/summary?group_by=model").status_code == 200
    for headers in ({}, {CSRF_HEADER: "wrong"}, {"x-requested-with": "XMLHttpRequest"}):
        resp = client.post("/admin/tokens", json={"name": "forged"}, headers=headers)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "csrf_failed"
    assert client.post("/admin/channels/none/disable").status_code == 403
    assert client.get("/admin/tokens", params={"q": "forged"}).json()["data"] == []
    created = client.post("/admin/tokens", json={"name": "real"}, headers={CSRF_HEADER: csrf})
    assert created.status_code == 201, created.text
    token_id = created.json()["id"]
    for method, path in (("PATCH", f"/admin/tokens/{token_id}"), ("DELETE", f"/admin/tokens/{token_id}")):
        body = {"status": "disabled"} if method == "PATCH" else None
        assert client.request(method, path, json=body).status_code == 403
        assert client.request(method, path, json=body, headers={CSRF_HEADER: csrf}).status_code == 200


def test_bearer_auth_is_unchanged_and_wins_over_a_cookie(client: TestClient) -> None:
    session(client, "adm")
    assert client.get("/admin/tokens", headers={"Authorization": "Bearer wrong"}).status_code == 401
    fresh = TestClient(client.app)
    assert fresh.get("/admin/tokens").status_code == 401
    assert fresh.post("/admin/tokens", json={"name": "x"}, headers=ADMIN).status_code == 201


def test_a_new_admin_token_or_session_secret_ends_the_session(client: TestClient) -> None:
    session(client, "adm")
    rt = runtime(client)
    old = rt.settings
    rt.settings = old.model_copy(update={"console": ConsoleSettings(session_secret=SecretStr("rotated"))})
    assert client.get("/admin/tokens").status_code == 401
    assert client.get("/console", follow_redirects=False).status_code == 303
    rt.settings = old
    assert client.get("/admin/tokens").status_code == 200
    rt.settings = old.model_copy(update={"admin": AdminSettings(token=SecretStr("new-admin"))})
    assert client.get("/admin/tokens").status_code == 401


def test_sign_out_clears_the_cookie_and_needs_the_csrf_token(client: TestClient) -> None:
    cookie, csrf = session(client, "adm")
    refused = client.post("/console/logout", follow_redirects=False)
    assert refused.status_code == 403
    resp = client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/console/login"
    cleared = set_cookies(resp)[COOKIE]
    assert cleared["max-age"] == "0" and cleared["path"] == "/"
    assert client.get("/console", follow_redirects=False).status_code == 303
    assert client.get("/admin/tokens").status_code == 401


def test_without_an_admin_token_sign_in_says_how_to_set_it(tmp_path: Path) -> None:
    with running(settings(tmp_path / "gateway.db", admin={"token": None})) as client:
        resp = client.get("/console/login")
        assert resp.status_code == 503 and "GATEWAY_ADMIN_TOKEN" in resp.text
        assert client.get("/console", follow_redirects=False).status_code == 303
        assert client.post("/console/login", data={"token": ""}).status_code == 503


def test_the_console_can_be_switched_off(tmp_path: Path) -> None:
    with running(settings(tmp_path / "gateway.db", console={"enabled": False})) as client:
        assert client.get("/console/login").status_code == 404
        assert client.get("/console", follow_redirects=False).status_code == 404

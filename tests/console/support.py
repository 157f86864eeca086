"""Helpers for the console tests: sign in through the real form, read a page's CSRF token and cookie flags."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

from starlette.testclient import TestClient

from gateway.console.session import COOKIE, LOGIN_COOKIE

PAGES = ["/console", "/console/", "/console/tokens", "/console/tokens/tok_x", "/console/usage",
         "/console/channels"]  # fmt: skip
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def set_cookies(resp: Any) -> dict[str, dict[str, str]]:
    """Every Set-Cookie of a response: name -> {"value": …, attribute (lower case): value or ""}."""
    out: dict[str, dict[str, str]] = {}
    for header in resp.headers.get_list("set-cookie"):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attrs = {k.lower(): str(v) for k, v in morsel.items() if v}
            if "httponly" in header.lower():
                attrs["httponly"] = "true"
            out[name] = {"value": morsel.value, **attrs}
    return out


def login_form(client: TestClient) -> str:
    """Open the sign-in page: its nonce (the browser also keeps the nonce cookie)."""
    resp = client.get("/console/login")
    assert resp.status_code == 200, resp.text
    match = _NONCE.search(resp.text)
    assert match is not None
    return match.group(1)


def sign_in(client: TestClient, token: str, next_path: str = "/console") -> Any:
    nonce = login_form(client)
    return client.post(
        "/console/login",
        data={"token": token, "nonce": nonce, "next": next_path},
        follow_redirects=False,
    )


def session(client: TestClient, token: str) -> tuple[str, str]:
    """Sign in: (session cookie value, CSRF token of its pages). The client keeps the cookie."""
    resp = sign_in(client, token)
    assert resp.status_code == 303, resp.text
    cookie = set_cookies(resp)[COOKIE]["value"]
    client.cookies.delete(LOGIN_COOKIE)
    page = client.get("/console")
    assert page.status_code == 200
    match = _CSRF.search(page.text)
    assert match is not None
    return cookie, match.group(1)

"""Bad input gets a clear OpenAI-shaped error, and the gateway keeps serving other requests."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
from openai import OpenAI

from tests.gateway_process import GatewayProcess

GOOD = {"model": "chat-basic", "messages": [{"role": "user", "content": "Hello"}]}


def post(gateway: GatewayProcess, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, timeout=10, **kwargs)


def assert_error(resp: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    assert resp.headers["x-request-id"]
    assert "server" not in resp.headers  # the server software is not named


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_json", None),
        (b'{"model": "chat-basic", "messages": "hi"}', 400, "invalid_value", "messages"),
        (b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}', 400, "invalid_value", "model"),
        (b'{"model": "chat-basic", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400,
         "invalid_value", "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_required_parameter", "model"),
        # numbers sent as strings are refused, not coerced and forwarded (OpenAI refuses them too)
        (b'{"model": "chat-basic", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}', 400,
         "invalid_value", "max_tokens"),
        (b'{"model": "chat-basic", "messages": [{"role": "user", "content": "x"}], "temperature": "1"}', 400,
         "invalid_value", "temperature"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": ""}]}', 404, "model_not_found",
         "model"),
    ],
)  # fmt: skip
def test_bad_bodies(
    gateway: GatewayProcess,
    token: str,
    client: OpenAI,
    body: bytes,
    status: int,
    code: str,
    param: str | None,
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert_error(post(gateway, headers, content=body), status, code, param)
    assert client.chat.completions.create(**GOOD).choices  # type: ignore[call-overload]


def test_missing_and_wrong_auth(gateway: GatewayProcess, client: OpenAI) -> None:
    assert_error(post(gateway, {}, json=GOOD), 401, "invalid_api_key")
    assert_error(post(gateway, {"Authorization": "Bearer sk-nope"}, json=GOOD), 401, "invalid_api_key")
    assert client.chat.completions.create(**GOOD).choices  # type: ignore[call-overload]


def test_body_over_limit(gateway: GatewayProcess, token: str, client: OpenAI) -> None:
    big = {**GOOD, "padding": "x" * (1024 * 1024 + 10)}
    assert_error(post(gateway, {"Authorization": f"Bearer {token}"}, json=big), 413, "request_too_large")

    def chunks() -> Any:  # no Content-Length: the limit holds while reading
        yield b'{"model": "chat-basic", "padding": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    resp = post(gateway, {"Authorization": f"Bearer {token}"}, content=chunks())
    assert_error(resp, 413, "request_too_large")
    assert client.chat.completions.create(**GOOD).choices  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "{token}"},  # seed 001 sends the key without "Bearer"
        {"x-api-key": "{token}"},
        {"x-goog-api-key": "{token}"},
    ],
)
def test_every_auth_header_variant(gateway: GatewayProcess, token: str, headers: dict[str, str]) -> None:
    resp = post(gateway, {k: v.format(token=token) for k, v in headers.items()}, json=GOOD)
    assert resp.status_code == 200, resp.text


def test_key_query_parameter(gateway: GatewayProcess, token: str) -> None:
    resp = httpx.post(f"{gateway.url}/v1/chat/completions?key={token}", json=GOOD, timeout=10)
    assert resp.status_code == 200, resp.text


def test_request_id_echoed_and_unknown_route_shaped(gateway: GatewayProcess, token: str) -> None:
    resp = post(gateway, {"Authorization": f"Bearer {token}", "x-request-id": "abc-123"}, json=GOOD)
    assert resp.headers["x-request-id"] == "abc-123"
    assert_error(httpx.get(f"{gateway.url}/v1/nothing-here", timeout=10), 404, "not_found")


def test_group_not_allowed(gateway: GatewayProcess, token: str) -> None:
    resp = post(gateway, {"Authorization": f"Bearer {token}"}, json={**GOOD, "group": "economy"})
    assert_error(resp, 403, "group_not_allowed", "group")

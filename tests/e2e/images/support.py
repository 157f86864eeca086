"""Helpers for the Images API end-to-end tests: config pieces, data URLs, errors, usage records."""

from __future__ import annotations

import base64
import sqlite3
import time
from typing import Any

import httpx2 as httpx
from pydantic import SecretStr

from tests.gateway_process import GatewayProcess
from tests.s3server import S3Endpoint


def channel(name: str, url: str, behaviour: str, models: list[str], **extra: object) -> dict[str, object]:
    """An `openai` channel on the fake Images upstream, answering with `behaviour`."""
    return {
        "name": name,
        "kind": "openai",
        "base_url": f"{url}/{behaviour}/v1",
        "api_keys": [f"sk-upstream-{name}"],
        "models": models,
        **extra,
    }


def s3_config(endpoint: S3Endpoint, bucket: str, **overrides: Any) -> dict[str, Any]:
    """`S3Endpoint.settings()` as the plain mapping `storage.s3` takes in the YAML file."""
    values = endpoint.settings(bucket, **overrides).model_dump()
    return {
        k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items() if v is not None
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{b64(data)}"


def post(gateway: GatewayProcess, token: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.post(f"{gateway.url}{path}", headers=headers, timeout=30, **kwargs)


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An OpenAI-shaped §2 error with `code`; returns the `error` object."""
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    assert error["message"]
    assert resp.headers["x-request-id"]
    return error


def usage_record(gateway: GatewayProcess, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The usage record the gateway wrote for `request_id`, read from its SQLite file."""
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(f"file:{gateway.tmp / 'gateway.db'}?mode=ro", uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM usage_records WHERE request_id = ?", (request_id,)).fetchone()
        finally:
            conn.close()
        if row is not None:
            return dict(row)
        if time.monotonic() > deadline:
            raise AssertionError(f"no usage record for {request_id}")
        time.sleep(0.05)

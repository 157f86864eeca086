"""The real gateway app in process (TestClient: lifespan, edge, error renderer) on a migrated SQLite file,
with one token; plus helpers to check the §2 error shape, read SSE answers and usage records."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}
ERROR_KEYS = {"message", "type", "param", "code"}


def openai_channel(name: str, base_url: str, models: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "openai", "base_url": base_url, "api_keys": [f"sk-up-{name}"],
            "models": models, **extra}  # fmt: skip


@contextmanager
def gateway_client(tmp: Path, **overrides: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A running app and the headers of a valid token."""
    values: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'gateway.db'}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "local", "local": {"root": str(tmp / "images")}},
        "usage": {"flush_interval_seconds": 0.05},
        "logging": {"level": "WARNING"},
        **overrides,
    }
    settings = Settings(**values)
    with ThreadPoolExecutor(max_workers=1) as pool:  # migrate runs its own event loop
        pool.submit(migrate.upgrade, settings.database.url).result()
    with TestClient(create_app(settings), raise_server_exceptions=True) as client:
        resp = client.post("/admin/tokens", json={"name": "t"}, headers=ADMIN)
        assert resp.status_code == 201, resp.text
        yield client, {"Authorization": f"Bearer {resp.json()['key']}"}


def error_of(resp: Any, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """The §2 shape: exactly {error: {message, type, param, code}}; returns the inner object."""
    if status is not None:
        assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) == ERROR_KEYS, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if code is not None:
        assert err["code"] == code, err
    return err


def sse_events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data) of each event of an SSE answer; comments skipped."""
    events = []
    for block in raw.split(b"\n\n"):
        name, data = None, []
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:])
        if data:
            events.append((name, b"\n".join(data)))
    return events


def stream_error(raw: bytes) -> dict[str, Any]:
    """The SSE answer ends with an `error` event (and no [DONE]); returns its error object."""
    assert raw.endswith(b"\n\n"), raw[-200:]
    events = sse_events(raw)
    assert events and b"[DONE]" not in [data for _, data in events], raw[-300:]
    name, data = events[-1]
    assert name == "error", raw[-300:]
    body = orjson.loads(data)
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    error: dict[str, Any] = body["error"]
    return error


def usage_record(db: Path, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM usage_records WHERE request_id = ?", (request_id,)).fetchone()
        conn.close()
        if row is not None:
            record = dict(row)
            if isinstance(record.get("attempts"), str):
                record["attempts"] = orjson.loads(record["attempts"])
            return record
        assert time.monotonic() < deadline, f"no usage record for {request_id}"
        time.sleep(0.05)

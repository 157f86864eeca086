"""Logs (§8.4), from a real process run at DEBUG: one JSON object per line, carrying the request id of
the request a line belongs to; by default no prompt and no base64 image (the client's or the answer's,
in a synchronous call or an async job's stored result) reaches the log. With `logging.log_bodies: true`
the same run does log them: the check below can see them when they are there."""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from gateway.providers.mock import render_png
from tests.gateway_process import GatewayProcess


def run_traffic(proc: GatewayProcess, token: str, marker: str) -> tuple[list[str], str]:
    """Requests that carry the marker and base64 images; returns base64 slices to look for, and the id
    of a request that logs a warning."""
    url, headers = proc.url, {"Authorization": f"Bearer {token}"}
    client_b64 = base64.b64encode(render_png(marker, 24)).decode()
    chat = {"model": "mock-image", "messages": [{"role": "user", "content": f"{marker} chat"}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=chat, headers=headers, timeout=10).status_code == 200
    gen = httpx.post(f"{url}/v1/images/generations", json={"model": "mock-image", "prompt": f"{marker} gen"},
                     headers=headers, timeout=10)  # fmt: skip
    answer_b64 = gen.json()["data"][0]["b64_json"]
    edit = {"model": "mock-image", "prompt": f"{marker} edit",
            "images": [{"image_url": f"data:image/png;base64,{client_b64}"}]}  # fmt: skip
    assert httpx.post(f"{url}/v1/images/edits", json=edit, headers=headers, timeout=10).status_code == 200
    job = httpx.post(f"{url}/v1/images/generations", json={"model": "mock-image", "prompt": f"{marker} job"},
                     headers={**headers, "Prefer": "respond-async"}, timeout=10).json()  # fmt: skip
    deadline = time.monotonic() + 15
    while (view := httpx.get(f"{url}/v1/images/jobs/{job['id']}", headers=headers, timeout=10).json())[
        "status"
    ] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job_b64 = view["result"]["data"][0]["b64_json"]
    failing = httpx.post(f"{url}/v1/images/generations", json={"model": "broken-image", "prompt": marker},
                         headers=headers, timeout=10)  # fmt: skip
    assert failing.status_code == 502
    slices = [b64[len(b64) // 2 : len(b64) // 2 + 48] for b64 in (client_b64, answer_b64, job_b64)]
    return slices, failing.headers["x-request-id"]


@pytest.mark.parametrize("log_bodies", [False, True])
def test_logs_are_json_with_request_ids_and_keep_bodies_out(log_bodies: bool, tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "logging": {"level": "DEBUG", "log_bodies": log_bodies},
        "retry": {"failures_to_cooldown": 1},  # the failing call logs a cooldown warning
        "channels": [
            {"name": "mock", "kind": "mock", "models": ["mock-image"]},
            {"name": "broken", "kind": "mock", "models": ["broken-image"], "mock": {"failure_rate": 1.0}},
        ],
    }
    proc = GatewayProcess(tmp_path, config)
    token = proc.create_token("logs")
    marker = f"PROMPT-{secrets.token_hex(8)}"
    proc.start()
    try:
        slices, warned_id = run_traffic(proc, token, marker)
    finally:
        proc.stop()
    text = proc.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    assert any(
        e["request_id"] == warned_id and "cooling down" in e["message"] for e in lines if "request_id" in e
    )
    found = [s for s in [marker, *slices] if s in text]
    if log_bodies:
        assert marker in found and slices[0] in found  # logged when asked for: the check does see them
    else:
        assert found == []

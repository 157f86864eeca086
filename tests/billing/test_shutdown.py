"""SIGTERM under load (§6.5): requests in flight when the gateway is told to stop still get their answers,
and after a restart there is a usage record for every answer, with the quota charged exactly their cost.

The usage writer is configured never to flush on its own during the test (huge batch, long interval), so
every record reaches the database only through the shutdown path.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.fakes.billing_upstream import FakeBillingUpstream
from tests.fakes.server import ThreadedServer
from tests.gateway_process import GatewayProcess

N = 12


@pytest.fixture
def upstream() -> Iterator[tuple[FakeBillingUpstream, str]]:
    fake = FakeBillingUpstream()
    server = ThreadedServer(fake.app).start()
    yield fake, server.url
    fake.release()
    server.stop()


def config(url: str) -> dict[str, Any]:
    return {
        "usage": {"flush_interval_seconds": 3600, "batch_size": 10_000},
        "pricing": {
            "unpriced": "reject",
            "models": {
                "img-gate": {"per_call": 0.01},
                "tok-gate": {"per_million_tokens": {"text_input": 5, "image_output": 30}},
            },
        },
        "channels": [
            {
                "name": "gate",
                "kind": "openai",
                "base_url": f"{url}/gate/v1",
                "api_keys": ["sk-up"],
                "models": ["img-gate", "tok-gate"],
            }
        ],
    }


def generate(url: str, key: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/images/generations",
        json={"model": model, "prompt": "stop", "quality": "low"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def test_sigterm_under_load_loses_no_record(
    tmp_path: Path, upstream: tuple[FakeBillingUpstream, str]
) -> None:
    fake, url = upstream
    proc = GatewayProcess(tmp_path, config(url))
    view = json.loads(proc.cli("tokens", "create", "--name", "load", "--quota-usd", "1", "--json"))
    proc.start()
    models = ["img-gate", "tok-gate"] * (N // 2)
    with ThreadPoolExecutor(max_workers=N) as pool:
        futures = [pool.submit(generate, proc.url, view["key"], m) for m in models]
        assert fake.wait_arrivals(N), "every request must be in flight at the upstream"
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        fake.release()
        answers = [f.result() for f in futures]
    assert proc.proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises it after a clean stop
    assert [r.status_code for r in answers] == [200] * N  # in-flight requests finish before the exit

    restarted = GatewayProcess(tmp_path, config(url)).start()  # the same database file
    try:
        resp = restarted.admin("GET", f"/admin/usage/records?token={view['id']}&limit=1000")
        rows = resp.json()["data"]
        token = restarted.admin("GET", f"/admin/tokens/{view['id']}").json()
    finally:
        restarted.stop()
    assert sorted(r["request_id"] for r in rows) == sorted(a.headers["x-request-id"] for a in answers)
    spent = sum(r["cost_micro_usd"] for r in rows)
    assert spent == (N // 2) * 10_000 + (N // 2) * (10 * 5 + 1056 * 30)  # the upstream's usage
    assert round(token["used_usd"] * 1_000_000) == spent

"""A database outage (§6.5): PostgreSQL behind a proxy the test cuts while requests are at the upstream.
The answers still come; a new request that needs a reservation meanwhile gets 503 `quota_unavailable`;
when the database returns, every record is written and every settlement applied."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.billing.test_shutdown import config, generate
from tests.db.conftest import create_pg_database, drop_pg_database, requires_postgres
from tests.fakes.billing_upstream import FakeBillingUpstream
from tests.fakes.server import ThreadedServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.gateway_process import GatewayProcess

pytestmark = [requires_postgres, pytest.mark.postgres]
N = 6


@pytest.fixture
def upstream() -> Iterator[tuple[FakeBillingUpstream, str]]:
    fake = FakeBillingUpstream()
    server = ThreadedServer(fake.app).start()
    yield fake, server.url
    fake.release()
    server.stop()


@pytest.fixture
def proxied_pg() -> Iterator[tuple[TcpProxy, str]]:
    url = create_pg_database()
    parsed = make_url(url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
    try:
        yield proxy, parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.stop()
        drop_pg_database(url)


def records_when(proc: GatewayProcess, token_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        resp = proc.admin("GET", f"/admin/usage/records?token={token_id}")
        rows: list[dict[str, Any]] = resp.json().get("data", []) if resp.status_code == 200 else []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_outage_loses_no_record_and_applies_settlements_later(
    tmp_path: Path, upstream: tuple[FakeBillingUpstream, str], proxied_pg: tuple[TcpProxy, str]
) -> None:
    fake, url = upstream
    proxy, db_url = proxied_pg
    proc = GatewayProcess(
        tmp_path, {**config(url), "database": {"url": db_url}, "usage": {"flush_interval_seconds": 0.05}}
    )
    view = json.loads(proc.cli("tokens", "create", "--name", "outage", "--quota-usd", "1", "--json"))
    proc.start()
    try:
        with ThreadPoolExecutor(max_workers=N) as pool:
            futures = [pool.submit(generate, proc.url, view["key"], "tok-gate") for _ in range(N)]
            assert fake.wait_arrivals(N)  # all reserved, all at the upstream
            proxy.cut()
            refused = generate(
                proc.url, view["key"], "tok-gate"
            )  # its caller is cached; its reservation fails
            fake.release()
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * N
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "quota_unavailable"
        proxy.restore()
        rows = records_when(proc, view["id"], N)
        token = proc.admin("GET", f"/admin/tokens/{view['id']}").json()
    finally:
        proc.stop()
    assert sorted(r["request_id"] for r in rows) == sorted(a.headers["x-request-id"] for a in answers)
    spent = sum(r["cost_micro_usd"] for r in rows)
    # Each reserved 2×5 + 4096×30 (no image estimate configured) and was settled down to its usage.
    assert spent == N * (10 * 5 + 1056 * 30)
    assert round(token["used_usd"] * 1_000_000) == spent

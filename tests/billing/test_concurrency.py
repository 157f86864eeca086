"""Concurrent requests on one token (§6.5): 40 at once on a quota that covers 10 give exactly 10 answers,
29+1 refusals, a quota left at exactly zero, and records whose costs add up to the quota spent. On SQLite
with one gateway process, and on PostgreSQL with two gateway processes sharing the database. The same with
blocks of quota (billing/leases.py) on a quota large enough to take them: never more than the quota spent,
every block given back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.db.conftest import create_pg_database, drop_pg_database, requires_postgres
from tests.gateway_process import GatewayProcess

PRICE_MICRO = 10_000
CONFIG: dict[str, Any] = {
    "usage": {"flush_interval_seconds": 0.05},
    "pricing": {"unpriced": "reject", "models": {"mock-image": {"per_call": 0.01}}},
    # Each upstream call takes a while, so that the 40 requests are all in flight together.
    "channels": [{"name": "mock", "kind": "mock", "models": ["mock-image"], "mock": {"latency_ms": 300}}],
}


def create_token(proc: GatewayProcess, quota_usd: str) -> tuple[str, str]:
    view = json.loads(proc.cli("tokens", "create", "--name", "race", "--quota-usd", quota_usd, "--json"))
    return view["id"], view["key"]


def generate(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/images/generations",
        json={"model": "mock-image", "prompt": "a race", "response_format": "b64_json"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def usage_records(proc: GatewayProcess, token_id: str, expected: int) -> list[dict[str, Any]]:
    """The token's records once `expected` of them are written (the writer batches them)."""
    deadline = time.monotonic() + 20
    while True:
        rows: list[dict[str, Any]] = proc.admin("GET", f"/admin/usage/records?token={token_id}").json()[
            "data"
        ]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def race(procs: list[GatewayProcess]) -> None:
    token_id, key = create_token(procs[0], "0.1")  # covers exactly 10 images
    urls = [procs[i % len(procs)].url for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda url: generate(url, key), urls))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 10 + [429] * 30, statuses
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 429} == {"insufficient_quota"}
    token = procs[-1].admin("GET", f"/admin/tokens/{token_id}").json()
    assert (token["used_usd"], token["remaining_usd"]) == (0.1, 0.0)
    rows = usage_records(procs[0], token_id, expected=10)
    assert len(rows) == 10 and {r["status"] for r in rows} == {"success"}
    assert sum(r["cost_micro_usd"] for r in rows) == 10 * PRICE_MICRO == 100_000  # the quota spent


@contextmanager
def gateways(tmp_path: Path, config: dict[str, Any], count: int) -> Iterator[list[GatewayProcess]]:
    """`count` gateway processes on one database, started (each in its own directory when several)."""
    dirs = [tmp_path / f"p{i}" for i in range(count)] if count > 1 else [tmp_path]
    for path in dirs:
        path.mkdir(exist_ok=True)
    procs = [GatewayProcess(path, config) for path in dirs]
    procs[0].cli("migrate")
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


BLOCKS_CONFIG: dict[str, Any] = {**CONFIG, "pricing": {**CONFIG["pricing"], "quota_block_requests": 4}}


def race_with_blocks(procs: list[GatewayProcess]) -> None:
    """140 requests on a quota of 100 images, in blocks of 4: one process spends exactly the quota; with
    more, what another process still holds when one is refused (at most a block each) may go unspent
    until it is given back. The token's row ends at exactly what the records cost."""
    token_id, key = create_token(procs[0], "1")
    urls = [procs[i % len(procs)].url for i in range(140)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda url: generate(url, key), urls))
    served = sum(r.status_code == 200 for r in answers)
    assert {r.status_code for r in answers} == {200, 429}
    assert 100 - 4 * (len(procs) - 1) <= served <= 100
    rows = usage_records(procs[0], token_id, expected=served)
    assert len(rows) == served and sum(r["cost_micro_usd"] for r in rows) == served * PRICE_MICRO
    deadline = time.monotonic() + 20  # idle blocks go back after 2 s
    while True:
        token = procs[-1].admin("GET", f"/admin/tokens/{token_id}").json()
        if round(token["used_usd"] * 1_000_000) == served * PRICE_MICRO or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert round(token["used_usd"] * 1_000_000) == served * PRICE_MICRO


RACES = pytest.mark.parametrize(
    ("check", "config"), [(race, CONFIG), (race_with_blocks, BLOCKS_CONFIG)], ids=["forty-on-ten", "blocks"]
)
Race = Callable[[list[GatewayProcess]], None]


@RACES
def test_concurrent_requests_on_sqlite_one_process(
    tmp_path: Path, check: Race, config: dict[str, Any]
) -> None:
    with gateways(tmp_path, config, 1) as procs:
        check(procs)


@requires_postgres
@pytest.mark.postgres
@RACES
def test_concurrent_requests_on_postgres_two_processes(
    tmp_path: Path, pg_url: str, check: Race, config: dict[str, Any]
) -> None:
    with gateways(tmp_path, {**config, "database": {"url": pg_url}}, 2) as procs:
        check(procs)

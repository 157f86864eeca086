"""/metrics with `--workers 2` (§8.4, prometheus-client multiprocess mode): after requests served by
both worker processes, every scrape, whichever worker answers it, reports the total of both."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway_process import ADMIN_TOKEN, GatewayProcess

ROUTE = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    config = {
        "server": {"workers": 2},
        "channels": [{"name": "mock", "kind": "mock", "models": ["mock-chat"]}],
    }
    proc = GatewayProcess(tmp_path_factory.mktemp("workers"), config)
    token = proc.create_token("metrics")
    proc.start()
    yield proc, token
    proc.stop()


def worker_of(resp: httpx.Response) -> str:
    """Request ids are a per-process prefix and a counter: the prefix names the worker."""
    return resp.headers["x-request-id"][:-10]


def chat_count(proc: GatewayProcess) -> tuple[float, str]:
    resp = httpx.get(f"{proc.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                     timeout=10)  # fmt: skip
    assert resp.status_code == 200, resp.text
    total = sum(
        s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
        if s.name == "gateway_requests_total" and s.labels.get("route") == ROUTE
    )
    return total, worker_of(resp)


def test_counters_add_up_across_both_workers(gateway: tuple[GatewayProcess, str]) -> None:
    proc, token = gateway
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    workers: dict[str, int] = {}
    sent = 0
    while len(workers) < 2 or sent < 10:  # new connections until both workers have answered some
        resp = httpx.post(f"{proc.url}{ROUTE}", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {token}", "Connection": "close"})  # fmt: skip
        assert resp.status_code == 200
        workers[worker_of(resp)] = workers.get(worker_of(resp), 0) + 1
        sent += 1
        assert sent < 400, "one worker answered every request"
    assert len(workers) == 2 and all(n < sent for n in workers.values())

    scraped_by: set[str] = set()
    for _ in range(200):  # scrape through both workers: each reports both workers' requests
        total, worker = chat_count(proc)
        assert total == sent
        scraped_by.add(worker)
        if len(scraped_by) == 2:
            break
    assert scraped_by == set(workers)

    assert httpx.get(f"{proc.url}/metrics", timeout=10).status_code == 401  # admin token required

"""/metrics with `--workers 2` (§8.4, prometheus-client multiprocess mode): after requests served by
both worker processes, every scrape, whichever worker answers it, reports the total of both."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def test_a_burst_of_new_connections_is_spread_across_both_workers(
    gateway: tuple[GatewayProcess, str],
) -> None:
    """Each worker listens on a socket of its own (SO_REUSEPORT): 40 connections opened at once do not all
    land on the worker that wakes first, as they may on one shared socket."""
    proc, _ = gateway
    opened = threading.Barrier(40)

    def one(_: int) -> str:
        with httpx.Client(timeout=10) as client:  # a connection of its own
            opened.wait()
            return worker_of(client.get(f"{proc.url}/healthz"))

    with ThreadPoolExecutor(max_workers=40) as pool:
        served = Counter(pool.map(one, range(40)))
    assert len(served) == 2 and min(served.values()) >= 6, served  # a fair split: 20 ± 4 (p < 1e-6 under 6)


def workers_of(proc: GatewayProcess) -> set[int]:
    """The worker processes (spawned by multiprocessing) of the serving parent."""
    assert proc.proc is not None
    pid = proc.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def test_a_worker_that_dies_is_replaced(gateway: tuple[GatewayProcess, str]) -> None:
    proc, _ = gateway
    before = workers_of(proc)
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (len(now := workers_of(proc)) == 2 and victim not in now):
        time.sleep(0.1)
    assert len(now) == 2 and victim not in now, now
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < 2:  # the new worker serves once it has started
        seen.add(worker_of(httpx.get(f"{proc.url}/healthz", timeout=10)))
    test_a_burst_of_new_connections_is_spread_across_both_workers(gateway)  # and takes its share


def test_an_address_already_taken_stops_the_server(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path, {"server": {"workers": 2}})
    with socket.socket() as taken:  # a listener without SO_REUSEPORT: nobody else may bind the port
        taken.bind(("127.0.0.1", proc.port))
        taken.listen()
        proc.cli("migrate")
        with pytest.raises(RuntimeError, match="exited early"):
            proc.start()
    assert proc.proc is not None and proc.proc.returncode == 3

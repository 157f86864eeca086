"""Two gateway processes ("nodes") sharing PostgreSQL and Redis (§8.3): rate limits, concurrency, key
cooldowns, token revocations and channel switches hold across both; reload swaps one node's config
while a request in flight on the old one completes. Skipped without GATEWAY_TEST_POSTGRES_URL and
GATEWAY_TEST_REDIS_URL.

Waits on other nodes poll with a deadline (the spec's "within 1 s"); everything else is ordered by
events: the fake upstream holds requests until the test releases them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from tests.db.conftest import create_pg_database, drop_pg_database, requires_postgres
from tests.fakes.held_upstream import REFUSED_KEY, HeldUpstream
from tests.fakes.openai_upstream import wait_for
from tests.fakes.server import ThreadedServer
from tests.gateway_process import GatewayProcess
from tests.redis_support import REDIS_URL, drop_prefix, requires_redis, unique_prefix

pytestmark = [pytest.mark.postgres, requires_postgres, *requires_redis]


class Node:
    def __init__(self, proc: GatewayProcess) -> None:
        self.proc = proc

    def chat(self, key: str, model: str = "mock-chat", timeout: float = 30) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(f"{self.proc.url}/v1/chat/completions", json=body, headers=headers, timeout=timeout)

    def channel(self, name: str) -> dict[str, Any]:
        resp = self.proc.admin("GET", "/admin/channels")
        assert resp.status_code == 200, resp.text
        found: dict[str, Any] = next(ch for ch in resp.json()["data"] if ch["name"] == name)
        return found


def config(upstream: str, db_url: str, prefix: str, extra_channels: list[dict[str, Any]]) -> dict[str, Any]:
    def openai(name: str, behaviour: str, keys: list[str], models: list[str]) -> dict[str, Any]:
        return {"name": name, "kind": "openai", "base_url": f"{upstream}/{behaviour}/v1", "api_keys": keys,
                "models": models}  # fmt: skip

    return {
        "database": {"url": db_url, "auto_migrate": False},
        "redis": {"url": REDIS_URL, "key_prefix": prefix},
        "auth": {"token_cache_seconds": 60},  # far longer than the 1 s a revocation may take
        "channels": [
            {"name": "mock", "kind": "mock", "models": ["mock-chat"]},
            {"name": "switchable", "kind": "mock", "models": ["switch-chat"]},
            openai("held", "hold", ["sk-held"], ["held-chat"]),
            openai("busy", "keyed", [REFUSED_KEY, "sk-busy-1"], ["busy-chat"]),
            *extra_channels,
        ],
    }


class Cluster:
    def __init__(self, a: Node, b: Node, upstream: HeldUpstream, make_config: Callable[..., dict[str, Any]]):
        self.a, self.b, self.upstream, self.make_config = a, b, upstream, make_config

    def token(self, **fields: Any) -> str:
        resp = self.a.proc.admin("POST", "/admin/tokens", json={"name": "cluster", **fields})
        assert resp.status_code == 201, resp.text
        key: str = resp.json()["key"]
        return key


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    upstream = HeldUpstream()
    server = ThreadedServer(upstream.app).start()
    db_url, prefix = create_pg_database(), unique_prefix()

    def make_config(*extra: dict[str, Any]) -> dict[str, Any]:
        return config(server.url, db_url, prefix, list(extra))

    a = GatewayProcess(tmp_path_factory.mktemp("node-a"), make_config())
    b = GatewayProcess(tmp_path_factory.mktemp("node-b"), make_config())
    try:
        a.cli("migrate")
        a.start()
        b.start()
        yield Cluster(Node(a), Node(b), upstream, make_config)
    finally:
        a.stop()
        b.stop()
        server.stop()
        drop_pg_database(db_url)
        drop_prefix(prefix)


@pytest.fixture
def c(cluster: Cluster) -> Iterator[Cluster]:
    cluster.upstream.reset()
    yield cluster
    cluster.upstream.release()  # never leave a request held for the next test


def poll(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def test_a_5_rpm_token_gets_exactly_5_requests_across_both_nodes(c: Cluster) -> None:
    key = c.token(rpm_limit=5)
    answers = [(c.a if i % 2 else c.b).chat(key) for i in range(10)]
    assert [r.status_code for r in answers].count(200) == 5
    for refused in (r for r in answers if r.status_code != 200):
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_max_concurrency_holds_across_both_nodes(c: Cluster) -> None:
    key = c.token(max_concurrency=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(c.a.chat, key, "held-chat")
        second = pool.submit(c.b.chat, key, "held-chat")
        assert wait_for(lambda: c.upstream.held() == 2, 10)
        for node in (c.a, c.b):  # both slots are taken, one on each node
            refused = node.chat(key)
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "1"
        assert c.upstream.held() == 2  # refused while the first two were still in flight
        c.upstream.release()
        assert first.result().status_code == 200 and second.result().status_code == 200
    assert poll(lambda: c.b.chat(key).status_code == 200, 5)  # the slots came back


def test_a_key_cooled_down_by_a_429_on_a_is_skipped_by_b(c: Cluster) -> None:
    key = c.token()
    for _ in range(2):  # round robin: one of two requests starts on the refused key
        assert c.a.chat(key, "busy-chat").status_code == 200  # failed over to the other key
    assert c.upstream.keys("keyed").count(REFUSED_KEY) == 1
    state = c.a.channel("busy")["keys"][0]
    assert state["state"] == "cooling_down" and state["cooldown_until"]
    assert poll(lambda: c.b.channel("busy")["keys"][0]["state"] == "cooling_down", 1.0)
    for _ in range(4):
        assert c.b.chat(key, "busy-chat").status_code == 200
    assert c.upstream.keys("keyed").count(REFUSED_KEY) == 1  # b never tried it
    assert c.b.channel("busy")["keys"][1]["state"] == "ok"


def test_a_token_revoked_through_a_is_refused_by_b_within_a_second(c: Cluster) -> None:
    key = c.token()
    assert c.b.chat(key).status_code == 200  # now cached on b, for 60 s
    token_id = c.a.proc.admin("GET", "/admin/tokens").json()["data"][-1]["id"]
    assert c.a.proc.admin("DELETE", f"/admin/tokens/{token_id}").status_code == 200
    assert poll(lambda: c.b.chat(key).status_code == 401, 1.0)


def test_a_channel_switched_off_on_a_is_off_on_b_within_a_second(c: Cluster) -> None:
    key = c.token()
    assert c.b.chat(key, "switch-chat").status_code == 200
    assert c.a.proc.admin("POST", "/admin/channels/switchable/disable").status_code == 200
    assert c.a.chat(key, "switch-chat").status_code == 503  # at once on a
    assert poll(lambda: c.b.chat(key, "switch-chat").status_code == 503, 1.0)
    assert c.b.channel("switchable")["enabled"] is False
    assert c.a.proc.admin("POST", "/admin/channels/switchable/enable").status_code == 200
    assert poll(lambda: c.b.chat(key, "switch-chat").status_code == 200, 1.0)


def test_reload_serves_a_new_channel_at_once_while_a_request_in_flight_completes(c: Cluster) -> None:
    key = c.token()
    fresh = {"name": "fresh", "kind": "mock", "models": ["fresh-chat"]}
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight: Future[httpx.Response] = pool.submit(c.a.chat, key, "held-chat")
        assert wait_for(lambda: c.upstream.held() == 1, 10)
        write_config(c.a.proc.config_path, c.make_config(fresh))
        resp = c.a.proc.admin("POST", "/admin/reload")
        assert resp.status_code == 200, resp.text
        assert c.a.chat(key, "fresh-chat").status_code == 200
        assert c.b.chat(key, "fresh-chat").status_code == 404  # a reload changes one node
        assert not in_flight.done() and c.upstream.held() == 1
        c.upstream.release()
        assert in_flight.result().status_code == 200
    # Asked everywhere, each node re-reads its own file.
    write_config(c.b.proc.config_path, c.make_config(fresh))
    resp = c.a.proc.admin("POST", "/admin/reload", params={"scope": "all"})
    assert resp.json()["other_nodes_asked"] is True
    assert poll(lambda: c.b.chat(key, "fresh-chat").status_code == 200, 2.0)


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Keep what GatewayProcess put in the file (port, admin token, storage) and replace the rest."""
    current = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**current, **data}))

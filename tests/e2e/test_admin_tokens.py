"""Token administration against real gateway processes: the admin API over HTTP, the key used with the
official OpenAI SDK, and revocation: at once on the node that made it, within the token cache time on
the other nodes sharing the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway_process import GatewayProcess

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello!"}]
CACHE_SECONDS = 1.0
CONFIG: dict[str, Any] = {
    "auth": {"token_cache_seconds": CACHE_SECONDS},
    "groups": {"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
    "channels": [
        {"name": "mock-default", "kind": "mock", "models": ["mock-chat"]},
        {"name": "mock-economy", "kind": "mock", "models": ["cheap-chat"], "groups": ["economy"]},
    ],
}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway processes (two "nodes") sharing one database, as replicas behind a load balancer."""
    shared = tmp_path_factory.mktemp("shared")
    config = {**CONFIG, "database": {"url": f"sqlite+aiosqlite:///{shared}/gateway.db"}}
    a = GatewayProcess(tmp_path_factory.mktemp("node-a"), config)
    b = GatewayProcess(tmp_path_factory.mktemp("node-b"), config)
    a.cli("migrate")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def sdk(node: GatewayProcess, key: str) -> OpenAI:
    return OpenAI(base_url=f"{node.url}/v1", api_key=key, max_retries=0, timeout=20)


def chat(node: GatewayProcess, key: str, model: str = "mock-chat") -> str | None:
    with sdk(node, key) as client:
        reply = client.chat.completions.create(model=model, messages=HELLO)
    return reply.choices[0].message.content


def refused(node: GatewayProcess, key: str) -> bool:
    with sdk(node, key) as client:
        try:
            client.models.list()
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
            assert isinstance(exc.body, dict) and exc.body.get("code") == "invalid_api_key"
            return True
    return False


def test_token_lifecycle_over_http(nodes: tuple[GatewayProcess, GatewayProcess]) -> None:
    node, _ = nodes
    created = node.admin("POST", "/admin/tokens", json={"name": "lifecycle", "quota_usd": 2})
    assert created.status_code == 201, created.text
    token = created.json()
    key, tid = token["key"], token["id"]

    assert chat(node, key) == "Mock reply to: Hello!"
    with sdk(node, key) as client:
        me = client.get("/me", cast_to=dict)
    assert (me["name"], me["quota_usd"], me["group"]) == ("lifecycle", 2.0, "default")

    # A group change moves the token to the economy channel's models, at once.
    assert node.admin("PATCH", f"/admin/tokens/{tid}", json={"group": "economy"}).status_code == 200
    with sdk(node, key) as client:
        assert {m.id for m in client.models.list()} == {"cheap-chat"}
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="mock-chat", messages=HELLO)
    assert chat(node, key, "cheap-chat") == "Mock reply to: Hello!"

    assert node.admin("PATCH", f"/admin/tokens/{tid}", json={"status": "disabled"}).status_code == 200
    assert refused(node, key)
    assert node.admin("PATCH", f"/admin/tokens/{tid}", json={"status": "active"}).status_code == 200
    assert not refused(node, key)

    rotated = node.admin("POST", f"/admin/tokens/{tid}/rotate")
    assert rotated.status_code == 200
    new_key = rotated.json()["key"]
    assert refused(node, key)
    assert chat(node, new_key, "cheap-chat") == "Mock reply to: Hello!"

    assert node.admin("DELETE", f"/admin/tokens/{tid}").status_code == 200
    assert refused(node, new_key)
    assert node.admin("GET", f"/admin/tokens/{tid}").status_code == 404


def test_a_cli_created_token_is_managed_by_the_api(nodes: tuple[GatewayProcess, GatewayProcess]) -> None:
    node, _ = nodes
    key = node.create_token("from-cli", quota_usd="3")
    assert chat(node, key) == "Mock reply to: Hello!"
    listed = node.admin("GET", "/admin/tokens", params={"q": "from-cli"}).json()["data"]
    assert [t["quota_usd"] for t in listed] == [3.0]
    assert node.admin("DELETE", f"/admin/tokens/{listed[0]['id']}").status_code == 200
    assert refused(node, key)


@pytest.mark.parametrize("action", ["delete", "rotate", "disable"])
def test_revocation_at_once_here_and_within_the_cache_time_elsewhere(
    nodes: tuple[GatewayProcess, GatewayProcess], action: str
) -> None:
    """The node that revoked refuses the key at once; another node once its cached lookup expires."""
    a, b = nodes
    created = a.admin("POST", "/admin/tokens", json={"name": f"two-nodes-{action}"}).json()
    key, tid = created["key"], created["id"]
    assert chat(a, key) and chat(b, key)  # both nodes have now seen (and may cache) the key

    if action == "delete":
        assert a.admin("DELETE", f"/admin/tokens/{tid}").status_code == 200
    elif action == "rotate":
        assert a.admin("POST", f"/admin/tokens/{tid}/rotate").status_code == 200
    else:
        assert a.admin("PATCH", f"/admin/tokens/{tid}", json={"status": "disabled"}).status_code == 200

    revoked_at = time.monotonic()
    assert refused(a, key)
    while not refused(b, key):
        assert time.monotonic() - revoked_at < CACHE_SECONDS + 2, (
            f"node B still accepts a key revoked ({action})"
        )
        time.sleep(0.1)

"""One fake OpenAI-compatible upstream and one gateway process, shared by the chat end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ThreadedServer
from tests.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[tuple[FakeOpenAI, ThreadedServer]]:
    fake = FakeOpenAI()
    server = ThreadedServer(fake.app).start()
    yield fake, server
    server.stop()


def channel(name: str, url: str, behaviour: str, models: list[str], **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "kind": "openai",
        "base_url": f"{url}/{behaviour}/v1",
        "api_keys": [f"sk-upstream-{name}"],
        "models": models,
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: tuple[FakeOpenAI, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    _, server = fake_upstream
    url = server.url
    config = {
        "groups": {"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
        "channels": [
            channel("plain", url, "ok", ["chat-basic", "alias"], model_map={"alias": "real-upstream-model"}),
            channel("gated", url, "gated", ["chat-gated"]),
            channel("slowpoke", url, "slow", ["chat-slow"]),
            channel("broken", url, "fail500", ["failover"], priority=10),
            channel("healthy", url, "ok", ["failover"], priority=0),
            channel("busy", url, "r429", ["cooldown"], priority=10),
            channel("spare", url, "ok", ["cooldown"], priority=0),
            channel("strict", url, "r400", ["bad-request"], priority=10),
            channel("unused", url, "ok", ["bad-request"], priority=0),
            channel("cheap", url, "ok", ["economy-only"], groups=["economy"]),
            channel("painter", url, "imgchat", ["chat-image"]),
        ],
        "limits": {"max_request_body_mb": 1},
    }
    tmp = tmp_path_factory.mktemp("gw")
    config["storage"] = {"backend": "local", "local": {"root": str(tmp / "images")}}
    proc = GatewayProcess(tmp, config)
    proc.cli("migrate")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token(gateway: GatewayProcess) -> str:
    return gateway.create_token("e2e")


@pytest.fixture
def client(gateway: GatewayProcess, token: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0, timeout=20) as c:
        yield c


@pytest.fixture
def fake(fake_upstream: tuple[FakeOpenAI, ThreadedServer]) -> FakeOpenAI:
    fake_upstream[0].reset()
    return fake_upstream[0]

"""Gemini channels end to end: one fake Gemini API and one image host (http and https) in threads, and two
gateway processes that share them:

- `gateway`: local storage, client image URLs may reach 127.0.0.1 (the image host) only, keepalive
  comments every 0.3 s, the image host's CA trusted (`SSL_CERT_FILE`);
- `gateway_none`: `storage.backend: none`.

Tokens are made over the admin API: one per `chat_image_field`, and one of the `economy` group. After
each test, every request the gateway sent and every answer the fake wrote is checked against Google's own
types (google-genai), so a misspelt field fails the test that sent it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.fakes.gemini_upstream import KEY, FakeGemini
from tests.fakes.gemini_wire import check_answer, check_request
from tests.fakes.image_host import ImageHost
from tests.fakes.server import ThreadedServer
from tests.gateway_process import GatewayProcess

IMAGE_MODELS = [
    "gemini-2.5-flash-image",
    "gemini-2.5-flash-image-hd",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
    "nano-banana",
]
TEXT_MODEL = "gemini-2.5-flash"
ECONOMY_MODEL = "gemini-2.5-flash-image-preview"
KEEPALIVE_SECONDS = 0.3
PER_CALL = 0.028  # seed 001: USD per image of gemini-2.5-flash-image


def gemini_channel(name: str, url: str, models: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "gemini", "base_url": url, "api_keys": [KEY], "models": models, **extra}


def config(url: str) -> dict[str, Any]:
    return {
        "groups": {"default": {"ratio": 1.0}, "economy": {"ratio": 0.5}},
        "channels": [
            gemini_channel(
                "gemini-main",
                url,
                [*IMAGE_MODELS, TEXT_MODEL],
                model_map={
                    "nano-banana": "gemini-2.5-flash-image",  # seed 004
                    "gemini-2.5-flash-image-hd": "gemini-3-pro-image-preview",  # seed 001's 4K model
                },
                image_size_models=["gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview"],
                model_defaults={"gemini-2.5-flash-image-hd": {"image_size": "4K"}},
            ),
            gemini_channel("gemini-economy", url, [ECONOMY_MODEL], groups=["economy"]),  # seed 000
            gemini_channel("gemini-down", url, ["gemini-fo"], priority=10),
            gemini_channel("gemini-up", url, ["gemini-fo"], priority=0),
            {"name": "mock", "kind": "mock", "models": ["mock-image"]},
        ],
        "pricing": {"models": {"gemini-2.5-flash-image": {"per_call": PER_CALL}}},
        "usage": {"flush_interval_seconds": 0.1},
        "retry": {"failures_to_cooldown": 1000},
    }


@dataclass(frozen=True)
class Gateway:
    proc: GatewayProcess
    tokens: dict[str, str]  # "default", "economy" (with list_data), "list_data", "object_url"

    @property
    def url(self) -> str:
        return self.proc.url

    def client(self, token: str = "default", **kwargs: Any) -> OpenAI:
        return OpenAI(
            base_url=f"{self.url}/v1", api_key=self.tokens[token], max_retries=0, timeout=30, **kwargs
        )


def _start(tmp: Path, settings: dict[str, Any], env: dict[str, str] | None = None) -> Gateway:
    proc = GatewayProcess(tmp, settings, env=env)
    proc.cli("migrate")
    proc.start()
    tokens = {}
    for name, fields in {
        "default": {},
        "economy": {"group": "economy", "chat_image_field": "list_data"},  # seed 000's platform
        "list_data": {"chat_image_field": "list_data"},
        "object_url": {"chat_image_field": "object_url"},
    }.items():
        resp = proc.admin("POST", "/admin/tokens", json={"name": name, **fields})
        assert resp.status_code == 201, resp.text
        tokens[name] = resp.json()["key"]
    return Gateway(proc, tokens)


@pytest.fixture(scope="package")
def fake_server() -> Iterator[tuple[FakeGemini, ThreadedServer]]:
    fake = FakeGemini()
    server = ThreadedServer(fake.app).start()
    fake.url = server.url
    yield fake, server
    server.stop()


@pytest.fixture(scope="package")
def image_host() -> Iterator[ImageHost]:
    host = ImageHost().start()
    yield host
    host.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeGemini, ThreadedServer]) -> Iterator[FakeGemini]:
    gemini = fake_server[0]
    gemini.reset()
    yield gemini
    gemini.release.set()  # nothing stays held for the next test
    for call in list(gemini.calls):
        check_request(call.body)
    for body in list(gemini.answered):
        check_answer(body)


@pytest.fixture(scope="package")
def gateway(
    fake_server: tuple[FakeGemini, ThreadedServer],
    image_host: ImageHost,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gw-gemini")
    settings = {
        **config(fake_server[1].url),
        "storage": {"backend": "local", "local": {"root": str(tmp / "images")}},
        "security": {"allowed_image_url_networks": ["127.0.0.1/32"]},
    }
    env = {
        "SSL_CERT_FILE": str(image_host.write_ca(tmp / "ca.pem")),
        "GATEWAY_SERVER__SSE_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS),
    }
    gw = _start(tmp, settings, env)
    yield gw
    gw.proc.stop()


@pytest.fixture(scope="package")
def gateway_none(
    fake_server: tuple[FakeGemini, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gw = _start(tmp_path_factory.mktemp("gw-gemini-none"), {**config(fake_server[1].url)})
    yield gw
    gw.proc.stop()

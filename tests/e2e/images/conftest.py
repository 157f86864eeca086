"""Images API end to end: one fake Images upstream, one moto S3 server, and four gateway processes.

- `gateway`: S3 storage (presigned URLs), client image URLs may reach 127.0.0.1 (the fake) only,
  1 MB / 1 s limits for client image downloads;
- `gateway_none`: `storage.backend: none`, no private address allowed (loopback refused too);
- `gateway_down`: S3 pointed at a bucket that does not exist (every upload fails);
- `gateway_public`: S3 with `public_base_url` on a public-read bucket and a key prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.e2e.images.support import channel, s3_config
from tests.fakes.openai_images import FakeOpenAIImages
from tests.fakes.server import ThreadedServer
from tests.gateway_process import GatewayProcess
from tests.s3server import FAKE_AWS_ENV, S3Endpoint, running_s3_server


@pytest.fixture(scope="package", autouse=True)
def _fake_aws_env() -> Iterator[None]:
    """Neither this process nor a gateway may find real AWS credentials or configuration."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        yield


@pytest.fixture(scope="package")
def s3_endpoint() -> Iterator[S3Endpoint]:
    with running_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="package")
def upstream_server() -> Iterator[tuple[FakeOpenAIImages, ThreadedServer]]:
    fake = FakeOpenAIImages()
    server = ThreadedServer(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake(upstream_server: tuple[FakeOpenAIImages, ThreadedServer]) -> FakeOpenAIImages:
    upstream_server[0].reset()
    return upstream_server[0]


@pytest.fixture(scope="package")
def fake_url(upstream_server: tuple[FakeOpenAIImages, ThreadedServer]) -> str:
    return upstream_server[1].url


COMMON: dict[str, Any] = {
    "usage": {"flush_interval_seconds": 0.1},
    "limits": {"max_image_download_mb": 1, "image_fetch_timeout_seconds": 1},
    # Several tests fail over from the `fail500` channel: never let it cool down between them.
    "retry": {"failures_to_cooldown": 1000},
}


def start_gateway(tmp: Path, config: dict[str, Any]) -> tuple[GatewayProcess, str]:
    proc = GatewayProcess(tmp, {**COMMON, **config}, env=dict(FAKE_AWS_ENV))
    token = proc.create_token("e2e-images")  # migrates the database first
    proc.start()
    return proc, token


@pytest.fixture(scope="package")
def main_bucket(s3_endpoint: S3Endpoint) -> str:
    return s3_endpoint.create_bucket()


@pytest.fixture(scope="package")
def gateway_and_token(
    fake_url: str, s3_endpoint: S3Endpoint, main_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    url = fake_url
    config = {
        "storage": {"backend": "s3", "s3": s3_config(s3_endpoint, main_bucket)},
        "security": {"allowed_image_url_networks": ["127.0.0.1/32"]},
        "channels": [
            channel("gptimage", url, "gptimage", ["gpt-image-2"]),
            channel("gptimage-unsupported", url, "gptimage", ["gpt-image-x"], response_format="unsupported"),
            channel("dalle", url, "dalle", ["dall-e-3"]),
            channel(
                "dalle-inline",
                url,
                "dalle",
                ["dall-e-inline"],
                model_map={"dall-e-inline": "dall-e-3"},
                default_response_format="b64_json",
            ),
            channel("b64only", url, "b64only", ["b64-model"]),
            channel("urlonly", url, "urlonly", ["url-model"]),
            channel("fo-broken", url, "fail500", ["gpt-image-fo"], priority=10),
            channel("fo-ok", url, "gptimage", ["gpt-image-fo"], priority=0),
            channel("edits-mp", url, "gptimage", ["gpt-image-mp"], edits_format="multipart"),
            channel("big", url, "big", ["gpt-image-big"]),
            channel("slow", url, "slow", ["gpt-image-slow"], timeout_seconds=1),
            channel("multiline", url, "multiline", ["gpt-image-ml"]),
            channel("dataurl", url, "dataurl", ["data-url-model"]),
            channel(
                "dalle-rehost",
                url,
                "dalle",
                ["dall-e-rehost"],
                model_map={"dall-e-rehost": "dall-e-3"},
                rehost_urls=True,
            ),
        ],
    }
    proc, token = start_gateway(tmp_path_factory.mktemp("gw-s3"), config)
    yield proc, token
    proc.stop()


@pytest.fixture(scope="package")
def gateway_none_and_token(
    fake_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    url = fake_url
    config = {
        "storage": {"backend": "none"},
        "channels": [
            channel("gptimage", url, "gptimage", ["gpt-image-2"]),
            channel("gptimage-unsupported", url, "gptimage", ["gpt-image-x"], response_format="unsupported"),
            channel("b64only", url, "b64only", ["b64-model"]),
            channel("dalle", url, "dalle", ["dall-e-3"]),
            channel("edits-mp", url, "gptimage", ["gpt-image-mp"], edits_format="multipart"),
            channel("dataurl", url, "dataurl", ["data-url-model"]),
            channel(
                "gptimage-default-url", url, "gptimage", ["gpt-image-durl"], default_response_format="url"
            ),
        ],
    }
    proc, token = start_gateway(tmp_path_factory.mktemp("gw-none"), config)
    yield proc, token
    proc.stop()


@pytest.fixture(scope="package")
def gateway_down_and_token(
    fake_url: str, s3_endpoint: S3Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    url = fake_url
    missing = "no-such-bucket-for-images-e2e"  # never created: every upload fails with NoSuchBucket
    config = {
        "storage": {"backend": "s3", "upload_attempts": 2, "s3": s3_config(s3_endpoint, missing)},
        "channels": [
            channel("gptimage", url, "gptimage", ["gpt-image-2"]),
            channel(
                "gptimage-default-url", url, "gptimage", ["gpt-image-durl"], default_response_format="url"
            ),
        ],
    }
    proc, token = start_gateway(tmp_path_factory.mktemp("gw-down"), config)
    yield proc, token
    proc.stop()


@pytest.fixture(scope="package")
def public_bucket(s3_endpoint: S3Endpoint) -> str:
    return s3_endpoint.create_bucket(public_read=True)


@pytest.fixture(scope="package")
def gateway_public_and_token(
    fake_url: str, s3_endpoint: S3Endpoint, public_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    s3 = s3_config(
        s3_endpoint, public_bucket, public_base_url=f"{s3_endpoint.url}/{public_bucket}/", key_prefix="gen/"
    )
    config = {
        "storage": {"backend": "s3", "s3": s3},
        "channels": [channel("gptimage", fake_url, "gptimage", ["gpt-image-2"])],
    }
    proc, token = start_gateway(tmp_path_factory.mktemp("gw-public"), config)
    yield proc, token
    proc.stop()


def _client(pair: tuple[GatewayProcess, str]) -> Iterator[OpenAI]:
    proc, token = pair
    with OpenAI(base_url=f"{proc.url}/v1", api_key=token, max_retries=0, timeout=30) as c:
        yield c


@pytest.fixture(scope="package")
def gateway(gateway_and_token: tuple[GatewayProcess, str]) -> GatewayProcess:
    return gateway_and_token[0]


@pytest.fixture(scope="package")
def gateway_none(gateway_none_and_token: tuple[GatewayProcess, str]) -> GatewayProcess:
    return gateway_none_and_token[0]


@pytest.fixture(scope="package")
def token(gateway_and_token: tuple[GatewayProcess, str]) -> str:
    return gateway_and_token[1]


@pytest.fixture(scope="package")
def token_none(gateway_none_and_token: tuple[GatewayProcess, str]) -> str:
    return gateway_none_and_token[1]


@pytest.fixture
def client(gateway_and_token: tuple[GatewayProcess, str]) -> Iterator[OpenAI]:
    yield from _client(gateway_and_token)


@pytest.fixture
def client_none(gateway_none_and_token: tuple[GatewayProcess, str]) -> Iterator[OpenAI]:
    yield from _client(gateway_none_and_token)


@pytest.fixture
def client_down(gateway_down_and_token: tuple[GatewayProcess, str]) -> Iterator[OpenAI]:
    yield from _client(gateway_down_and_token)


@pytest.fixture
def client_public(gateway_public_and_token: tuple[GatewayProcess, str]) -> Iterator[OpenAI]:
    yield from _client(gateway_public_and_token)

"""§5.1/§5.2 storage: a public_base_url bucket, and what happens when uploads fail (storage down)."""

from __future__ import annotations

import base64
import re

import httpx2 as httpx
from openai import OpenAI

from tests.e2e.images.support import assert_error, post, usage_record
from tests.fakes.openai_images import FakeOpenAIImages
from tests.gateway_process import GatewayProcess
from tests.s3server import S3Endpoint


def test_public_base_url_gives_plain_urls_under_the_key_prefix(
    client_public: OpenAI, fake: FakeOpenAIImages, s3_endpoint: S3Endpoint, public_bucket: str
) -> None:
    result = client_public.images.generate(model="gpt-image-2", prompt="a cdn", response_format="url")
    assert fake.count("gptimage") == 2
    produced = fake.last("gptimage").produced[0]
    url = (result.data or [])[0].url or ""
    base = f"{s3_endpoint.url}/{public_bucket}/"
    assert url.startswith(base) and "?" not in url  # not presigned
    key = url.removeprefix(base)
    assert re.fullmatch(r"gen/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.png", key), key
    got = httpx.get(url, timeout=10)
    assert got.status_code == 200 and got.content == produced
    s3 = s3_endpoint.client()
    try:
        head = s3.head_object(Bucket=public_bucket, Key=key)
    finally:
        s3.close()
    assert head["ContentType"] == "image/png"  # from the magic bytes (§5.2)
    assert head["ContentLength"] == len(produced)


def test_storage_down_with_url_asked_is_502_storage_unavailable(
    gateway_down_and_token: tuple[GatewayProcess, str], fake: FakeOpenAIImages
) -> None:
    gateway, token = gateway_down_and_token
    rid = "img-e2e-storage-down"
    body = {"model": "gpt-image-2", "prompt": "lost?", "response_format": "url"}
    resp = post(gateway, token, "/v1/images/generations", json=body, headers={"x-request-id": rid})
    error = assert_error(resp, 502, "storage_unavailable")
    assert "http://" not in error["message"]  # no storage endpoint in the error
    assert "b64_json" not in resp.text
    assert fake.count("gptimage") == 2
    record = usage_record(gateway, rid)
    assert record["status"] == "failed" and record["error_code"] == "storage_unavailable"


def test_storage_down_with_default_url_falls_back_to_base64_with_a_warning(
    client_down: OpenAI, fake: FakeOpenAIImages
) -> None:
    """The client did not insist on URLs: the paid image comes back as base64, with a warning header."""
    raw = client_down.images.with_raw_response.generate(model="gpt-image-durl", prompt="keep me")
    result = raw.parse()
    assert "storage_unavailable" in raw.headers["x-gateway-warning"]
    (call,) = fake.calls_for("gptimage")
    assert call.json == {"model": "gpt-image-durl", "prompt": "keep me"}
    item = (result.data or [])[0]
    assert item.url is None
    assert base64.b64decode(item.b64_json or "") == call.produced[0]


def test_no_warning_header_when_storage_works(client: OpenAI, fake: FakeOpenAIImages) -> None:
    raw = client.images.with_raw_response.generate(model="gpt-image-2", prompt="fine", response_format="url")
    assert "x-gateway-warning" not in raw.headers
    assert (raw.parse().data or [])[0].url

"""POST /v1/images/generations through the official SDK, checked at the fake upstream and at the client.

§4.1 (fields, unknown fields forwarded), §4.3 (`response_format` and URLs, seed 002), §5.1/§5.2 (S3 keys
and content), §6.2 (failover), §2 (errors).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.images.support import assert_error, post
from tests.fakes.openai_images import FakeOpenAIImages, big_png
from tests.gateway_process import GatewayProcess
from tests.s3server import S3Endpoint

KEY = re.compile(r"\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.png")


def download(url: str) -> httpx.Response:
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp


def test_url_on_gpt_image_retries_once_without_response_format_and_returns_a_presigned_s3_url(
    client: OpenAI, fake: FakeOpenAIImages, s3_endpoint: S3Endpoint, main_bucket: str
) -> None:
    """Must-show 1, §4.3 steps 1-3: ask with response_format, rejected, ask again without, store, URL."""
    result = client.images.generate(
        model="gpt-image-2",
        prompt="a red fox in snow",
        response_format="url",
        size="1024x1024",
        quality="low",
    )

    first, second = fake.calls_for("gptimage")
    assert fake.count() == 2
    assert first.json is not None and second.json is not None
    assert first.json["response_format"] == "url"  # step 1: sent upstream as is
    assert "response_format" not in second.json  # step 2: the same request without it
    assert {k: v for k, v in first.json.items() if k != "response_format"} == second.json
    assert second.json == {"model": "gpt-image-2", "prompt": "a red fox in snow", "size": "1024x1024",
                           "quality": "low"}  # fmt: skip
    assert first.headers["Authorization"] == second.headers["Authorization"] == "Bearer sk-upstream-gptimage"
    assert first.produced == [] and len(second.produced) == 1

    # Step 3: data[0].url, never base64, downloads with a plain GET to exactly the bytes produced.
    assert len(result.data or []) == 1
    item = (result.data or [])[0]
    assert item.b64_json is None and item.url
    parts = urlsplit(item.url)
    assert f"{parts.scheme}://{parts.netloc}" == s3_endpoint.url
    assert parts.path.startswith(f"/{main_bucket}/")
    assert KEY.fullmatch(parts.path.removeprefix(f"/{main_bucket}/")), parts.path  # §5.2 key layout
    assert "X-Amz-Signature" in parse_qs(parts.query)  # presigned, no public_base_url configured
    got = download(item.url)
    assert got.content == second.produced[0]
    assert got.headers["content-type"] == "image/png"

    # The upstream's extra fields come through (§4.1).
    assert result.size == "1024x1024" and result.quality == "low" and result.output_format == "png"
    assert result.usage is not None and result.usage.total_tokens == 322


def test_unsupported_channel_skips_the_failed_round_trip(
    client: OpenAI, fake: FakeOpenAIImages, s3_endpoint: S3Endpoint
) -> None:
    """§4.3 step 1: a channel configured `response_format: unsupported` is asked without it at once."""
    result = client.images.generate(model="gpt-image-x", prompt="a lighthouse", response_format="url")

    (call,) = fake.calls_for()
    assert call.json is not None and "response_format" not in call.json
    assert call.json["model"] == "gpt-image-x"
    url = (result.data or [])[0].url
    assert url and url.startswith(s3_endpoint.url)
    assert (result.data or [])[0].b64_json is None
    assert download(url).content == call.produced[0]


def test_b64_only_upstream_with_url_asked_is_stored(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """An upstream that ignores response_format and answers base64 gets stored: one call, a URL back."""
    result = client.images.generate(model="b64-model", prompt="a kettle", response_format="url")
    (call,) = fake.calls_for()
    assert call.json is not None and call.json["response_format"] == "url"
    url = (result.data or [])[0].url
    assert url and (result.data or [])[0].b64_json is None
    assert download(url).content == call.produced[0]


def test_n_images_each_stored(client: OpenAI, fake: FakeOpenAIImages) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="three cats", n=3, response_format="url")
    call = fake.last("gptimage")
    assert call.json is not None and call.json["n"] == 3
    urls = [d.url for d in result.data or []]
    assert len(urls) == 3 and len(set(urls)) == 3
    assert [download(u or "").content for u in urls] == call.produced
    assert len(set(call.produced)) == 3


def test_b64_wanted_and_upstream_answers_url_is_downloaded_and_inlined(
    client: OpenAI, fake: FakeOpenAIImages
) -> None:
    """§4.3: response_format b64_json and the upstream answered a URL: the gateway inlines the image."""
    result = client.images.generate(model="url-model", prompt="a bicycle", response_format="b64_json")
    (call,) = fake.calls_for("urlonly")
    assert call.json is not None and call.json["response_format"] == "b64_json"
    item = (result.data or [])[0]
    assert item.url is None and item.b64_json
    assert base64.b64decode(item.b64_json) == call.produced[0]
    assert item.revised_prompt == "a bicycle, revised"  # other fields of the item are kept


def test_channel_default_b64_json_inlines_a_dalle_url(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """response_format absent: the channel's `default_response_format: b64_json` wins over the dall-e rule."""
    result = client.images.generate(model="dall-e-inline", prompt="a teapot")
    (call,) = fake.calls_for("dalle")
    assert call.json == {"model": "dall-e-3", "prompt": "a teapot"}  # model_map applied, nothing added
    item = (result.data or [])[0]
    assert item.url is None and item.b64_json
    assert base64.b64decode(item.b64_json) == call.produced[0]


def test_format_absent_gpt_image_answers_b64_json(client: OpenAI, fake: FakeOpenAIImages) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="a plain square")
    (call,) = fake.calls_for()
    assert call.json == {"model": "gpt-image-2", "prompt": "a plain square"}
    item = (result.data or [])[0]
    assert item.url is None and item.b64_json
    assert base64.b64decode(item.b64_json) == call.produced[0]


def test_format_absent_dalle_url_passes_through(
    client: OpenAI, fake: FakeOpenAIImages, fake_url: str
) -> None:
    """§4.3: `url` for dall-e*, and upstream URLs are not re-hosted by default (`storage.rehost: base64`)."""
    result = client.images.generate(model="dall-e-3", prompt="a harbour at dawn")
    (call,) = fake.calls_for("dalle")
    assert call.json is not None and "response_format" not in call.json
    item = (result.data or [])[0]
    assert item.b64_json is None
    assert item.url and item.url.startswith(f"{fake_url}/img/")  # the upstream's own URL
    assert item.revised_prompt == "a harbour at dawn, revised"
    assert download(item.url).content == call.produced[0]


def test_explicit_url_on_dalle_is_sent_once_and_passes_through(
    client: OpenAI, fake: FakeOpenAIImages, fake_url: str
) -> None:
    result = client.images.generate(model="dall-e-3", prompt="a barn", response_format="url", style="vivid")
    (call,) = fake.calls_for()
    assert call.json is not None and call.json["response_format"] == "url" and call.json["style"] == "vivid"
    url = (result.data or [])[0].url
    assert url and url.startswith(f"{fake_url}/img/")


def test_unknown_fields_are_forwarded(client: OpenAI, fake: FakeOpenAIImages) -> None:
    client.images.generate(
        model="gpt-image-2",
        prompt="a cloud",
        background="transparent",
        output_format="png",
        moderation="low",
        user="user-7",
        extra_body={"custom_x": 1, "nested": {"a": [1, 2]}},
    )
    (call,) = fake.calls_for()
    assert call.json == {
        "model": "gpt-image-2",
        "prompt": "a cloud",
        "background": "transparent",
        "output_format": "png",
        "moderation": "low",
        "user": "user-7",
        "custom_x": 1,
        "nested": {"a": [1, 2]},
    }


def test_failover_after_500_calls_the_failed_channel_once(client: OpenAI, fake: FakeOpenAIImages) -> None:
    result = client.images.generate(model="gpt-image-fo", prompt="a mountain", extra_body={"custom_x": 1})
    assert fake.count("fail500") == 1
    assert fake.count("gptimage") == 1
    assert fake.last("fail500").headers["Authorization"] == "Bearer sk-upstream-fo-broken"
    ok = fake.last("gptimage")
    assert ok.headers["Authorization"] == "Bearer sk-upstream-fo-ok"
    assert ok.json is not None and ok.json["custom_x"] == 1
    assert base64.b64decode((result.data or [])[0].b64_json or "") == ok.produced[0]


def test_large_image_base64_passes_through_and_url_is_stored(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """§5.4: a ~4 MB image (5+ MB of base64 in JSON), inlined and re-hosted intact."""
    big = big_png()
    assert len(big) > 4_000_000
    result = client.images.generate(model="gpt-image-big", prompt="noise")
    assert base64.b64decode((result.data or [])[0].b64_json or "") == big

    result = client.images.generate(model="gpt-image-big", prompt="noise", response_format="url")
    assert fake.count("big") == 3  # the first, then the url request and its retry without response_format
    url = (result.data or [])[0].url
    assert url and download(url).content == big


def test_upstream_timeout_is_504_and_not_retried(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    resp = post(gateway, token, "/v1/images/generations", json={"model": "gpt-image-slow", "prompt": "wait"})
    error = assert_error(resp, 504, "upstream_timeout")
    assert error["type"] == "upstream_error"
    assert "127.0.0.1" not in error["message"]  # no upstream URL in errors (§2)
    assert fake.count("slow") == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "gpt-image-2"}, "prompt"),
        ({"model": "gpt-image-2", "prompt": "x", "n": 11}, "n"),
        ({"model": "gpt-image-2", "prompt": "x", "response_format": "png"}, "response_format"),
        ({"model": "gpt-image-2", "prompt": "x", "partial_images": 4}, "partial_images"),
    ],
)
def test_invalid_generation_requests_are_400_without_upstream_calls(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, body: dict[str, object], param: str
) -> None:
    resp = post(gateway, token, "/v1/images/generations", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert fake.count() == 0


def test_malformed_json_and_unknown_model(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(post(gateway, token, "/v1/images/generations", content=b"{nope", headers=headers), 400,
                 "invalid_json")  # fmt: skip
    resp = post(gateway, token, "/v1/images/generations", json={"model": "no-such-model", "prompt": "x"})
    assert_error(resp, 404, "model_not_found")
    assert fake.count() == 0


def test_sdk_raises_openai_error_for_gateway_errors(client: OpenAI, fake: FakeOpenAIImages) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.images.generate(model="no-such-model", prompt="x")
    assert info.value.code == "model_not_found"


def test_other_upstream_400_is_relayed_and_not_retried(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    """§6.2: 400-class answers are not retried; only a 400 naming response_format is (§4.3 step 2)."""
    resp = post(
        gateway, token, "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "x", "size": "7x7"}
    )
    error = assert_error(resp, 400, "invalid_value")
    assert error["param"] == "size"
    assert fake.count() == 1

    body = {"model": "gpt-image-2", "prompt": "x", "size": "7x7", "response_format": "url"}
    error = assert_error(post(gateway, token, "/v1/images/generations", json=body), 400, "invalid_value")
    assert error["param"] == "size"
    # The first 400 named response_format: asked once more without it; the second 400 is final.
    assert fake.count() == 3


def test_url_on_failover_pair(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """The failed channel once, then the next one with its own response_format round trip."""
    result = client.images.generate(model="gpt-image-fo", prompt="x", response_format="url")
    assert fake.count("fail500") == 1
    first, second = fake.calls_for("gptimage")
    assert first.json is not None and first.json["response_format"] == "url"
    assert second.json is not None and "response_format" not in second.json
    url = (result.data or [])[0].url
    assert url and download(url).content == second.produced[0]


def test_group_field_is_not_forwarded(client: OpenAI, fake: FakeOpenAIImages) -> None:
    client.images.generate(model="gpt-image-2", prompt="x", extra_body={"group": "default"})
    assert fake.last().json == {"model": "gpt-image-2", "prompt": "x"}


def test_channel_rehost_urls_stores_upstream_urls(
    client: OpenAI, fake: FakeOpenAIImages, s3_endpoint: S3Endpoint, main_bucket: str
) -> None:
    """§3.2/§4.3: a channel with `rehost_urls: true` (upstream URLs that expire) gets them re-hosted."""
    result = client.images.generate(model="dall-e-rehost", prompt="an expiring url", response_format="url")
    (call,) = fake.calls_for("dalle")
    url = (result.data or [])[0].url
    assert url and url.startswith(f"{s3_endpoint.url}/{main_bucket}/")
    assert download(url).content == call.produced[0]


def test_data_url_in_url_field_is_stored_when_url_asked(
    client: OpenAI, fake: FakeOpenAIImages, s3_endpoint: S3Endpoint
) -> None:
    """§4.3 "never return base64 as a URL": a `data:` URL in `data[].url` is base64, so it is stored."""
    result = client.images.generate(model="data-url-model", prompt="inline", response_format="url")
    (call,) = fake.calls_for("dataurl")
    url = (result.data or [])[0].url
    assert url and not url.startswith("data:"), (url or "")[:60]
    assert url.startswith(s3_endpoint.url)
    assert download(url).content == call.produced[0]


def test_data_url_in_url_field_is_inlined_when_b64_asked(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """§4.3: `b64_json` asked and the upstream answered a (data:) URL: the client gets base64."""
    result = client.images.generate(model="data-url-model", prompt="inline", response_format="b64_json")
    (call,) = fake.calls_for("dataurl")
    item = (result.data or [])[0]
    assert item.url is None
    assert base64.b64decode(item.b64_json or "") == call.produced[0]

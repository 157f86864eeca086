"""§4.3 step 4 with `storage.backend: none`: no URL can be made from base64, so say so, never downgrade."""

from __future__ import annotations

import base64

import openai
import pytest
from openai import OpenAI

from tests.e2e.images.support import assert_error, post, usage_record
from tests.fakes.openai_images import FakeOpenAIImages, make_png
from tests.gateway_process import GatewayProcess


def test_known_base64_only_channel_fails_fast_without_an_upstream_call(
    gateway_none: GatewayProcess, token_none: str, fake: FakeOpenAIImages
) -> None:
    body = {"model": "gpt-image-x", "prompt": "a dune", "response_format": "url"}
    resp = post(gateway_none, token_none, "/v1/images/generations", json=body)
    error = assert_error(resp, 400, "image_url_not_available")
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "response_format"
    assert fake.count() == 0  # nothing spent upstream


def test_fail_fast_for_edits_too(
    gateway_none: GatewayProcess, token_none: str, fake: FakeOpenAIImages
) -> None:
    files = [("image", ("a.png", make_png("edit-src"), "image/png"))]
    data = {"model": "gpt-image-x", "prompt": "edit", "response_format": "url"}
    resp = post(gateway_none, token_none, "/v1/images/edits", files=files, data=data)
    assert_error(resp, 400, "image_url_not_available")
    assert fake.count() == 0


def test_gpt_image_url_after_the_calls_is_an_error_not_base64(
    gateway_none: GatewayProcess, token_none: str, fake: FakeOpenAIImages
) -> None:
    """Not knowable beforehand: ask (rejected), ask again without, get base64, refuse to pass it as a URL."""
    rid = "img-e2e-none-gptimage"
    body = {"model": "gpt-image-2", "prompt": "a dune", "response_format": "url"}
    resp = post(gateway_none, token_none, "/v1/images/generations", json=body, headers={"x-request-id": rid})
    assert_error(resp, 400, "image_url_not_available")
    assert "b64_json" not in resp.text and "data" not in resp.json()
    first, second = fake.calls_for("gptimage")
    assert first.json is not None and first.json["response_format"] == "url"
    assert second.json is not None and "response_format" not in second.json
    record = usage_record(gateway_none, rid)
    assert record["status"] == "failed"
    assert record["http_status"] == 400 and record["error_code"] == "image_url_not_available"


def test_unconfigured_b64_only_channel_is_called_once_then_refused(
    client_none: OpenAI, fake: FakeOpenAIImages
) -> None:
    """A channel not configured `response_format: unsupported` cannot be known to answer base64 only."""
    with pytest.raises(openai.BadRequestError) as info:
        client_none.images.generate(model="b64-model", prompt="a dune", response_format="url")
    assert info.value.code == "image_url_not_available"
    (call,) = fake.calls_for("b64only")
    assert call.json is not None and call.json["response_format"] == "url"


def test_format_absent_gpt_image_is_base64_without_storage(
    client_none: OpenAI, fake: FakeOpenAIImages
) -> None:
    result = client_none.images.generate(model="gpt-image-2", prompt="a dune")
    assert base64.b64decode((result.data or [])[0].b64_json or "") == fake.last("gptimage").produced[0]


def test_upstream_url_needs_no_storage(client_none: OpenAI, fake: FakeOpenAIImages, fake_url: str) -> None:
    result = client_none.images.generate(model="dall-e-3", prompt="a dune", response_format="url")
    url = (result.data or [])[0].url
    assert url and url.startswith(f"{fake_url}/img/")
    assert fake.count("dalle") == 1


def test_fail_fast_still_writes_a_usage_record(
    gateway_none: GatewayProcess, token_none: str, fake: FakeOpenAIImages
) -> None:
    rid = "img-e2e-none-failfast"
    body = {"model": "gpt-image-x", "prompt": "a dune", "response_format": "url"}
    post(gateway_none, token_none, "/v1/images/generations", json=body, headers={"x-request-id": rid})
    record = usage_record(gateway_none, rid)
    assert record["status"] == "failed" and record["error_code"] == "image_url_not_available"
    assert record["attempts"] in ("[]", []) and record["image_count"] == 0
    assert fake.count() == 0


def test_data_url_in_url_field_is_not_a_url_without_storage(
    gateway_none: GatewayProcess, token_none: str, fake: FakeOpenAIImages
) -> None:
    """§4.3 step 4: a `data:` URL is base64; without storage it cannot be returned as `url`."""
    body = {"model": "data-url-model", "prompt": "inline", "response_format": "url"}
    resp = post(gateway_none, token_none, "/v1/images/generations", json=body)
    assert "data:image" not in resp.text[:2000]
    assert_error(resp, 400, "image_url_not_available")
    assert fake.count("dataurl") == 1


def test_channel_default_url_without_storage_keeps_the_paid_image(
    client_none: OpenAI, fake: FakeOpenAIImages
) -> None:
    """The client did not ask for a URL (the channel default did): the image the upstream produced and
    that was paid for is returned as base64, not thrown away with a 400 (§5.2, §4.3 step 4 is about
    `response_format: "url"` requested)."""
    raw = client_none.images.with_raw_response.generate(model="gpt-image-durl", prompt="keep me")
    (call,) = fake.calls_for("gptimage")
    assert call.json == {"model": "gpt-image-durl", "prompt": "keep me"}
    item = (raw.parse().data or [])[0]
    assert base64.b64decode(item.b64_json or "") == call.produced[0]

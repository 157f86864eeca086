"""Without object storage (§3.2, §4.3 for Gemini channels): chat images come back as `data:` URLs; the
Images API answers base64 when the client did not ask, and refuses `response_format: url` before any
upstream call."""

from __future__ import annotations

from tests.e2e.gemini.conftest import Gateway
from tests.e2e.gemini.support import b64, data_url, markdown_urls, post, user
from tests.fakes.gemini_upstream import FakeGemini

MODEL = "gemini-2.5-flash-image"


def test_chat_images_fall_back_to_data_urls(gateway_none: Gateway, fake: FakeGemini) -> None:
    with gateway_none.client("list_data") as client:
        answer = client.chat.completions.create(model=MODEL, messages=user("a cat"))
    message = answer.choices[0].message
    url = data_url(fake.produced[0])
    assert markdown_urls(message.content) == [url]
    extra = message.model_extra or {}
    assert extra["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert extra["image"] == [{"data": b64(fake.produced[0])}]


def test_url_asked_without_storage_is_refused_before_any_upstream_call(
    gateway_none: Gateway, fake: FakeGemini
) -> None:
    body = {"model": MODEL, "prompt": "x", "response_format": "url"}
    resp = post(gateway_none, "/v1/images/generations", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "image_url_not_available"
    assert fake.calls == []


def test_no_response_format_gives_base64_without_storage(gateway_none: Gateway, fake: FakeGemini) -> None:
    for body in (
        {"model": MODEL, "prompt": "x"},
        {"model": MODEL, "prompt": "x", "response_format": "b64_json"},
    ):
        resp = post(gateway_none, "/v1/images/generations", body)
        assert resp.status_code == 200, resp.text
        (item,) = resp.json()["data"]
        assert set(item) == {"b64_json"} and item["b64_json"] == b64(fake.produced[-1])
        assert "x-gateway-warning" not in resp.headers


def test_no_response_format_gives_a_url_with_storage(gateway: Gateway, fake: FakeGemini) -> None:
    resp = post(gateway, "/v1/images/generations", {"model": MODEL, "prompt": "x"})
    (item,) = resp.json()["data"]
    assert set(item) == {"url"} and item["url"].startswith(f"{gateway.url}/files/")

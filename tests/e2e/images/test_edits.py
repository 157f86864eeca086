"""POST /v1/images/edits (§4.4): multipart from the SDK and raw, JSON `images[].image_url`, and JSON
converted to multipart for an `edits_format: multipart` channel. Checked file by file at the fake.
"""

from __future__ import annotations

import base64

import httpx2 as httpx
from openai import OpenAI

from tests.e2e.images.support import data_url, post
from tests.fakes.openai_images import FakeOpenAIImages, FilePart, make_jpeg, make_png
from tests.gateway_process import GatewayProcess
from tests.images.samples import fixture_bytes, make_image

PNG = make_png("edit-source", (40, 40))
JPEG = make_jpeg((40, 40))
MASK = make_image("PNG", (40, 40), mode="RGBA")
WEBP = fixture_bytes("blue-7x3.webp")
CLIENT_OK = make_png("client-ok", (48, 32))  # what the fake serves at /client/ok.png


def files_seen(files: list[FilePart]) -> list[tuple[str, str | None, str | None, bytes]]:
    return [(f.field, f.filename, f.content_type, f.data) for f in files]


def test_sdk_multipart_edit_with_several_images_and_a_mask(client: OpenAI, fake: FakeOpenAIImages) -> None:
    """Every file reaches the upstream, typed by its magic bytes: a JPEG sent as x.png/image/png is a JPEG."""
    result = client.images.edit(
        model="gpt-image-2",
        image=[("a.png", PNG, "image/png"), ("x.png", JPEG, "image/png")],
        mask=("mask.png", MASK, "image/png"),
        prompt="add a hot-air balloon",
        n=1,
        quality="low",
        extra_body={"custom_x": "1"},
    )
    (call,) = fake.calls_for()
    assert call.endpoint == "edits" and call.multipart
    assert files_seen(call.files) == [
        ("image[]", "a.png", "image/png", PNG),
        ("image[]", "x.jpg", "image/jpeg", JPEG),
        ("mask", "mask.png", "image/png", MASK),
    ]
    assert call.fields == {
        "model": "gpt-image-2",
        "prompt": "add a hot-air balloon",
        "n": "1",
        "quality": "low",
        "custom_x": "1",
    }
    assert call.headers["Authorization"] == "Bearer sk-upstream-gptimage"
    assert base64.b64decode((result.data or [])[0].b64_json or "") == call.produced[0]


def test_sdk_multipart_single_image_goes_as_image(client: OpenAI, fake: FakeOpenAIImages) -> None:
    client.images.edit(model="gpt-image-2", image=("one.png", PNG, "image/png"), prompt="p")
    (call,) = fake.calls_for()
    assert files_seen(call.files) == [("image", "one.png", "image/png", PNG)]


def test_raw_multipart_with_indexed_image_fields(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    files = [
        ("image[0]", ("first.png", PNG, "image/png")),
        ("image[1]", ("photo", WEBP, "application/octet-stream")),
        ("image[2]", ("x.png", JPEG, "image/png")),
    ]
    data = {"model": "gpt-image-2", "prompt": "merge them", "size": "1024x1024", "custom_x": "7", "n": "1"}
    resp = post(gateway, token, "/v1/images/edits", files=files, data=data)
    assert resp.status_code == 200, resp.text
    (call,) = fake.calls_for()
    assert files_seen(call.files) == [
        ("image[]", "first.png", "image/png", PNG),
        ("image[]", "photo.webp", "image/webp", WEBP),
        ("image[]", "x.jpg", "image/jpeg", JPEG),
    ]
    assert call.fields == {
        "model": "gpt-image-2", "prompt": "merge them", "size": "1024x1024", "custom_x": "7", "n": "1",
    }  # fmt: skip
    assert base64.b64decode(resp.json()["data"][0]["b64_json"]) == call.produced[0]


def test_multipart_edit_with_url_retries_without_response_format_and_stores(
    client: OpenAI, fake: FakeOpenAIImages
) -> None:
    result = client.images.edit(
        model="gpt-image-2", image=("a.png", PNG, "image/png"), prompt="p", response_format="url"
    )
    first, second = fake.calls_for("gptimage")
    assert first.multipart and second.multipart
    assert first.fields["response_format"] == "url" and "response_format" not in second.fields
    assert files_seen(first.files) == files_seen(second.files) == [("image", "a.png", "image/png", PNG)]
    url = (result.data or [])[0].url
    assert url and httpx.get(url, timeout=10).content == second.produced[0]


def test_json_edit_is_forwarded_as_json_unchanged(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, fake_url: str
) -> None:
    """The upstream fetches https URLs itself: the gateway neither fetches nor rewrites them."""
    body = {
        "model": "gpt-image-2",
        "prompt": "make it blue",
        "images": [
            {"image_url": f"{fake_url}/client/ok.png"},
            {"image_url": data_url(JPEG, "image/jpeg")},
            {"file_id": "file-abc123"},
        ],
        "mask": {"image_url": data_url(MASK)},
        "size": "1024x1024",
        "quality": "medium",
        "custom_x": {"k": [1, 2]},
    }
    resp = post(gateway, token, "/v1/images/edits", json=body)
    assert resp.status_code == 200, resp.text
    (call,) = fake.calls_for()
    assert call.endpoint == "edits" and call.content_type == "application/json"
    assert call.json == body
    assert fake.hits() == []  # not fetched by the gateway
    assert base64.b64decode(resp.json()["data"][0]["b64_json"]) == call.produced[0]


def test_json_edit_with_url_asked_is_stored(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    body = {
        "model": "gpt-image-2",
        "prompt": "p",
        "images": [{"image_url": data_url(PNG)}],
        "response_format": "url",
    }
    resp = post(gateway, token, "/v1/images/edits", json=body)
    assert resp.status_code == 200, resp.text
    first, second = fake.calls_for()
    assert first.json is not None and first.json["response_format"] == "url"
    assert second.json is not None and "response_format" not in second.json
    assert second.json["images"] == body["images"]
    url = resp.json()["data"][0]["url"]
    assert httpx.get(url, timeout=10).content == second.produced[0]


def test_json_edit_to_multipart_channel_fetches_urls_and_decodes_data_urls(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, fake_url: str
) -> None:
    body = {
        "model": "gpt-image-mp",
        "prompt": "make it green",
        "images": [{"image_url": f"{fake_url}/client/ok.png"}, {"image_url": data_url(JPEG, "image/png")}],
        "mask": {"image_url": data_url(MASK)},
        "n": 1,
        "custom_x": 1,
    }
    resp = post(gateway, token, "/v1/images/edits", json=body)
    assert resp.status_code == 200, resp.text
    (call,) = fake.calls_for()
    assert call.multipart and call.headers["Authorization"] == "Bearer sk-upstream-edits-mp"
    assert files_seen(call.files) == [
        ("image[]", "image_0.png", "image/png", CLIENT_OK),
        ("image[]", "image_1.jpg", "image/jpeg", JPEG),  # typed by magic bytes, not the data URL's claim
        ("mask", "mask.png", "image/png", MASK),
    ]
    assert call.fields == {"model": "gpt-image-mp", "prompt": "make it green", "n": "1", "custom_x": "1"}
    assert fake.hits() == ["/client/ok.png"]
    assert base64.b64decode(resp.json()["data"][0]["b64_json"]) == call.produced[0]


def test_json_edit_to_multipart_channel_follows_a_redirect(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages, fake_url: str
) -> None:
    body = {
        "model": "gpt-image-mp",
        "prompt": "p",
        "images": [{"image_url": f"{fake_url}/client/redirect-once"}],
    }
    resp = post(gateway, token, "/v1/images/edits", json=body)
    assert resp.status_code == 200, resp.text
    (call,) = fake.calls_for()
    assert files_seen(call.files) == [("image", "image_0.png", "image/png", CLIENT_OK)]
    assert fake.hits() == ["/client/redirect-once", "/client/ok.png"]


def test_raw_multipart_with_repeated_image_fields(
    gateway: GatewayProcess, token: str, fake: FakeOpenAIImages
) -> None:
    """`image` several times (and `image[]`) are all kept, in order."""
    for name in ("image", "image[]"):
        fake.reset()
        files = [(name, ("a.png", PNG, "image/png")), (name, ("b.jpg", JPEG, "image/jpeg"))]
        resp = post(
            gateway, token, "/v1/images/edits", files=files, data={"model": "gpt-image-2", "prompt": "p"}
        )
        assert resp.status_code == 200, resp.text
        (call,) = fake.calls_for()
        assert files_seen(call.files) == [
            ("image[]", "a.png", "image/png", PNG),
            ("image[]", "b.jpg", "image/jpeg", JPEG),
        ]

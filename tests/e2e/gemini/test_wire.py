"""What the gateway sends a Gemini channel, asserted at the fake upstream (§3.1, §3.4, §4.2, §4.4, §6.1):
responseModalities, imageConfig (aspectRatio for every size, imageSize only where listed, in capitals),
inlineData per input image before the text, n concurrent calls, model_defaults."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from tests.e2e.gemini.conftest import TEXT_MODEL, Gateway
from tests.e2e.gemini.support import JPEG, data_url, png, post, stored, usage_record, user
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.image_host import ImageHost

FLASH, PRO, HD = "gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-2.5-flash-image-hd"


def generate(gateway: Gateway, **body: Any) -> dict[str, Any]:
    resp = post(gateway, "/v1/images/generations", {"prompt": "a lighthouse", **body})
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def inline(part: dict[str, Any]) -> tuple[str, bytes]:
    return part["inlineData"]["mimeType"], base64.b64decode(part["inlineData"]["data"])


def test_response_modalities(gateway: Gateway, fake: FakeGemini) -> None:
    with gateway.client() as client:
        client.chat.completions.create(model=FLASH, messages=user("a cat"))
        client.chat.completions.create(model=TEXT_MODEL, messages=user("hello"))
        client.chat.completions.create(
            model=TEXT_MODEL, messages=user("a cat"), extra_body={"modalities": ["image", "text"]}
        )
    generate(gateway, model=FLASH)
    modalities = [call.config.get("responseModalities") for call in fake.calls]
    assert modalities == [["TEXT", "IMAGE"], None, ["TEXT", "IMAGE"], ["IMAGE"]]


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("1024x1024", "1:1"),
        ("1536x1024", "3:2"),
        ("1024x1536", "2:3"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
        ("1000x500", "16:9"),  # any WxH: the nearest supported ratio
        ("4:3", "4:3"),  # a literal ratio as is
    ],
)
def test_size_becomes_the_aspect_ratio(gateway: Gateway, fake: FakeGemini, size: str, ratio: str) -> None:
    generate(gateway, model=FLASH, size=size)
    assert fake.calls[0].config["imageConfig"] == {"aspectRatio": ratio}


def test_aspect_ratio_and_image_size_in_chat_in_every_spelling(gateway: Gateway, fake: FakeGemini) -> None:
    spellings: list[dict[str, Any]] = [
        {"image_config": {"aspect_ratio": "21:9", "image_size": "2k"}},
        {"google": {"image_config": {"aspect_ratio": "21:9", "image_size": "2k"}}},  # OpenAI SDK extra_body
        {"imageConfig": {"aspectRatio": "21:9", "imageSize": "2k"}},
    ]
    with gateway.client() as client:
        for extra in spellings:
            client.chat.completions.create(model=PRO, messages=user("a cat"), extra_body=extra)
    assert [c.config["imageConfig"] for c in fake.calls] == [{"aspectRatio": "21:9", "imageSize": "2K"}] * 3


def test_image_size_only_for_listed_models_and_in_capitals(gateway: Gateway, fake: FakeGemini) -> None:
    generate(gateway, model=PRO, size="2048x2048")
    generate(gateway, model=PRO, size="1024x1024", image_size="4k")
    generate(gateway, model=PRO, quality="high")
    generate(gateway, model=FLASH, size="2048x2048", image_size="4k")  # 1K only: never gets the field
    configs = [call.config.get("imageConfig") for call in fake.calls]
    assert configs == [
        {"aspectRatio": "1:1", "imageSize": "2K"},
        {"aspectRatio": "1:1", "imageSize": "4K"},
        {"imageSize": "2K"},
        {"aspectRatio": "1:1"},
    ]


def test_json_edit_sends_one_inline_part_per_image_with_the_sniffed_type_before_the_prompt(
    gateway: Gateway, fake: FakeGemini, image_host: ImageHost
) -> None:
    web = png("from the web")
    images = [{"image_url": data_url(JPEG, "image/png")}, {"image_url": image_host.put("web.png", web)}]
    resp = post(gateway, "/v1/images/edits", {"model": FLASH, "prompt": "merge them", "images": images})
    assert resp.status_code == 200, resp.text
    parts = fake.calls[0].parts
    assert [inline(p) for p in parts[:2]] == [("image/jpeg", JPEG), ("image/png", web)]
    assert parts[2:] == [{"text": "merge them"}]


def test_multipart_edit_sends_every_file_before_the_prompt(gateway: Gateway, fake: FakeGemini) -> None:
    first = png("first")
    with gateway.client() as client:
        answer = client.images.edit(
            model=FLASH,
            prompt="put them side by side",
            image=[("a.png", first, "image/png"), ("b.bin", JPEG, "application/octet-stream")],
        )
    assert answer.data and answer.data[0].url
    parts = fake.calls[0].parts
    assert [inline(p) for p in parts[:2]] == [("image/png", first), ("image/jpeg", JPEG)]
    assert parts[2:] == [{"text": "put them side by side"}]


def test_n_3_is_three_concurrent_calls_and_three_images_billed(gateway: Gateway, fake: FakeGemini) -> None:
    fake.hold_until_in_flight = 3  # no call answers before all three are in flight together
    resp = post(gateway, "/v1/images/generations", {"model": FLASH, "prompt": "three", "n": 3},
                **{"x-request-id": "gemini-n3"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    urls = [item["url"] for item in resp.json()["data"]]
    assert len(fake.calls) == 3 and fake.max_in_flight == 3
    assert sorted(stored(gateway, url) for url in urls) == sorted(fake.produced)
    assert len(set(fake.produced)) == 3
    assert usage_record(gateway, "gemini-n3")["image_count"] == 3


def test_model_defaults_apply_only_when_the_client_left_the_field_out(
    gateway: Gateway, fake: FakeGemini
) -> None:
    generate(gateway, model=HD)
    generate(gateway, model=HD, image_size="1k")
    with gateway.client() as client:
        client.chat.completions.create(model=HD, messages=user("a cat"))
        client.chat.completions.create(
            model=HD, messages=user("a cat"), extra_body={"image_config": {"image_size": "2K"}}
        )
    sizes = [call.config["imageConfig"].get("imageSize") for call in fake.calls]
    assert sizes == ["4K", "1K", "4K", "2K"]
    assert {call.model for call in fake.calls} == {PRO}  # the -hd name maps to the upstream model


def test_a_streamed_generation_gets_one_completed_event_per_image_billed(
    gateway: Gateway, fake: FakeGemini
) -> None:
    body = {"model": FLASH, "prompt": "two", "n": 2, "stream": True}
    resp = post(gateway, "/v1/images/generations", body, **{"x-request-id": "gemini-images-stream"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = [block for block in resp.text.split("\n\n") if block.strip()]
    assert [e.splitlines()[0] for e in events] == ["event: image_generation.completed"] * 2
    images = sorted(base64.b64decode(orjson.loads(e.splitlines()[1][6:])["b64_json"]) for e in events)
    assert images == sorted(fake.produced) and len(fake.calls) == 2
    assert usage_record(gateway, "gemini-images-stream")["image_count"] == 2

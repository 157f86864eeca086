"""Every request shape of the seeds that sell Gemini image models, against a `kind: gemini` channel, through
the official OpenAI SDK and raw HTTP where a seed shows curl (seeds 000, 001, 003, 004)."""

from __future__ import annotations

import base64

import httpx2 as httpx
import orjson

from tests.e2e.gemini.conftest import ECONOMY_MODEL, PER_CALL, TEXT_MODEL, Gateway
from tests.e2e.gemini.support import (
    JPEG,
    b64,
    data_url,
    markdown_urls,
    png,
    post,
    stored,
    usage_record,
    user,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.image_host import ImageHost

MODEL = "gemini-2.5-flash-image"


def inline(part: dict[str, object]) -> tuple[object, bytes]:
    """(mimeType, bytes) of an `inlineData` part the fake received."""
    data = part["inlineData"]
    assert isinstance(data, dict)
    return data["mimeType"], base64.b64decode(data["data"])


# -- seed 000: economy group, list_data, /v1beta/openai -------------------------------------------------


def test_seed000_text_to_image_gives_a_url_and_the_base64_in_message_image(
    gateway: Gateway, fake: FakeGemini
) -> None:
    with gateway.client("economy") as client:
        answer = client.chat.completions.create(
            model=ECONOMY_MODEL, messages=user("生成一张现代感办公室的插画")
        )
    message = answer.choices[0].message
    (url,) = markdown_urls(message.content)
    assert stored(gateway, url) == fake.produced[0]
    extra = message.model_extra or {}
    assert extra["image"] == [{"data": b64(fake.produced[0])}]
    assert extra["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert answer.model == ECONOMY_MODEL and answer.choices[0].finish_reason == "stop"
    assert fake.calls[0].model == ECONOMY_MODEL


def test_seed000_stream_carries_delta_image_as_list_data(gateway: Gateway, fake: FakeGemini) -> None:
    with gateway.client("economy") as client:
        chunks = list(
            client.chat.completions.create(model=ECONOMY_MODEL, messages=user("雨夜街道"), stream=True)
        )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    with_image = [d for d in deltas if (d.model_extra or {}).get("image")]
    assert len(with_image) == 1
    assert with_image[0].model_extra["image"] == [{"data": b64(fake.produced[0])}]  # type: ignore[index]
    (url,) = markdown_urls(with_image[0].content)
    assert stored(gateway, url) == fake.produced[0]
    assert fake.calls[0].method == "streamGenerateContent" and fake.calls[0].query == {"alt": "sse"}


def test_seed000_edit_through_image_url(gateway: Gateway, fake: FakeGemini, image_host: ImageHost) -> None:
    photo = png("input.png")
    url = image_host.put("input.png", photo)
    with gateway.client("economy") as client:
        answer = client.chat.completions.create(
            model=ECONOMY_MODEL, messages=user("将这张图片改成水彩画风格", ("image", url))
        )
    assert markdown_urls(answer.choices[0].message.content)
    parts = fake.calls[0].parts
    assert inline(parts[0]) == ("image/png", photo)
    assert parts[1] == {"text": "将这张图片改成水彩画风格"}


def test_seed000_the_gemini_openai_compatible_path(gateway: Gateway, fake: FakeGemini) -> None:
    body = {"model": ECONOMY_MODEL, "messages": user("生成一张插画")}
    resp = post(gateway, "/v1beta/openai/chat/completions", body, token="economy")
    assert resp.status_code == 200, resp.text
    message = resp.json()["choices"][0]["message"]
    (url,) = markdown_urls(message["content"])
    assert message["image"] == [{"data": b64(stored(gateway, url))}]


def test_seed000_the_model_is_served_to_the_economy_group_only(gateway: Gateway, fake: FakeGemini) -> None:
    resp = post(gateway, "/v1/chat/completions", {"model": ECONOMY_MODEL, "messages": user("x")})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"
    assert fake.calls == []


# -- seed 001: bare Authorization, group, Images API with URLs, prompt image URLs --------------------------


def test_seed001_bare_authorization_header_and_group_field(gateway: Gateway, fake: FakeGemini) -> None:
    body = {"model": MODEL, "messages": user("画一条狗"), "group": "default", "stream": False}
    resp = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": gateway.tokens["default"]},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL
    (url,) = markdown_urls(answer["choices"][0]["message"]["content"])
    assert stored(gateway, url) == fake.produced[0]
    assert set(answer["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_seed001_image_to_image_with_an_https_url_and_with_a_data_url(
    gateway: Gateway, fake: FakeGemini, image_host: ImageHost
) -> None:
    dog = png("dog")
    url = image_host.put("dog.png", dog).replace(f"http://127.0.0.1:{image_host.http_port}", "")
    https_url = image_host.url("dog.png", https=True)
    with gateway.client() as client:
        for ref, sent in ((https_url, dog), (data_url(JPEG), JPEG)):
            answer = client.chat.completions.create(
                model=MODEL,
                messages=user("将这只狗的颜色改为绿色", ("image", ref)),
                extra_body={"group": "default"},
            )
            assert markdown_urls(answer.choices[0].message.content)
            assert inline(fake.calls[-1].parts[0])[1] == sent
    assert inline(fake.calls[1].parts[0])[0] == "image/jpeg"  # the sniffed type, not the data URL's claim
    assert any(f.path == url for f in image_host.fetches)


def test_seed001_two_images_merged(gateway: Gateway, fake: FakeGemini, image_host: ImageHost) -> None:
    one, two = png("dog one"), png("dog two")
    refs = [("image", image_host.put("one.png", one)), ("image", image_host.put("two.png", two))]
    with gateway.client() as client:
        client.chat.completions.create(model=MODEL, messages=user("让这两只狗面对面", *refs))
    parts = fake.calls[0].parts
    assert [inline(p)[1] for p in parts[:2]] == [one, two] and parts[2] == {"text": "让这两只狗面对面"}


def test_seed001_generations_answer_urls_with_the_seed_usage_fields_and_bill_per_image(
    gateway: Gateway, fake: FakeGemini
) -> None:
    body = {"prompt": "画一只猪,我只要图片,不要有其他信息", "model": MODEL}
    resp = post(gateway, "/v1/images/generations", body, **{"x-request-id": "seed001-generations"})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    (item,) = answer["data"]
    assert stored(gateway, item["url"]) == fake.produced[0] and "b64_json" not in item
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["text_tokens"] == 17 and usage["output_tokens"] == 1290
    record = usage_record(gateway, "seed001-generations")
    assert (record["image_count"], record["cost_micro_usd"]) == (1, round(PER_CALL * 1_000_000))
    assert fake.calls[0].config["responseModalities"] == ["IMAGE"]


def test_seed001_an_image_url_in_the_prompt_is_an_input_image(
    gateway: Gateway, fake: FakeGemini, image_host: ImageHost
) -> None:
    pig = png("pig")
    url = image_host.put("pig.png", pig)
    body = {"prompt": f"{url} 移除图片的背景,我只要图片,不要有其他信息", "model": MODEL}
    resp = post(gateway, "/v1/images/generations", body)
    assert resp.status_code == 200, resp.text
    parts = fake.calls[0].parts
    assert inline(parts[0]) == ("image/png", pig)
    assert parts[1] == {"text": "移除图片的背景,我只要图片,不要有其他信息"}


# -- seed 003: object_url, image_generation, system prompt -------------------------------------------------


def test_seed003_object_url(gateway: Gateway, fake: FakeGemini) -> None:
    with gateway.client("object_url") as client:
        answer = client.chat.completions.create(model=MODEL, messages=user("画一只可爱的小猫在草丛中玩耍"))
    message = answer.choices[0].message
    (url,) = markdown_urls(message.content)
    assert (message.model_extra or {})["image"] == {"url": url}
    assert stored(gateway, url) == fake.produced[0]


def test_seed003_image_generation_true_with_a_system_prompt(gateway: Gateway, fake: FakeGemini) -> None:
    messages = [
        {"role": "system", "content": "你是一个AI画图机器人,请根据用户需求进行画图"},
        {"role": "user", "content": "一只可爱的小猫在草丛中玩耍"},
    ]
    with gateway.client("object_url") as client:
        answer = client.chat.completions.create(
            model="gemini-3.1-flash-image-preview", messages=messages, extra_body={"image_generation": True}
        )
    (call,) = fake.calls
    assert call.body["systemInstruction"] == {"parts": [{"text": messages[0]["content"]}]}
    assert call.body["contents"] == [{"role": "user", "parts": [{"text": messages[1]["content"]}]}]
    assert call.config["responseModalities"] == ["IMAGE"]
    assert (answer.choices[0].message.model_extra or {})["image"]["url"]


def test_seed003_image_generation_true_works_on_a_text_model(gateway: Gateway, fake: FakeGemini) -> None:
    with gateway.client() as client:
        plain = client.chat.completions.create(model=TEXT_MODEL, messages=user("hello"))
        drawn = client.chat.completions.create(
            model=TEXT_MODEL, messages=user("a cat"), extra_body={"image_generation": True}
        )
    assert (
        "generationConfig" not in fake.calls[0].body and plain.choices[0].message.content == "A fake reply."
    )
    assert fake.calls[1].config["responseModalities"] == ["IMAGE"]
    (url,) = markdown_urls(drawn.choices[0].message.content)
    assert stored(gateway, url) == fake.produced[0]


# -- seed 004: nano-banana through model_map, several images, curl with Accept ----------------------------


def test_seed004_nano_banana_with_several_images(
    gateway: Gateway, fake: FakeGemini, image_host: ImageHost
) -> None:
    logo, other = png("logo"), png("other")
    body = {
        "model": "nano-banana",
        "stream": False,
        "messages": user(
            "修改这个图片", ("image", image_host.put("logo.png", logo)), ("image", data_url(other))
        ),
    }
    resp = post(gateway, "/v1/chat/completions", body, Accept="application/json")
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model"] == "nano-banana"
    assert markdown_urls(answer["choices"][0]["message"]["content"])
    (call,) = fake.calls
    assert call.model == "gemini-2.5-flash-image"
    assert [inline(p)[1] for p in call.parts[:2]] == [logo, other] and call.parts[2] == {
        "text": "修改这个图片"
    }

"""The Gemini provider against the fake Gemini API over real HTTP: what is sent, what comes back."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest

from gateway.domain import Base64Image, DecodedImage, ImageCall, InputImage, answer_json
from gateway.errors import UpstreamError
from gateway.providers.gemini.adapter import GeminiProvider
from gateway.providers.gemini.request import GenerateRequest
from gateway.providers.gemini.response import Answer
from gateway.providers.gemini.usage import GeminiUsage
from gateway.providers.mock import render_png
from tests.fakes.gemini_upstream import KEY, FakeGemini, Reply, blocked, fixture, image_answer, refused
from tests.providers.gemini.conftest import Resolver, target_for

SIG = "c2lnbmF0dXJlLW9mLXRoZS1pbWFnZQ=="


def chat_body(model: str = "gemini-2.5-flash-image", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "a cat in the grass"}], **extra}


async def test_the_key_goes_in_the_header_and_never_in_the_url(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.chat(target_for(fake), chat_body())
    (call,) = fake.calls
    assert (call.model, call.method) == ("gemini-2.5-flash-image", "generateContent")
    assert call.headers["x-goog-api-key"] == KEY
    assert call.query == {} and "Authorization" not in call.headers
    assert call.headers["Content-Type"] == "application/json"


async def test_channel_headers_are_sent_too(provider: GeminiProvider, fake: FakeGemini) -> None:
    await provider.chat(target_for(fake, headers={"x-extra": "1"}), chat_body())
    assert fake.calls[0].headers["x-extra"] == "1"


async def test_chat_answer_in_the_openai_shape_with_the_image_as_a_data_url(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    answer = await provider.chat(target_for(fake), chat_body())
    image = fake.produced[0]
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    message = answer["choices"][0]["message"]
    assert message["content"] == f"Here is your image.\n\n![image]({url})"
    assert message["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert answer["usage"]["completion_tokens_details"]["image_tokens"] == 1290
    assert fake.calls[0].config == {"responseModalities": ["TEXT", "IMAGE"]}


async def test_typed_answers_keep_the_thought_signature_and_drop_draft_images(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(fixture("thinking_image_answer.json"))
    request = GenerateRequest(
        "gemini-3-pro-image-preview", {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    )
    (answer,) = await provider.generate(target_for(fake), request)
    assert len(answer.images) == 1 and answer.images[0].thought_signature is not None
    assert answer.reasoning and answer.usage.thoughts == 206


def image_call(
    body: dict[str, object], *, decode: bool = True, operation: str = "images.generate"
) -> ImageCall:
    return ImageCall(operation, {"model": "gemini-2.5-flash-image", **body}, decode_images=decode)  # type: ignore[arg-type]


async def test_images_answer_decoded_once_for_storage(provider: GeminiProvider, fake: FakeGemini) -> None:
    answer = await provider.images(target_for(fake), image_call({"prompt": "a pig", "size": "1024x1536"}))
    assert answer["data"] == [{"b64_json": DecodedImage(fake.produced[0], mime="image/png")}]
    assert answer["usage"]["output_tokens_details"] == {"text_tokens": 0, "image_tokens": 1290}
    assert fake.calls[0].config == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "2:3"}}


async def test_images_answer_as_base64_when_not_stored(provider: GeminiProvider, fake: FakeGemini) -> None:
    answer = await provider.images(target_for(fake), image_call({"prompt": "a pig"}, decode=False))
    assert isinstance(answer["data"][0]["b64_json"], Base64Image)  # the upstream's text, never decoded
    sent = orjson.loads(answer_json(answer))
    assert sent["data"][0]["b64_json"] == base64.b64encode(fake.produced[0]).decode()


async def test_image_size_reaches_the_upstream_only_for_listed_models_in_capitals(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    sized = {"image_size_models": ["gemini-3-pro-image-preview"]}
    body = {"prompt": "a pig", "size": "1792x1024", "image_size": "4k"}
    await provider.images(
        target_for(fake, **sized), image_call({**body, "model": "gemini-3-pro-image-preview"})
    )
    await provider.images(target_for(fake, **sized), image_call(body))
    assert [c.config["imageConfig"] for c in fake.calls] == [
        {"aspectRatio": "16:9", "imageSize": "4K"},
        {"aspectRatio": "16:9"},
    ]


@pytest.mark.parametrize("reason", ["IMAGE_SAFETY", "NO_IMAGE", "PROHIBITED_CONTENT"])
async def test_an_images_answer_without_image_is_a_400_content_policy_violation(
    provider: GeminiProvider, fake: FakeGemini, reason: str
) -> None:
    fake.will(refused(reason))
    with pytest.raises(UpstreamError) as err:
        await provider.images(target_for(fake), image_call({"prompt": "x"}))
    assert (err.value.status, err.value.code) == (400, "content_policy_violation")
    assert reason in err.value.message


async def test_a_blocked_prompt_is_a_400_in_chat(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.will(blocked("SAFETY"))
    with pytest.raises(UpstreamError) as err:
        await provider.chat(target_for(fake), chat_body())
    assert (err.value.status, err.value.code) == (400, "content_policy_violation")


async def test_n_calls_run_concurrently_and_all_images_come_back(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.hold_until_in_flight = (
        3  # each call waits until three are in flight: a sequential loop would not get there
    )
    answer = await provider.images(target_for(fake), image_call({"prompt": "a pig", "n": 3}))
    assert fake.max_in_flight == 3 and len(fake.calls) == 3
    assert sorted(item["b64_json"].data for item in answer["data"]) == sorted(fake.produced)
    assert answer["usage"]["output_tokens"] == 3 * 1290


async def test_n_results_come_back_in_call_order_whatever_order_they_finish_in(
    provider: GeminiProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    gates = [asyncio.Event() for _ in range(3)]

    async def call(target: object, model: str, payload: bytes) -> Answer:
        index = len(started)
        started.append(index)
        if len(started) == 3:
            gates[2].set()  # the last call finishes first, then each releases the one before
        await gates[index].wait()
        if index:
            gates[index - 1].set()
        image = DecodedImage(str(index).encode())
        return Answer("", "", (image,), "stop", "STOP", None, GeminiUsage())

    monkeypatch.setattr(provider, "_call", call)
    answers = await provider.generate(None, GenerateRequest("m", {}, calls=3))  # type: ignore[arg-type]
    assert [a.images[0].data for a in answers] == [b"0", b"1", b"2"]


async def test_calls_that_failed_are_left_out_when_others_delivered(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(Reply.error("error_503_unavailable.json"), image_answer(render_png("ok", 8), text=None))
    answer = await provider.images(target_for(fake), image_call({"prompt": "a pig", "n": 2}))
    assert [item["b64_json"].data for item in answer["data"]] == [render_png("ok", 8)]


async def test_when_every_call_fails_the_error_is_raised(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.will(*(Reply.error("error_429_resource_exhausted.json") for _ in range(2)))
    with pytest.raises(UpstreamError) as err:
        await provider.images(target_for(fake), image_call({"prompt": "a pig", "n": 2}))
    assert (err.value.upstream_status, err.value.retry_after) == (429, 46.0)


async def test_a_wrong_key_is_upstream_auth_failed(provider: GeminiProvider, fake: FakeGemini) -> None:
    with pytest.raises(UpstreamError) as err:
        await provider.chat(target_for(fake, api_keys=["AIzaWrongKey"]), chat_body())
    assert (err.value.code, err.value.upstream_status) == ("upstream_auth_failed", 401)


async def test_an_unreachable_upstream_is_a_retryable_connection_failure(provider: GeminiProvider) -> None:
    unused = FakeGemini()
    await unused.start()
    await unused.stop()  # the port is closed now
    with pytest.raises(UpstreamError) as err:
        await provider.chat(target_for(unused), chat_body())
    assert err.value.retryable and err.value.upstream_status is None


async def test_a_200_that_is_not_an_answer_fails_over(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.will(Reply(body={"candidates": []}))
    with pytest.raises(UpstreamError) as err:
        await provider.chat(target_for(fake), chat_body())
    assert (err.value.code, err.value.retryable) == ("bad_upstream_response", True)


async def test_a_streamed_images_request_gets_one_completed_event_per_image(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    stream = await provider.open_images_stream(
        target_for(fake), image_call({"prompt": "a", "n": 2}, decode=False)
    )
    events = [event async for event in stream.events()]
    assert [name for name, _ in events] == [b"image_generation.completed"] * 2
    last = orjson.loads(events[-1][1])
    assert "usage" in last and base64.b64decode(last["b64_json"]) in fake.produced


async def test_a_call_without_image_among_n_is_left_out(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.will(refused("NO_IMAGE"), image_answer(render_png("second", 8), text=None))
    answer = await provider.images(target_for(fake), image_call({"prompt": "a pig", "n": 2}))
    assert [item["b64_json"].data for item in answer["data"]] == [render_png("second", 8)]


async def test_an_earlier_answers_image_goes_back_with_its_signature(
    provider: GeminiProvider, fake: FakeGemini, resolver: Resolver
) -> None:
    ours = "https://cdn.example/2026/01/01/first.png"
    resolver.images[ours] = InputImage(render_png("first", 8), "image/png", SIG)
    body = chat_body(
        messages=[
            {"role": "user", "content": "a cat"},
            {"role": "assistant", "content": f"![image]({ours})"},
            {"role": "user", "content": "make it blue"},
        ]
    )
    await provider.chat(target_for(fake), body)
    sent = fake.calls[0].body["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[1]["parts"] == [
        {
            "inlineData": {
                "mimeType": "image/png",
                "data": base64.b64encode(render_png("first", 8)).decode(),
            },
            "thoughtSignature": SIG,
        }
    ]

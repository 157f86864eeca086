"""generateContent answers → typed answers: parts, drafts, signatures, finish reasons, block, usage (§3.4)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from gateway.domain import DecodedImage, Usage
from gateway.errors import UpstreamError
from gateway.providers.gemini import response
from gateway.providers.gemini.response import CONTENT_FILTER, answer, load, no_image_error
from gateway.providers.gemini.shape import chat_completion, images_answer
from gateway.providers.gemini.usage import GeminiUsage
from gateway.providers.mock import render_png
from tests.fakes.gemini_upstream import blocked, fixture, image_answer, refused, text_answer
from tests.providers.gemini.conftest import channel

CHANNEL = channel()
FIXTURE_PNG = render_png("fixture", 4)
SIG = base64.b64encode(b"opaque-thought-signature-0001").decode()


def read(doc: Any) -> response.Answer:
    return answer(load(orjson.dumps(doc), CHANNEL), CHANNEL)


def test_text_and_image_of_the_recorded_answer() -> None:
    result = read(fixture("image_answer.json"))
    assert result.text == "Here is your nano banana dish in a fancy restaurant with a Gemini theme: "
    assert result.images == (DecodedImage(FIXTURE_PNG, mime="image/png"),)
    assert result.finish_reason == "stop" and result.refusal is None
    assert result.response_id == "deO6aLeTE4fYvdIPuIm_kQQ"


def test_thought_text_is_reasoning_drafts_are_dropped_and_the_signature_stays_with_its_image() -> None:
    result = read(fixture("thinking_image_answer.json"))
    assert result.reasoning.startswith("**Composing the scene**")
    assert result.text == "Here is the dish, plated under the Gemini constellation."
    assert result.images == (DecodedImage(FIXTURE_PNG, mime="image/png", thought_signature=SIG),)


def test_images_are_decoded_from_the_body_buffer_not_through_the_json_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = render_png("big", 256)
    raw = orjson.dumps(image_answer(big))
    parsed_sizes: list[int] = []
    real_loads = orjson.loads

    def loads(data: Any) -> Any:
        parsed_sizes.append(len(data))
        return real_loads(data)

    monkeypatch.setattr(response.orjson, "loads", loads)
    result = answer(load(bytearray(raw), CHANNEL), CHANNEL)
    assert result.images[0].data == big
    assert parsed_sizes and max(parsed_sizes) < 2000  # only the small rest of the document was parsed


def test_a_data_key_outside_inline_data_is_read_as_sent() -> None:
    doc = image_answer(FIXTURE_PNG)
    doc["candidates"][0]["content"]["parts"].append({"functionCall": {"name": "f", "args": {"data": "YWJj"}}})
    assert read(doc).images[0].data == FIXTURE_PNG


BAD_IMAGE = orjson.dumps(
    {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}]}}]}
)
FINISH = [
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    *[(reason, "content_filter") for reason in sorted(CONTENT_FILTER)],
]


@pytest.mark.parametrize(("reason", "mapped"), FINISH)
def test_every_finish_reason(reason: str, mapped: str) -> None:
    doc = text_answer("partial", finish=reason)
    result = read(doc)
    assert result.finish_reason == mapped
    assert result.upstream_reason == reason
    if mapped == "content_filter":
        assert result.refusal is not None and reason in result.refusal
    else:
        assert result.refusal is None


@pytest.mark.parametrize(
    "reason", ["IMAGE_SAFETY", "NO_IMAGE", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER"]
)
def test_a_refused_image_is_content_filter_in_chat_with_the_reason(reason: str) -> None:
    result = read(refused(reason, "The image was filtered out."))
    assert result.finish_reason == "content_filter" and not result.images
    assert (
        result.refusal
        == f"The upstream stopped without a full answer ({reason}). The image was filtered out."
    )
    shaped = chat_completion(result, model="nano-banana", image_urls=[])
    message = shaped["choices"][0]["message"]
    assert shaped["choices"][0]["finish_reason"] == "content_filter"
    assert message["content"] is None and reason in message["refusal"]


@pytest.mark.parametrize("reason", ["IMAGE_SAFETY", "NO_IMAGE", "STOP"])
def test_an_images_call_without_image_is_a_400_content_policy_violation(reason: str) -> None:
    doc = refused(reason) if reason != "STOP" else text_answer("I can't draw that.")
    err = no_image_error([read(doc)])
    assert (err.status, err.code, err.type) == (400, "content_policy_violation", "invalid_request_error")
    assert (reason if reason != "STOP" else "NO_IMAGE") in err.message
    assert err.upstream_status == 400  # not retried, the key not marked


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "IMAGE_SAFETY", "OTHER"])
def test_a_blocked_prompt_is_a_400_content_policy_violation(reason: str) -> None:
    with pytest.raises(UpstreamError) as err:
        read(blocked(reason))
    assert (err.value.status, err.value.code) == (400, "content_policy_violation")
    assert reason in err.value.message
    assert not err.value.retryable


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps(fixture("error_503_unavailable.json")), "an error object"),
        (b'{"candidates": []}', "no candidates"),
        (orjson.dumps(text_answer("")), "no text and no image"),
        (BAD_IMAGE, "not base64"),
    ],
)
def test_a_200_without_a_valid_answer_is_a_bad_upstream_response(raw: bytes, why: str) -> None:
    with pytest.raises(UpstreamError) as err:
        answer(load(raw, CHANNEL), CHANNEL)
    assert (err.value.status, err.value.code) == (502, "bad_upstream_response")
    assert err.value.retryable and why in err.value.message


def test_max_tokens_spent_thinking_is_a_valid_empty_answer() -> None:
    doc = text_answer("x", finish="MAX_TOKENS")
    doc["candidates"][0]["content"]["parts"] = [{"text": "thinking…", "thought": True}]
    result = read(doc)
    assert (result.finish_reason, result.text, result.reasoning) == ("length", "", "thinking…")


def test_usage_of_a_thinking_image_answer_in_the_chat_shape() -> None:
    usage = read(fixture("thinking_image_answer.json")).usage
    assert usage.chat_usage() == {
        "prompt_tokens": 19,
        "completion_tokens": 1132 + 206,
        "total_tokens": 1357,
        "prompt_tokens_details": {"text_tokens": 19, "image_tokens": 0, "cached_tokens": 0},
        "completion_tokens_details": {"text_tokens": 12 + 206, "image_tokens": 1120, "reasoning_tokens": 206},
    }
    assert usage.record() == Usage.from_openai(usage.chat_usage())


def test_usage_in_the_images_api_shape_with_image_input_and_cache() -> None:
    usage = GeminiUsage.read(
        {
            "promptTokenCount": 300,
            "candidatesTokenCount": 1290,
            "totalTokenCount": 1590,
            "cachedContentTokenCount": 20,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 42},
                {"modality": "IMAGE", "tokenCount": 258},
            ],
            "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
        }
    )
    assert usage is not None
    assert usage.images_usage() == {
        "input_tokens": 300,
        "output_tokens": 1290,
        "total_tokens": 1590,
        "input_tokens_details": {"text_tokens": 22, "image_tokens": 258},
        "output_tokens_details": {"text_tokens": 0, "image_tokens": 1290},
    }
    assert usage.record() == Usage.from_openai(usage.chat_usage())


def test_usage_without_details_counts_everything_as_text() -> None:
    usage = GeminiUsage.read({"promptTokenCount": 5, "candidatesTokenCount": 7})
    assert usage is not None
    assert usage.total == 12 and usage.chat_usage()["completion_tokens_details"]["text_tokens"] == 7


def test_images_answer_in_call_order_with_revised_prompt_and_summed_usage() -> None:
    one, two = render_png("one", 4), render_png("two", 4)
    answers = [read(image_answer(one, text="A pig.")), read(image_answer(two, text=None))]
    shaped = images_answer(answers, decoded=True)
    assert [item["b64_json"].data for item in shaped["data"]] == [one, two]
    assert shaped["data"][0]["revised_prompt"] == "A pig." and "revised_prompt" not in shaped["data"][1]
    assert shaped["output_format"] == "png"
    assert shaped["usage"]["output_tokens_details"]["image_tokens"] == 2 * 1290
    plain = images_answer(answers, decoded=False)
    assert plain["data"][1]["b64_json"] == base64.b64encode(two).decode()


def test_chat_completion_shape_with_images_and_reasoning() -> None:
    result = read(fixture("thinking_image_answer.json"))
    shaped = chat_completion(result, model="nano-banana-pro", image_urls=["https://cdn/x.png"])
    message = shaped["choices"][0]["message"]
    assert (
        message["content"]
        == "Here is the dish, plated under the Gemini constellation.\n\n![image](https://cdn/x.png)"
    )
    assert message["images"] == [{"type": "image_url", "image_url": {"url": "https://cdn/x.png"}}]
    assert message["reasoning_content"].startswith("**Composing")
    assert shaped["model"] == "nano-banana-pro" and shaped["object"] == "chat.completion"
    assert shaped["id"] == "chatcmpl-x7kfacOKMoWl0-kPmYj2yQd"

"""The recorded fixtures, the fake's answers and the gateway's requests match google-genai's types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest

from gateway.domain import ImageCall, InputImage
from gateway.providers.gemini.request import chat_request, images_request
from gateway.providers.gemini.response import CONTENT_FILTER
from gateway.providers.mock import render_png
from tests.fakes.gemini_upstream import (
    KEY,
    FakeGemini,
    Reply,
    blocked,
    frames_of,
    image_answer,
    refused,
    text_answer,
)
from tests.fakes.gemini_wire import check_answer, check_request
from tests.providers.gemini.conftest import Resolver, channel

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gemini"
PNG = render_png("wire", 8)
IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_every_fixture_is_a_valid_gemini_body(path: Path) -> None:
    body = json.loads(path.read_text())
    for item in body if isinstance(body, list) else [body]:
        check_answer(item)


def test_a_misspelt_field_is_caught() -> None:
    answer = image_answer(PNG)
    answer["candidates"][0]["content"]["parts"][1]["inline_data"] = answer["candidates"][0]["content"][
        "parts"
    ][1].pop("inlineData")
    answer["candidates"][0]["content"]["parts"][1]["inline_data"]["mime"] = "image/png"
    with pytest.raises(pydantic.ValidationError):
        check_answer(answer)


ANSWERS: list[Any] = [
    image_answer(PNG),
    image_answer(PNG, text=None, signature="c2ln", thought="thinking", mime="image/jpeg"),
    blocked("SAFETY"),
    *[text_answer("t", finish=reason) for reason in ("STOP", "MAX_TOKENS", *sorted(CONTENT_FILTER))],
    *[refused(reason, "m") for reason in sorted(CONTENT_FILTER)],
]


async def test_every_kind_of_fake_answer_is_valid_on_the_wire() -> None:
    fake = await FakeGemini().start()
    fake.will(*ANSWERS, *(Reply(frames=frames_of(a)) for a in ANSWERS if "candidates" in a))
    fake.will(*(Reply.error(p.name) for p in sorted(FIXTURES.glob("error_*.json"))))
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    url = f"{fake.url}/v1beta/models/gemini-2.5-flash-image:"
    try:
        async with aiohttp.ClientSession(headers={"x-goog-api-key": KEY}) as session:
            while fake.replies:
                stream = fake.replies[0].frames is not None
                method = "streamGenerateContent?alt=sse" if stream else "generateContent"
                async with session.post(url + method, json=body) as resp:
                    await resp.read()
    finally:
        await fake.stop()
    assert len(fake.answered) >= 2 * len(ANSWERS)
    for answered in fake.answered:
        check_answer(answered)


async def test_the_requests_the_gateway_builds_are_valid_gemini_requests() -> None:
    resolver = Resolver({"https://x/ours.png": InputImage(PNG, "image/png", "c2ln")})
    chat = await chat_request(
        {
            "messages": [
                {"role": "system", "content": "draw"},
                {"role": "user", "content": [{"type": "text", "text": "cat"}, IMAGE_PART]},
                {"role": "assistant", "content": "![image](https://x/ours.png)"},
                {"role": "user", "content": "bluer"},
            ],
            "temperature": 0.3,
            "top_p": 0.5,
            "max_tokens": 100,
            "stop": ["x"],
            "seed": 3,
            "image_config": {"aspect_ratio": "4:3", "image_size": "2k"},
            "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        },
        channel=channel(image_size_models=["gemini-3-pro-image-preview"]),
        model="gemini-3-pro-image-preview",
        resolve=resolver,
    )
    check_request(chat.body)
    edit = await images_request(
        ImageCall(
            "images.edit",
            {
                "prompt": "merge",
                "size": "1536x1024",
                "quality": "hd",
                "images": [{"image_url": "data:image/png;base64,AA=="}],
            },
        ),
        channel=channel(image_size_models=["gemini-3-pro-image-preview"]),
        model="gemini-3-pro-image-preview",
        resolve=resolver,
    )
    check_request(edit.body)

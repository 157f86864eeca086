"""§3.2: data: URL images in an OpenAI-compatible chat answer are re-hosted and replaced by storage URLs."""

from __future__ import annotations

import re

import httpx2 as httpx
from openai import OpenAI

from tests.fakes.openai_upstream import CHAT_IMAGE, FakeOpenAI
from tests.gateway_process import GatewayProcess

HELLO = [{"role": "user", "content": "Draw a square"}]


def stored(gateway: GatewayProcess, url: str) -> bytes:
    assert url.startswith(f"{gateway.url}/files/"), url
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    return resp.content


def test_non_stream_images_rehosted(client: OpenAI, gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    answer = client.chat.completions.create(model="chat-image", messages=HELLO)
    message = answer.choices[0].message
    assert message.content is not None and "data:" not in message.content
    url = re.search(r"!\[image\]\(([^)]+)\)", message.content).group(1)  # type: ignore[union-attr]
    assert stored(gateway, url) == CHAT_IMAGE
    images = (message.model_extra or {})["images"]
    assert stored(gateway, images[0]["image_url"]["url"]) == CHAT_IMAGE


def test_stream_images_rehosted(client: OpenAI, gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="chat-image", messages=HELLO, stream=True)
        if c.choices
    )
    assert "data:" not in text
    url = re.search(r"!\[image\]\(([^)]+)\)", text).group(1)  # type: ignore[union-attr]
    assert stored(gateway, url) == CHAT_IMAGE

"""The `mock` channel answers chat for image models with a real image in the §3.2 shape, stream or not;
the image is re-hosted like any upstream's, and counted once although the answer carries it twice (in the
markdown and in `images[]`)."""

from __future__ import annotations

from pathlib import Path

from gateway.providers.mock import render_png
from tests.e2e.gemini.conftest import Gateway
from tests.e2e.gemini.support import markdown_urls, stored, usage_record, user


def files(gateway: Gateway) -> set[Path]:
    return {p for p in (gateway.proc.tmp / "images").rglob("*") if p.is_file()}


def test_mock_image_chat_non_stream(gateway: Gateway) -> None:
    before = files(gateway)
    with gateway.client("object_url") as client:
        answer = client.chat.completions.create(
            model="mock-image", messages=user("a red kite"), extra_headers={"x-request-id": "mock-image-1"}
        )
    message = answer.choices[0].message
    (url,) = markdown_urls(message.content)
    assert message.content == f"Mock image for: a red kite\n\n![image]({url})"
    extra = message.model_extra or {}
    assert extra["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert extra["image"] == {"url": url}
    assert stored(gateway, url) == render_png("a red kite", 64)
    assert len(files(gateway) - before) == 1  # stored once
    assert usage_record(gateway, "mock-image-1")["image_count"] == 1  # counted once


def test_mock_image_chat_stream(gateway: Gateway) -> None:
    with gateway.client() as client:
        chunks = list(
            client.chat.completions.create(model="mock-image", messages=user("a kite"), stream=True)
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (url,) = markdown_urls(text)
    assert text.startswith("Mock image for: a kite") and "data:" not in text
    assert stored(gateway, url) == render_png("a kite", 64)

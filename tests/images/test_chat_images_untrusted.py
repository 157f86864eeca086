"""A chat answer's `message` (or stream `delta`) holding anything: re-hosting never crashes."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from gateway.images.chat_images import ChatImages
from gateway.images.fetch import ImageFetcher
from gateway.storage.memory import MemoryStore

MESSAGES: list[dict[str, Any]] = [
    {"content": 5},
    {"content": ["![a](data:image/png;base64,AAAA)"]},
    {"content": "![a](data:image/png;base64,not-base64)"},
    {"content": "![a](data:image/png;base64,"},
    {"images": "x"},
    {"images": [1, None, "x", {"image_url": 5}, {"image_url": {"url": 7}}, {"image_url": {"url": "data:x"}}]},
    {"images": {"image_url": {"url": "data:image/png;base64,AAAA"}}},
]


@pytest.mark.parametrize("message", MESSAGES, ids=[repr(m)[:40] for m in MESSAGES])
async def test_any_message_is_rewritten_without_a_crash(message: dict[str, Any]) -> None:
    images = ChatImages(MemoryStore(), cast(ImageFetcher, None), 1, rehost_urls=False)
    rewritten = copy.deepcopy(message)
    if ChatImages.may_hold_images(rewritten):
        await images.message(rewritten)
    assert set(rewritten) == set(message)

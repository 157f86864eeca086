"""Gemini provider tests: a channel factory, an image resolver stand-in, the fake upstream in the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from gateway.domain import InputImage, Target
from gateway.errors import InvalidImageURL
from gateway.providers.gemini.adapter import GeminiProvider
from gateway.providers.mock import render_png
from gateway.settings import ChannelSettings
from tests.fakes.gemini_upstream import KEY, FakeGemini
from tests.fakes.gemini_wire import check_answer, check_request

PNG = render_png("input image", 8)


def channel(**overrides: Any) -> ChannelSettings:
    settings: dict[str, Any] = {
        "name": "gemini-main",
        "kind": "gemini",
        "base_url": "https://generativelanguage.googleapis.com",
        "api_keys": [KEY],
        "models": ["gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-2.5-flash"],
    }
    settings.update(overrides)
    return ChannelSettings.model_validate(settings)


@dataclass
class Resolver:
    """Stands in for the pipeline's resolver: known URLs give known images, others are refused."""

    images: dict[str, InputImage] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, url: str, what: str) -> InputImage:
        self.asked.append((url, what))
        if url in self.images:
            return self.images[url]
        if url.startswith("data:image/"):
            return InputImage(PNG, "image/png")
        raise InvalidImageURL(f"{what} could not be fetched")


@pytest.fixture
def resolver() -> Resolver:
    return Resolver()


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    """The fake Gemini API; after each test, everything it received and answered is checked against
    Google's own types, so a misspelt field fails the test that sent or answered it."""
    server = await FakeGemini().start()
    yield server
    await server.stop()
    for call in server.calls:
        check_request(call.body)
    for body in server.answered:
        check_answer(body)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def provider(session: aiohttp.ClientSession, resolver: Resolver) -> GeminiProvider:
    return GeminiProvider(session, 8 << 20, resolver)


def target_for(fake: FakeGemini, key_index: int = 0, **overrides: Any) -> Target:
    return Target(channel(base_url=fake.url, **overrides), key_index)

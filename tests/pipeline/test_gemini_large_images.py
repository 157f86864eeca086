"""§5.4 with a Gemini 4K answer: a 20 MiB image arrives as 27 MiB of JSON (`inlineData.data`) and is re-hosted
holding at most the answer's bytes and one decoded copy of the image. Memory is measured with tracemalloc
(Python allocations, exact): parsing the whole document instead would add the parser's 27 MiB string."""

from __future__ import annotations

import base64
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import orjson
import pytest

from bench.png import make_png
from gateway.domain import DecodedImage, InputImage, Target
from gateway.images.answer_images import show_answer_images
from gateway.images.output import Delivery, deliver
from gateway.providers.gemini.adapter import GeminiProvider
from gateway.providers.gemini.request import GenerateRequest
from gateway.providers.gemini.shape import images_answer
from gateway.settings import ChannelSettings
from gateway.storage.memory import MemoryStore
from tests.fakes.hostile import HostileUpstream, Scripted

MIB = 1024 * 1024
IMAGE = make_png(20 * MIB)
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 2000, "totalTokenCount": 2012,
         "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 2000}]}  # fmt: skip
HEAD = b'{"candidates":[{"content":{"role":"model","parts":[{"inlineData":{"mimeType":"image/png","data":"'
TAIL = (
    b'"},"thoughtSignature":"c2ln"}]},"finishReason":"STOP","index":0}],"usageMetadata":'
    + orjson.dumps(USAGE)
    + b"}"
)
BODY = [HEAD, base64.b64encode(IMAGE), TAIL]  # written as they are: the fake allocates nothing per answer


async def no_images(url: str, what: str) -> InputImage:
    raise AssertionError("no input image here")


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        server.script("v1beta", Scripted(parts=BODY))
        yield server


@pytest.fixture
async def provider() -> AsyncIterator[GeminiProvider]:
    async with aiohttp.ClientSession(read_bufsize=2**18) as session:
        yield GeminiProvider(session, 128 * MIB, no_images)


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def target(upstream: HostileUpstream) -> Target:
    channel = ChannelSettings(
        name="g", kind="gemini", base_url=upstream.url, api_keys=["k"], models=["gemini-3-pro-image-preview"]
    )
    return Target(channel, 0)


REQUEST = GenerateRequest(
    "gemini-3-pro-image-preview", {"contents": [{"role": "user", "parts": [{"text": "4K"}]}]}
)


def peak_since(base: int) -> float:
    return (tracemalloc.get_traced_memory()[1] - base) / MIB


def test_the_answer_really_is_27_mib_of_json_around_a_20_mib_image() -> None:
    assert len(IMAGE) == 20 * MIB and 26 * MIB < sum(map(len, BODY)) < 28 * MIB


async def test_images_api_answer_is_decoded_once_and_stored_without_a_copy(
    upstream: HostileUpstream, provider: GeminiProvider, traced: None
) -> None:
    store = MemoryStore()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    answers = await provider.generate(target(upstream), REQUEST)
    body = images_answer(answers, decoded=True)
    del answers
    how = Delivery("url", store, None, 1, rehost_urls=False, base64_allowed=False)  # type: ignore[arg-type]
    await deliver(body["data"], how)
    peak = peak_since(base)
    (stored,) = store.objects.values()
    assert stored.data == IMAGE and body["data"][0]["url"].startswith("http://storage.test/")
    # The body (27 MiB) and the image (20 MiB) at once, and nothing else of their size.
    assert peak < 27 + 20 + 4, f"peak {peak:.1f} MiB"


async def test_chat_answer_image_is_stored_with_its_signature_without_a_copy(
    upstream: HostileUpstream, provider: GeminiProvider, traced: None
) -> None:
    store = MemoryStore()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    (answer,) = await provider.generate(target(upstream), REQUEST)
    (image,) = answer.images
    assert isinstance(image, DecodedImage) and image.thought_signature == "c2ln"
    (shown,) = await show_answer_images(store, answer.images, 1, keep_data=False)
    peak = peak_since(base)
    assert shown.url.startswith("http://storage.test/") and len(store.objects) == 2  # image + signature
    assert peak < 27 + 20 + 4, f"peak {peak:.1f} MiB"

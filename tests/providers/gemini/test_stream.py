"""`:streamGenerateContent?alt=sse`: CRLF frames, typed deltas, the end of a stream, disconnects (§3.3)."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import orjson
import pytest

from gateway.errors import UpstreamError
from gateway.providers.gemini.adapter import GeminiProvider
from gateway.providers.gemini.request import GenerateRequest
from gateway.providers.gemini.stream import (
    Delta,
    FinishDelta,
    ImageDelta,
    ReasoningDelta,
    TextDelta,
    UsageDelta,
)
from gateway.providers.mock import render_png
from tests.fakes.gemini_upstream import (
    KEY,
    FakeGemini,
    Reply,
    blocked,
    fixture,
    frames_of,
    image_answer,
    refused,
)
from tests.providers.gemini.conftest import target_for

IMAGE_REQUEST = GenerateRequest(
    "gemini-2.5-flash-image",
    {
        "contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    },
)
FIXTURE_PNG = render_png("fixture", 4)


async def collect(provider: GeminiProvider, fake: FakeGemini) -> list[Delta]:
    stream = await provider.open_stream(target_for(fake), IMAGE_REQUEST)
    return [delta async for batch in stream.deltas() for delta in batch]


async def test_frames_end_with_crlf_crlf_and_no_done(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    url = f"{fake.url}/v1beta/models/gemini-2.5-flash-image:streamGenerateContent?alt=sse"
    async with session.post(url, json=IMAGE_REQUEST.body, headers={"x-goog-api-key": KEY}) as resp:
        raw = await resp.read()
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b"" and len(frames) == 3  # two frames, each closed by CRLF CRLF
    assert all(frame.startswith(b"data: {") for frame in frames[:-1])
    assert b"[DONE]" not in raw


async def test_the_recorded_stream_as_deltas_text_before_the_image(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(Reply(frames=fixture("stream_frames.json")))
    deltas = await collect(provider, fake)
    assert deltas[:2] == [TextDelta("Okay, here is "), TextDelta("a cat in the grass.")]
    assert isinstance(deltas[2], ImageDelta) and deltas[2].image.data == FIXTURE_PNG
    assert deltas[3] == FinishDelta("stop", "STOP", None)
    assert isinstance(deltas[4], UsageDelta) and deltas[4].usage.output_image == 1290
    assert len(deltas) == 5
    assert fake.calls[0].method == "streamGenerateContent" and fake.calls[0].query == {"alt": "sse"}


async def test_thoughts_are_reasoning_and_signatures_stay_with_images(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(Reply(frames=frames_of(fixture("thinking_image_answer.json"))))
    deltas = await collect(provider, fake)
    kinds = [type(d).__name__ for d in deltas]
    assert kinds == ["ReasoningDelta", "TextDelta", "ImageDelta", "FinishDelta", "UsageDelta"]
    assert isinstance(deltas[0], ReasoningDelta)
    image = deltas[2]
    assert isinstance(image, ImageDelta) and image.image.thought_signature


async def test_a_refusal_ends_the_stream_with_content_filter(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(Reply(frames=frames_of(refused("IMAGE_SAFETY", "filtered"))))
    deltas = await collect(provider, fake)
    finish = next(d for d in deltas if isinstance(d, FinishDelta))
    assert (
        finish.reason == "content_filter" and finish.refusal is not None and "IMAGE_SAFETY" in finish.refusal
    )


async def test_a_stream_that_ends_before_its_finish_reason_is_interrupted(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    frames = fixture("stream_frames.json")[:2]  # the text, and then nothing
    fake.will(Reply(frames=frames))
    stream = await provider.open_stream(target_for(fake), IMAGE_REQUEST)
    seen: list[Delta] = []
    with pytest.raises(UpstreamError) as err:
        async for batch in stream.deltas():
            seen += batch
    assert err.value.code == "upstream_stream_interrupted"
    assert seen == [TextDelta("Okay, here is "), TextDelta("a cat in the grass.")]


async def test_a_frame_cut_in_the_middle_is_interrupted_too(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(
        Reply(frames=fixture("stream_frames.json")[:1], tail=b'data: {"candidates": [{"content": {"par')
    )
    with pytest.raises(UpstreamError) as err:
        await collect(provider, fake)
    assert err.value.code == "upstream_stream_interrupted"


async def test_an_error_frame_is_mapped_like_an_error_answer(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    error = orjson.dumps(fixture("error_503_unavailable.json"))
    fake.will(Reply(frames=fixture("stream_frames.json")[:1], tail=b"data: " + error + b"\r\n\r\n"))
    with pytest.raises(UpstreamError) as err:  # at the opening or later: both frames may come in one read
        await collect(provider, fake)
    assert (err.value.code, err.value.upstream_status) == ("unavailable", 503)


async def test_a_blocked_prompt_fails_the_opening_itself(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.will(Reply(frames=[blocked("SAFETY")]))
    with pytest.raises(UpstreamError) as err:
        await provider.open_stream(target_for(fake), IMAGE_REQUEST)
    assert (err.value.status, err.value.code) == (400, "content_policy_violation")


async def test_an_http_error_fails_the_opening(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.will(Reply.error("error_429_resource_exhausted.json"))
    with pytest.raises(UpstreamError) as err:
        await provider.open_stream(target_for(fake), IMAGE_REQUEST)
    assert (err.value.upstream_status, err.value.retry_after) == (429, 46.0)


async def test_closing_the_stream_hangs_up_on_the_upstream(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.will(Reply(frames=fixture("stream_frames.json"), gate=True))
    stream = await provider.open_stream(target_for(fake), IMAGE_REQUEST)
    first = await anext(stream.deltas())
    assert first == [TextDelta("Okay, here is ")]
    await stream.aclose()
    for _ in range(500):  # the fake notices the closed connection on its next check
        if fake.stream_closed.is_set():
            break
        await asyncio.sleep(0.01)
    assert fake.events == ["upstream_saw_disconnect"]


async def test_the_protocol_stream_relays_openai_chunks(provider: GeminiProvider, fake: FakeGemini) -> None:
    image = render_png("streamed", 8)
    fake.will(Reply(frames=frames_of(image_answer(image, text="Here you go."))))
    body = {"model": "nano-banana", "messages": [{"role": "user", "content": "a cat"}], "stream": True}
    stream = await provider.open_chat_stream(
        target_for(fake, model_map={"nano-banana": "gemini-2.5-flash-image"}), body
    )
    events = [data async for _, data in stream.events()]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert fake.calls[0].model == "gemini-2.5-flash-image"  # mapped by the channel
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": "Here you go."}
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    assert deltas[1] == {
        "content": f"\n\n![image]({url})",
        "images": [{"type": "image_url", "image_url": {"url": url}}],
    }
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert (
        chunks[3]["choices"] == [] and chunks[3]["usage"]["completion_tokens_details"]["image_tokens"] == 1290
    )
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1

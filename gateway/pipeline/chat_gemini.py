"""Chat on `kind: gemini` channels (§3.4) through the provider's typed calls: images arrive decoded once
(§5.4), are stored with their thought signatures, and are shown the §3.2 way by `images.chat_shape`.

A chat answer that the upstream stopped for safety (finish_reason `content_filter`) and that holds no
image is delivered with the reason and charged nothing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from gateway.domain import ImageResolver, JSONObject, Target
from gateway.images.answer_images import show_answer_images
from gateway.images.chat_shape import ImageField, show
from gateway.pipeline.common import Ledger
from gateway.providers.gemini.request import chat_request
from gateway.providers.gemini.response import Answer
from gateway.providers.gemini.shape import ChunkWriter, chat_completion
from gateway.providers.gemini.stream import FinishDelta, GeminiStream, ImageDelta, UsageDelta
from gateway.runtime import Runtime


async def answer(rt: Runtime, body: JSONObject, model: str, target: Target, resolve: ImageResolver) -> Answer:
    """One non-stream attempt; `model` is the client's name (model_defaults are keyed by it)."""
    request = await chat_request(body, channel=target.channel, model=model, resolve=resolve)
    (reply,) = await rt.providers.gemini.generate(target, request)
    return reply


async def open_stream(
    rt: Runtime, body: JSONObject, model: str, target: Target, resolve: ImageResolver
) -> GeminiStream:
    """One stream attempt: returns once the first frame is read, so a refusal still fails over."""
    request = await chat_request(body, channel=target.channel, model=model, resolve=resolve)
    return await rt.providers.gemini.open_stream(target, request)


async def completion(rt: Runtime, ledger: Ledger, model: str, reply: Answer, field: ImageField) -> JSONObject:
    """The §3.2 chat completion of a whole answer; the record gets its images and usage."""
    shown = await show_answer_images(
        rt.store, reply.images, rt.settings.storage.upload_attempts, keep_data=field == "list_data"
    )
    body = chat_completion(reply, model=model, image_urls=())
    show(body["choices"][0]["message"], shown, field)
    ledger.record.image_count = len(shown)
    ledger.record.usage = reply.usage.record()
    ledger.refused = reply.finish_reason == "content_filter" and not shown
    return body


async def relay(
    rt: Runtime, ledger: Ledger, model: str, stream: GeminiStream, field: ImageField, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """The SSE events of the stream, one write per upstream read: text as it comes, each image as one
    chunk once stored (§3.3); the usage chunk only when the client asked for it. No `[DONE]` here."""
    writer = ChunkWriter(model, stream.response_id)
    attempts = rt.settings.storage.upload_attempts
    record = ledger.record
    async for deltas in stream.deltas():
        outs: list[bytes] = []
        for delta in deltas:
            if isinstance(delta, ImageDelta):
                shown = await show_answer_images(
                    rt.store, [delta.image], attempts, keep_data=field == "list_data"
                )
                chunk: JSONObject = {}
                show(chunk, shown, field, lead="\n\n" if writer.wrote_text else "")
                record.image_count += 1
                outs.append(writer.delta(chunk))
            elif isinstance(delta, UsageDelta):
                record.usage = delta.usage.record()
                if include_usage:
                    outs.append(writer.chunk(delta))
            else:
                if isinstance(delta, FinishDelta):
                    ledger.refused = delta.reason == "content_filter" and not record.image_count
                outs.append(writer.chunk(delta))
        if outs:
            ledger.ttfb()
            yield b"".join(b"data: " + out + b"\n\n" for out in outs)

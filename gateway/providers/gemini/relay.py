"""Gemini answers relayed in the OpenAI SSE shapes the Provider protocol promises.

Chat: `chat.completion.chunk` events ending with `[DONE]`, images as `data:` URLs (the pipeline
re-hosts them). Images API: Gemini has no partial images, so a streamed request gets one
`image_generation.completed` (or `image_edit.completed`) event per image, the last with the usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.domain import JSONObject, Operation, UpstreamImage, answer_json
from gateway.providers.gemini.shape import ChunkWriter, base64_of
from gateway.providers.gemini.stream import GeminiStream
from gateway.providers.sse import SSEEvent


class OpenAIChunks:
    """A Gemini stream relayed as OpenAI `chat.completion.chunk` events, ending with `[DONE]`."""

    def __init__(self, stream: GeminiStream, model: str) -> None:
        self._stream = stream
        self._writer = ChunkWriter(model, stream.response_id)

    async def batches(self) -> AsyncIterator[list[SSEEvent]]:
        async for deltas in self._stream.deltas():
            yield [(None, self._writer.chunk(delta)) for delta in deltas]
        yield [(None, b"[DONE]")]

    async def events(self) -> AsyncIterator[SSEEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def aclose(self) -> None:
        await self._stream.aclose()


class CompletedEvents:
    """An Images API answer as SSE events: `image_generation.completed` (or `image_edit.…`) per image."""

    def __init__(self, body: JSONObject, operation: Operation) -> None:
        self._body = body
        self._name = b"image_edit.completed" if operation == "images.edit" else b"image_generation.completed"

    async def batches(self) -> AsyncIterator[list[SSEEvent]]:
        data = self._body.get("data") or []
        batch: list[SSEEvent] = []
        for i, item in enumerate(data):
            b64 = item["b64_json"]
            event: JSONObject = {
                "type": self._name.decode(),
                "b64_json": base64_of(b64) if isinstance(b64, UpstreamImage) else b64,
            }
            if i == len(data) - 1 and "usage" in self._body:
                event["usage"] = self._body["usage"]
            batch.append((self._name, answer_json(event)))
        yield batch

    async def events(self) -> AsyncIterator[SSEEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def aclose(self) -> None:
        return None

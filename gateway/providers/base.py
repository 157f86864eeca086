"""What every provider offers: its operations, chat (plain and streamed), and the Images API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.domain import ImageCall, JSONObject, Operation, Target
from gateway.providers.sse import PlainRun, SSEEvent


class ChatStream(Protocol):
    """An upstream stream that answered 200."""

    def batches(self) -> AsyncIterator[list[SSEEvent] | PlainRun]:
        """The SSE events in order, grouped as they arrived (one group per network read)."""
        ...

    async def aclose(self) -> None: ...


class EventStream(ChatStream, Protocol):
    def events(self) -> AsyncIterator[SSEEvent]:
        """(event name, data) pairs, for streams whose events are named (Images API)."""
        ...


class Provider(Protocol):
    operations: frozenset[Operation]

    async def chat(self, target: Target, body: JSONObject) -> JSONObject:
        """A non-stream chat completion in OpenAI's shape. Raises UpstreamError on failure."""
        ...

    async def open_chat_stream(self, target: Target, body: JSONObject) -> ChatStream:
        """Send a streamed chat request and return once the upstream has answered 200."""
        ...

    async def images(self, target: Target, call: ImageCall) -> JSONObject:
        """An Images API answer in OpenAI's shape (`created`, `data`, `usage`…)."""
        ...

    async def open_images_stream(self, target: Target, call: ImageCall) -> EventStream:
        """A streamed Images API request (`partial_images`), opened."""
        ...

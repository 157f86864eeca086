"""What every provider offers: its operations, a chat call, and an opened chat stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.domain import JSONObject, Operation, Target


class ChatStream(Protocol):
    """An upstream stream that answered 200: yields each SSE `data:` payload (bytes), in order."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    operations: frozenset[Operation]

    async def chat(self, target: Target, body: JSONObject) -> JSONObject:
        """A non-stream chat completion in OpenAI's shape. Raises UpstreamError on failure."""
        ...

    async def open_chat_stream(self, target: Target, body: JSONObject) -> ChatStream:
        """Send a streamed chat request and return once the upstream has answered 200."""
        ...

"""`:streamGenerateContent?alt=sse` → typed deltas, the equivalent of `chat.completion.chunk`s (§3.3).

Google frames each `GenerateContentResponse` as `data: {…}` followed by `\\r\\n\\r\\n`, and sends no
`[DONE]`: the frame carrying `finishReason` ends the answer. A stream that ends before it is
interrupted (§2 `upstream_stream_interrupted`). `usageMetadata` repeats in frames with running totals;
the last one is the usage of the answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp

from gateway.domain import Target, UpstreamImage
from gateway.errors import UpstreamError
from gateway.providers.gemini.errors import error_object, gemini_error, interrupted
from gateway.providers.gemini.response import (
    FinishReason,
    Frame,
    TextPart,
    finish_reason,
    load,
    refusal_text,
)
from gateway.providers.gemini.usage import GeminiUsage
from gateway.providers.openai.http import transport_error
from gateway.providers.sse import SSEEvent, iter_sse_batches


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ImageDelta:
    image: UpstreamImage


@dataclass(frozen=True, slots=True)
class FinishDelta:
    reason: FinishReason
    upstream_reason: str
    refusal: str | None


@dataclass(frozen=True, slots=True)
class UsageDelta:
    usage: GeminiUsage


Delta = TextDelta | ReasoningDelta | ImageDelta | FinishDelta | UsageDelta


def frame_deltas(frame: Frame) -> list[Delta]:
    """The deltas of one frame, in order: its parts, then its finish."""
    deltas: list[Delta] = []
    for part in frame.parts:
        if isinstance(part, TextPart):
            deltas.append(ReasoningDelta(part.text) if part.thought else TextDelta(part.text))
        else:
            deltas.append(ImageDelta(part))
    if frame.finish:
        mapped = finish_reason(frame.finish)
        refusal = refusal_text(frame.finish, frame.finish_message) if mapped == "content_filter" else None
        deltas.append(FinishDelta(mapped, frame.finish, refusal))
    return deltas


class GeminiStream:
    """An opened stream; `deltas()` yields one list per network read, closing with the usage."""

    def __init__(self, response: aiohttp.ClientResponse, target: Target, max_event_bytes: int) -> None:
        self._response = response
        self._target = target
        self._events = iter_sse_batches(response.content.iter_any(), max_event_bytes)
        self._pending: list[Delta] = []
        self._finished = False
        self._usage: GeminiUsage | None = None
        self._reads = self._batches()
        self.response_id: str | None = None

    async def start(self) -> None:
        """Read up to the first delta, so that a refusal or a bad first frame fails the attempt itself."""
        while not self._pending:
            try:
                self._pending += await anext(self._reads)
            except StopAsyncIteration:
                return

    async def _batches(self) -> AsyncGenerator[list[Delta], None]:
        try:
            async for events in self._events:
                yield self._translate(events)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, self._target) from None
        if not self._finished:
            raise interrupted(self._target.channel)

    def _translate(self, events: Sequence[SSEEvent]) -> list[Delta]:
        deltas: list[Delta] = []
        for _, data in events:
            if not data.strip() or data == b"[DONE]":
                continue
            frame = self._frame(data)
            self.response_id = self.response_id or frame.response_id
            if frame.usage is not None:
                self._usage = frame.usage
            for delta in frame_deltas(frame):
                if isinstance(delta, FinishDelta):
                    if self._finished:
                        continue
                    self._finished = True
                deltas.append(delta)
        return deltas

    def _frame(self, data: bytes) -> Frame:
        """One frame; an `error` frame is mapped like an error answer, anything unreadable ends the stream."""
        try:
            return load(data, self._target.channel, whole=False)
        except UpstreamError as err:
            if err.code != "bad_upstream_response":
                raise
            error = error_object(data)
            if error:
                status = error.get("code")
                raise gemini_error(
                    status if isinstance(status, int) else 500, data, {}, self._target.channel
                ) from None
            raise interrupted(self._target.channel) from None

    async def deltas(self) -> AsyncIterator[list[Delta]]:
        try:
            if self._pending:
                pending, self._pending = self._pending, []
                yield pending
            async for batch in self._reads:
                if batch:
                    yield batch
            if self._usage is not None:
                yield [UsageDelta(self._usage)]
        finally:
            self._response.close()

    async def aclose(self) -> None:
        self._response.close()
        with contextlib.suppress(RuntimeError):  # still running in a task being cancelled: it ends itself
            await self._reads.aclose()

"""The call itself: send JSON or multipart to an OpenAI-compatible upstream, turn failures into errors."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson

from gateway.domain import JSONObject, Target
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.openai.errors import upstream_error
from gateway.providers.sse import SSEEvent, iter_sse_batches

Payload = bytes | aiohttp.FormData


def request_headers(target: Target, content_type: str | None = "application/json") -> dict[str, str]:
    headers = dict(target.channel.headers)
    key = target.api_key
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if content_type:
        headers["Content-Type"] = content_type
    return headers


@functools.cache
def _timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=min(10.0, total))


def timeout_for(target: Target) -> aiohttp.ClientTimeout:
    return _timeout(target.channel.timeout_seconds)


def transport_error(exc: BaseException, target: Target) -> UpstreamError:
    name = target.channel.name
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(f"channel {name}: connecting to the upstream timed out", sent=False)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"channel {name}: the upstream did not answer in time", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"channel {name}: could not connect to the upstream", retryable=True)
    return UpstreamError(
        f"channel {name}: the upstream connection failed ({type(exc).__name__})", retryable=True
    )


def _payload(body: JSONObject | aiohttp.FormData, target: Target) -> tuple[Payload, dict[str, str]]:
    if isinstance(body, aiohttp.FormData):
        return body, request_headers(target, content_type=None)  # aiohttp sets the multipart boundary
    return orjson.dumps(body), request_headers(target)


async def read_body(response: aiohttp.ClientResponse) -> bytes | bytearray:
    """Read an answer with one copy: into a buffer of the announced size when there is one.

    Image answers are 10-30 MB of base64; joining a list of chunks would hold them twice.
    """
    length = response.content_length
    if not length:
        return await response.read()
    buffer = bytearray(length)
    view = memoryview(buffer)
    offset = 0
    async for chunk in response.content.iter_any():
        end = offset + len(chunk)
        if end > length:
            return bytes(buffer[:offset]) + chunk + await response.content.read()
        view[offset:end] = chunk
        offset = end
    view.release()
    if offset < length:
        del buffer[offset:]
    return buffer


async def post(
    session: aiohttp.ClientSession,
    target: Target,
    path: str,
    body: JSONObject | aiohttp.FormData,
    parse: Callable[[bytes | bytearray], Any] = orjson.loads,
) -> JSONObject:
    url = f"{target.channel.base_url}{path}"
    data, headers = _payload(body, target)
    try:
        async with session.post(url, data=data, headers=headers, timeout=timeout_for(target)) as resp:
            raw = await read_body(resp)
            if resp.status != 200:
                raise upstream_error(resp.status, bytes(raw), resp.headers, target.channel)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(exc, target) from None
    try:
        parsed = parse(raw)
    except orjson.JSONDecodeError:
        parsed = None
    del raw
    if not isinstance(parsed, dict):
        raise UpstreamError(f"channel {target.channel.name}: the upstream answered something other than JSON")
    return parsed


class OpenAIStream:
    """An opened SSE response; closing it closes the upstream connection."""

    def __init__(self, response: aiohttp.ClientResponse, target: Target) -> None:
        self._response = response
        self._target = target

    async def batches(self) -> AsyncIterator[list[SSEEvent]]:
        try:
            async for batch in iter_sse_batches(self._response.content.iter_any()):
                yield batch
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, self._target) from None
        finally:
            self._response.close()

    async def events(self) -> AsyncIterator[SSEEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def aclose(self) -> None:
        self._response.close()


async def open_stream(
    session: aiohttp.ClientSession, target: Target, path: str, body: JSONObject | aiohttp.FormData
) -> OpenAIStream:
    url = f"{target.channel.base_url}{path}"
    data, headers = _payload(body, target)
    headers["Accept"] = "text/event-stream"
    # A stream may run long: bound the wait for each read, not the whole answer.
    limit = target.channel.timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, limit), sock_read=limit)
    try:
        response = await session.post(url, data=data, headers=headers, timeout=timeout)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(exc, target) from None
    if response.status != 200:
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        finally:
            response.release()
        raise upstream_error(response.status, raw, response.headers, target.channel)
    return OpenAIStream(response, target)

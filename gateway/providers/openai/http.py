"""The call itself: POST JSON to an OpenAI-compatible upstream and turn transport failures into errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson

from gateway.domain import JSONObject, Target
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.openai.errors import upstream_error
from gateway.providers.sse import iter_sse_data


def request_headers(target: Target, content_type: str | None = "application/json") -> dict[str, str]:
    headers = dict(target.channel.headers)
    key = target.api_key
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def timeout_for(target: Target) -> aiohttp.ClientTimeout:
    total = target.channel.timeout_seconds
    return aiohttp.ClientTimeout(total=total, sock_connect=min(10.0, total))


def transport_error(exc: BaseException, target: Target) -> UpstreamError:
    name = target.channel.name
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(f"channel {name}: connecting to the upstream timed out", sent=False)
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"channel {name}: the upstream did not answer in time", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"channel {name}: could not connect to the upstream", retryable=True)
    return UpstreamError(
        f"channel {name}: the upstream connection failed ({type(exc).__name__})", retryable=True
    )


async def post_json(
    session: aiohttp.ClientSession, target: Target, path: str, body: JSONObject
) -> JSONObject:
    url = f"{target.channel.base_url}{path}"
    try:
        async with session.post(
            url, data=orjson.dumps(body), headers=request_headers(target), timeout=timeout_for(target)
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise upstream_error(resp.status, raw, resp.headers, target.channel)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, target) from None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(f"channel {target.channel.name}: the upstream answered something other than JSON")
    return parsed


class OpenAIStream:
    """An opened SSE response; closing it closes the upstream connection."""

    def __init__(self, response: aiohttp.ClientResponse, target: Target) -> None:
        self._response = response
        self._target = target

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for data in iter_sse_data(self._response.content.iter_any()):
                yield data
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, self._target) from None
        finally:
            self._response.close()

    async def aclose(self) -> None:
        self._response.close()


async def open_stream(
    session: aiohttp.ClientSession, target: Target, path: str, body: JSONObject
) -> OpenAIStream:
    url = f"{target.channel.base_url}{path}"
    headers = request_headers(target)
    headers["Accept"] = "text/event-stream"
    # A stream may run long: bound the wait for each read, not the whole answer.
    limit = target.channel.timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, limit), sock_read=limit)
    try:
        response = await session.post(url, data=orjson.dumps(body), headers=headers, timeout=timeout)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, target) from None
    if response.status != 200:
        try:
            raw = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        finally:
            response.release()
        raise upstream_error(response.status, raw, response.headers, target.channel)
    return OpenAIStream(response, target)

"""The call itself: send JSON or multipart to an OpenAI-compatible upstream, turn failures into errors.

Every upstream answer is untrusted input: read through `read_body` (bounded, see `providers/body.py`),
and a 200 must hold a real answer (`checked`) or it is a BadUpstreamResponse, which fails over.
Errors are raised outside `except` blocks, so they carry no chain back to the frames of a failed read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from gateway.domain import JSONObject, Target
from gateway.errors import BadUpstreamResponse, UpstreamError, UpstreamTimeout, UpstreamTooLarge
from gateway.providers import http1
from gateway.providers.body import read_body, too_large
from gateway.providers.openai.errors import error_message, upstream_error
from gateway.providers.sse import DONE, PlainRun, SSEEvent, iter_sse_batches
from gateway.settings import ChannelSettings

Payload = bytes | aiohttp.FormData
Check = Callable[[JSONObject], str | None]  # None when the answer is usable, else what is wrong with it


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
    if isinstance(exc, aiohttp.ConnectionTimeoutError | http1.ConnectTimeout):
        return UpstreamTimeout(f"channel {name}: connecting to the upstream timed out", sent=False)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"channel {name}: the upstream did not answer in time", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError | http1.ConnectFailed):
        return UpstreamError(f"channel {name}: could not connect to the upstream", retryable=True)
    return UpstreamError(
        f"channel {name}: the upstream connection failed ({type(exc).__name__})", retryable=True
    )


def _payload(body: JSONObject | aiohttp.FormData, target: Target) -> tuple[Payload, dict[str, str]]:
    if isinstance(body, aiohttp.FormData):
        return body, request_headers(target, content_type=None)  # aiohttp sets the multipart boundary
    return orjson.dumps(body), request_headers(target)


def checked(answer: Any, check: Check | None, channel: ChannelSettings) -> JSONObject:
    """A parsed 200 answer, or the BadUpstreamResponse that says why it is none (§2)."""
    name = channel.name
    if not isinstance(answer, dict):
        raise BadUpstreamResponse(f"channel {name}: the upstream answered 200 without a JSON object")
    if answer.get("error"):
        message = error_message(answer, channel) or "no message"
        raise BadUpstreamResponse(f"channel {name}: the upstream answered 200 with an error: {message}")
    problem = check(answer) if check is not None else None
    if problem is not None:
        raise BadUpstreamResponse(f"channel {name}: the upstream's answer {problem}")
    return answer


async def post(
    session: aiohttp.ClientSession,
    target: Target,
    path: str,
    body: JSONObject | aiohttp.FormData,
    *,
    max_bytes: int,
    parse: Callable[[bytes | bytearray], Any] = orjson.loads,
    check: Check | None = None,
    lean: http1.Http1Client | None = None,
) -> JSONObject:
    """The upstream's 200 answer, parsed and checked; any other answer as the UpstreamError it means.
    With `lean`, a JSON body goes through that client when it can send to the URL (http1.py)."""
    url = f"{target.channel.base_url}{path}"
    data, headers = _payload(body, target)
    failure: UpstreamError | None = None
    answer_headers: Mapping[str, str]
    raw: bytes | bytearray
    try:
        if lean is not None and isinstance(data, bytes) and lean.accepts(url):
            status, answer_headers, raw = await _lean_post(lean, target, url, headers, data, max_bytes)
        else:
            async with session.post(url, data=data, headers=headers, timeout=timeout_for(target)) as resp:
                raw = await read_body(resp, max_bytes, target.channel.name)
                status, answer_headers = resp.status, resp.headers
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        failure = transport_error(exc, target)
    except http1.TooLarge:
        failure = too_large(target.channel.name, max_bytes)
    except ValueError as exc:  # http1.Malformed, or a header that cannot be sent
        failure = UpstreamError(f"channel {target.channel.name}: {exc}", retryable=True)
    if failure is not None:
        raise failure
    if status != 200:
        raise upstream_error(status, raw, answer_headers, target.channel)
    try:
        parsed = parse(raw)
    except ValueError:  # orjson.JSONDecodeError included
        parsed = None
    del raw
    return checked(parsed, check, target.channel)


async def _lean_post(
    lean: http1.Http1Client, target: Target, url: str, headers: dict[str, str], data: bytes, max_bytes: int
) -> tuple[int, Mapping[str, str], bytes]:
    limit = target.channel.timeout_seconds
    answer = await lean.post(
        url, headers, data, timeout=limit, connect_timeout=min(10.0, limit), max_bytes=max_bytes
    )
    # The headers are read only for an error's Retry-After (the names come lower-cased).
    return answer.status, dict(answer.headers) if answer.status != 200 else {}, answer.body


_ERROR_OPENERS = (b'{"error"', b'{ "error"')


def _stream_error(data: bytes, channel: ChannelSettings) -> UpstreamError | None:
    """An error the upstream sent inside its stream, as §2 says it reaches the client: sanitized."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    message = error_message(body, channel)
    if message is None or "choices" in body:
        return None
    return BadUpstreamResponse(f"channel {channel.name}: the upstream's stream sent an error: {message}")


# After `[DONE]`, what may still come before the body ends (the chunked encoding's last chunk, usually in
# the same read): waited for this long, read up to this much. Then the connection goes back to the pool;
# an upstream that sends more, or not its end, has its connection closed instead.
_END_WAIT_SECONDS = 1.0
_END_BYTES = 64 * 1024


class _Body(Protocol):
    """An event stream's body: aiohttp's, or the lean client's (`http1.Stream`)."""

    async def read(self) -> bytes: ...  # what came since the last read; b"" at the end

    def at_eof(self) -> bool: ...

    def close(self) -> None: ...


class _AiohttpBody:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.read = response.content.readany
        self.at_eof = response.content.at_eof

    def close(self) -> None:
        self._response.close()


async def _chunks(body: _Body) -> AsyncIterator[bytes]:
    while chunk := await body.read():
        yield chunk


class OpenAIStream:
    """An opened SSE response; closing it closes the upstream connection. A stream read to its `[DONE]`
    (and its body's end) leaves the connection open, in the pool, for the next request."""

    def __init__(self, body: _Body, target: Target, max_event_bytes: int) -> None:
        self._body = body
        self._target = target
        self._max_event_bytes = max_event_bytes

    async def batches(self) -> AsyncIterator[list[SSEEvent] | PlainRun]:
        """The events; an error event of the upstream ends the stream with its (sanitized) error."""
        failure: UpstreamError | None = None
        try:
            async for batch in iter_sse_batches(_chunks(self._body), self._max_event_bytes):
                if isinstance(batch, PlainRun) and b'"error"' not in batch.raw:  # no event to look at
                    yield batch
                    if batch.raw.endswith(DONE) or DONE in batch.raw:
                        await self._read_to_end()
                        break
                    continue
                for n, (name, data) in enumerate(batch):
                    if name == b"error" or data.startswith(_ERROR_OPENERS):
                        failure = _stream_error(data, self._target.channel)
                        if failure is not None:
                            batch = batch[:n]
                            break
                if batch:
                    yield batch
                if failure is not None:
                    break
                if any(data == b"[DONE]" for _, data in batch):
                    await self._read_to_end()
                    break
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            failure = transport_error(exc, self._target)
        except (http1.Malformed, http1.TooLarge) as exc:
            failure = UpstreamError(f"channel {self._target.channel.name}: {exc}", retryable=True)
        finally:
            self._body.close()
        if failure is not None:
            raise failure

    async def _read_to_end(self) -> None:
        """Read what follows `[DONE]` (bounded): the body's end lets its connection go back to the pool."""
        body = self._body
        if body.at_eof():  # the end came with `[DONE]` (the usual case): no timer to set
            return
        left = _END_BYTES
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError, ValueError):
            async with asyncio.timeout(_END_WAIT_SECONDS):
                while left > 0 and not body.at_eof():
                    chunk = await body.read()
                    if not chunk:
                        break
                    left -= len(chunk)

    async def events(self) -> AsyncIterator[SSEEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def aclose(self) -> None:
        self._body.close()


async def open_stream(
    session: aiohttp.ClientSession,
    target: Target,
    path: str,
    body: JSONObject | aiohttp.FormData,
    *,
    max_bytes: int,
    lean: http1.Http1Client | None = None,
) -> OpenAIStream:
    """The upstream's event stream; any other answer as the UpstreamError it means. With `lean`, a JSON
    body goes through that client when it can send to the URL (http1.py)."""
    url = f"{target.channel.base_url}{path}"
    data, headers = _payload(body, target)
    headers["Accept"] = "text/event-stream"
    # A stream may run long: bound the wait for each read, not the whole answer.
    limit = target.channel.timeout_seconds
    failure: UpstreamError | None = None
    try:
        if lean is not None and isinstance(data, bytes) and lean.accepts(url):
            opened = await lean.open(
                url, headers, data, timeout=limit, connect_timeout=min(10.0, limit), max_bytes=max_bytes
            )
            if isinstance(opened, http1.Stream):
                return OpenAIStream(opened, target, max_bytes)
            answer: tuple[int, Mapping[str, str], bytes | bytearray, str] = (
                opened.status, dict(opened.headers), opened.body, http1.content_type(opened.headers)
            )  # fmt: skip
        else:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, limit), sock_read=limit)
            response = await session.post(url, data=data, headers=headers, timeout=timeout)
            if response.status == 200 and response.content_type == "text/event-stream":
                return OpenAIStream(_AiohttpBody(response), target, max_bytes)
            raw = await _head_of(response, target, max_bytes)
            answer = (response.status, response.headers, raw, response.content_type)
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        failure = transport_error(exc, target)
    except ValueError as exc:  # http1.Malformed, or a header that cannot be sent
        failure = UpstreamError(f"channel {target.channel.name}: {exc}", retryable=True)
    if failure is not None:
        raise failure
    raise _not_a_stream(*answer, target)


async def _head_of(response: aiohttp.ClientResponse, target: Target, max_bytes: int) -> bytes | bytearray:
    """The first MiB of an answer that is no stream: enough for any error object, and what came instead
    of a stream may be long."""
    try:
        return await read_body(response, min(max_bytes, http1.NOT_A_STREAM_BYTES), target.channel.name)
    except (aiohttp.ClientError, TimeoutError, UpstreamTooLarge):
        return b""
    finally:
        response.release()


def _not_a_stream(
    status: int, headers: Mapping[str, str], raw: bytes | bytearray, content_type: str, target: Target
) -> UpstreamError:
    """The error for a stream request answered with an error status, or with a body that is no stream."""
    if status != 200:
        return upstream_error(status, raw, headers, target.channel)
    try:
        answer = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        answer = None
    name = target.channel.name
    message = error_message(answer, target.channel) if isinstance(answer, dict) else None
    if message is not None:
        return BadUpstreamResponse(f"channel {name}: the upstream answered 200 with an error: {message}")
    return BadUpstreamResponse(
        f"channel {name}: the upstream answered a stream request with {content_type}, not a stream"
    )

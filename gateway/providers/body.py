"""Read an upstream answer's body: bounded, and never allocating more than the bytes that arrived justify.

An upstream may announce 200 GB and close, or send without end. The cap (`limits.max_upstream_response_mb`)
is checked against the announced length before any byte is read, and against the bytes as they arrive.
A buffer grows with the bytes that arrived: announcing a length earns no allocation by itself.
"""

from __future__ import annotations

import aiohttp

from gateway.errors import UpstreamTooLarge

_FIRST_BYTES = 64 * 1024
# An announced length is trusted (allocated at once, so a large image is read with one copy) once the
# bytes that arrived times this reach half of it: an upstream that lies earns at most this much.
_TRUST_FACTOR = 8


def too_large(channel: str, limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"channel {channel}: the upstream's answer is larger than the limit of {limit} bytes"
    )


async def read_body(response: aiohttp.ClientResponse, limit: int, channel: str) -> bytearray:
    """The whole body, at most `limit` bytes, else UpstreamTooLarge (the connection is then dropped).

    A MemoryError while reading is the same answer: too large for this process right now.
    """
    length = response.content_length
    if length is None or length <= limit:
        try:
            if length is None:
                return await _read_growing(response, limit)
            return await _read_announced(response, length)
        except (MemoryError, _OverLimit):
            pass
    response.close()
    raise too_large(channel, limit)


async def _read_announced(response: aiohttp.ClientResponse, length: int) -> bytearray:
    """Into a buffer of the announced size once enough has arrived; aiohttp never reads past it."""
    buffer = bytearray(min(length, _FIRST_BYTES))
    filled = 0
    try:
        async for chunk in response.content.iter_any():
            end = filled + len(chunk)
            if end > len(buffer):
                buffer = _moved(buffer, filled, _capacity(end, length))
            buffer[filled:end] = chunk
            filled = end
    except BaseException:
        del buffer  # the traceback keeps this frame alive: not the buffer too
        raise
    if filled < len(buffer):
        del buffer[filled:]
    return buffer


def _capacity(needed: int, length: int) -> int:
    wanted = needed * _TRUST_FACTOR
    return length if wanted * 2 >= length else wanted


def _moved(buffer: bytearray, filled: int, capacity: int) -> bytearray:
    bigger = bytearray(capacity)
    with memoryview(buffer) as view:
        bigger[:filled] = view[:filled]
    return bigger


class _OverLimit(Exception):
    """More bytes arrived than the limit allows."""


async def _read_growing(response: aiohttp.ClientResponse, limit: int) -> bytearray:
    """No length announced: the buffer grows as bytes arrive (realloc, no zero-filled slack)."""
    buffer = bytearray()
    try:
        async for chunk in response.content.iter_any():
            if len(buffer) + len(chunk) > limit:
                raise _OverLimit
            buffer += chunk
    except BaseException:
        del buffer
        raise
    return buffer
